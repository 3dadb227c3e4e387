package rpc

import (
	"reflect"
	"testing"

	"github.com/netron-go/netron/internal/wire"
)

type node struct {
	Next  *node
	Value any
}

type plain struct {
	N    int
	Next *plain
}

func TestHoldsInterface(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want bool
	}{
		{0, false}, {"", false}, {[]int{}, false}, {plain{}, false}, {map[string]string{}, false},
		{[]any{}, true}, {map[string]any{}, true}, {node{}, true}, {&node{}, true}, {struct{ x any }{}, false},
	} {
		if got := holdsInterface(reflect.TypeOf(tc.v)); got != tc.want {
			t.Errorf("holdsInterface(%T) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

// Wire values inside what Result.Decode filled are replaced, however deep
// in a struct of the caller they are.
func TestPublicInto(t *testing.T) {
	n := &node{Value: wire.Undefined{}, Next: &node{Value: map[string]any{"e": wire.TitanError{Code: 409, Message: "x"}}}}
	publicInto(&n)
	if n.Value != nil {
		t.Fatalf("undefined: %#v", n.Value)
	}
	if e, ok := n.Next.Value.(map[string]any)["e"].(*Error); !ok || e.Code != 409 {
		t.Fatalf("TitanError: %#v", n.Next.Value)
	}
	m := map[string]any{"r": wire.Reference{DefID: "d1"}}
	publicInto(&m)
	if m["r"] != "d1" {
		t.Fatalf("reference: %#v", m["r"])
	}
}
