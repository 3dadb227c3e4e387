package rpc

import "testing"

// An error's subject is what was called (Service.Call sets it).
func TestErrorTextOp(t *testing.T) {
	for _, tc := range []struct {
		err  *Error
		want string
	}{
		{&Error{Code: 409, Name: "TitanError", Message: "only 60 in stock", op: "orders@1.0.0.quote"},
			`rpc: orders@1.0.0.quote: only 60 in stock (409)`},
		{&Error{Code: 400, Name: "TitanError", Message: "calc@1.0.0.add argument 1: want float64", op: "calc@1.0.0.add"},
			`rpc: calc@1.0.0.add argument 1: want float64 (400)`},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}
