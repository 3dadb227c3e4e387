package rpccore

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/goleak"

	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWireName(t *testing.T) {
	for in, want := range map[string]string{
		"Add": "add", "Multiply": "multiply", "HTTPGet": "httpGet", "ID": "id",
		"GetID": "getID", "X": "x", "URLs": "urLs", "StreamData": "streamData",
	} {
		if got := WireName(in); got != want {
			t.Errorf("WireName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestErrorMatching(t *testing.T) {
	method := notFound("Method", "calc@1.0.0.x", "Method 'calc@1.0.0.x' not found")
	if !errors.Is(method, rpc.ErrMethodNotFound) || !errors.Is(method, rpc.ErrNotFound) || errors.Is(method, rpc.ErrServiceNotFound) {
		t.Fatal("method not found matching")
	}
	svc := serviceNotFound("nosuch@1.0.0")
	if !errors.Is(svc, rpc.ErrServiceNotFound) || errors.Is(svc, rpc.ErrMethodNotFound) {
		t.Fatal("service not found matching")
	}
	// A sentinel matches only sentinels' shape: a data-carrying *rpc.Error is
	// not a target.
	if errors.Is(svc, method) {
		t.Fatal("an error with data matched as a target")
	}
	if rpc.Code(svc) != 404 || rpc.Code(errors.New("x")) != 0 {
		t.Fatal("Code")
	}
	// Round trip through the wire shapes keeps code, details and fields.
	e := rpc.NewError(429, "quota", map[string]any{"plan": "free"})
	e.Fields = map[string]any{"used": int64(12)}
	got := fromWire(toWire(e, false))
	if got.Code != 429 || got.Message != "quota" || got.Details["plan"] != "free" || got.Fields["used"] != int64(12) || !errors.Is(got, rpc.ErrTooManyRequests) {
		t.Fatalf("round trip: %+v", got)
	}
	plain := fromWire(toWire(errors.New("boom"), false))
	if plain.Code != 500 || plain.Message != "boom" || plain.Name != "Error" || !errors.Is(plain, rpc.ErrInternal) {
		t.Fatalf("plain: %+v", plain)
	}
}

type calc struct{}

func (calc) Add(a, b int) int                                { return a + b }
func (calc) WithCtx(ctx context.Context, s string) string    { return s }
func (calc) Fails() error                                    { return nil }
func (calc) Both() (int, error)                              { return 1, nil }
func (calc) TwoResults() (int, int)                          { return 1, 2 }
func (calc) TakesChan(c chan int)                            {}
func (calc) TakesFunc(f func())                              {}
func (calc) Variadic(xs ...int) int                          { return len(xs) }
func (calc) ErrFirst() (error, int)                          { return nil, 0 }
func (calc) Three() (int, int, error)                        { return 0, 0, nil }
func (calc) NoCtxLater(s string, ctx context.Context) string { return s }

func TestMethodsOf(t *testing.T) {
	ms := methodsOf(calc{})
	for _, want := range []string{"add", "withCtx", "fails", "both"} {
		if ms[want] == nil {
			t.Errorf("%s not callable", want)
		}
	}
	for _, not := range []string{"twoResults", "takesChan", "takesFunc", "variadic", "errFirst", "three", "noCtxLater"} {
		if ms[not] != nil {
			t.Errorf("%s callable", not)
		}
	}
	if !ms["withCtx"].hasCtx || len(ms["withCtx"].args) != 1 {
		t.Error("withCtx shape")
	}
}

func TestParseSpec(t *testing.T) {
	for _, ok := range []string{"calc", "calc@1.2.3", "calc@^1", "calc@~1.2", "calc@>=1.0 <2", "a.b.c@latest", "calc@*"} {
		if _, err := parseSpec(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "@1.0.0", "ca lc", "calc@not a range!", ".calc", "calc."} {
		if _, err := parseSpec(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Errors read as what failed, the code, and what exists; the message sent
// over the wire stays Titan's.
func TestErrorText(t *testing.T) {
	for _, tc := range []struct {
		err  *rpc.Error
		want string
	}{
		{notFound("Method", "calculator@1.0.0.ad", "Method 'calculator@1.0.0.ad' not found"),
			`rpc: calculator@1.0.0: method "ad" not found (404)`},
		{&rpc.Error{Code: 404, Name: "TitanError", Message: "Method 'calculator@1.0.0.ad' not found",
			Details: map[string]any{"resource": "Method", "id": "calculator@1.0.0.ad"}, Available: []string{"add", "multiply"}},
			`rpc: calculator@1.0.0: method "ad" not found (404); available: add, multiply`},
		{serviceNotFound("calculator@^9"), `rpc: service "calculator@^9" not found (404)`},
		{&rpc.Error{Code: 404, Name: "TitanError", Message: "Service 'calculator@^9' not found",
			Details: map[string]any{"serviceName": "calculator@^9"}, Available: []string{"1.0.0", "1.2.0"}},
			`rpc: calculator@^9: no match (404); available: 1.0.0, 1.2.0`},
		{&rpc.Error{Code: 404, Name: "TitanError", Message: "Service 'shop' not found",
			Details: map[string]any{"serviceName": "shop"}, Available: []string{"calculator@1.0.0"}},
			`rpc: service "shop" not found (404); available: calculator@1.0.0`},
		{notFound("Task", "nope", "Task with id nope not found"), `rpc: task "nope" not found (404)`},
		{&rpc.Error{Code: 500, Name: "TypeError", Message: "x is undefined"}, `rpc: TypeError: x is undefined (500)`},
		{&rpc.Error{Name: "Error", Message: "no code"}, `rpc: no code`},
		{rpc.ErrServiceNotFound, `rpc: service not found (404)`},
		{rpc.ErrTooManyRequests, `rpc: too many requests (429)`},
		{rpc.ErrArgumentType, `rpc: wrong argument type (400)`},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
	// The wire keeps Titan's message.
	if te := toWire(notFound("Method", "c@1.0.0.ad", "Method 'c@1.0.0.ad' not found"), false).(wire.TitanError); te.Message != "Method 'c@1.0.0.ad' not found" {
		t.Errorf("wire message %q", te.Message)
	}
}
