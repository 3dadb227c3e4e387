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

// TestThrownValueIsPublic: a value a peer threw holds no wire type
// (undefined inside it becomes nil, a nested error an *Error).
func TestThrownValueIsPublic(t *testing.T) {
	e := fromWire(map[string]any{"u": wire.Undefined{}, "err": wire.JSError{Kind: wire.JSKindError, Name: "Error", Message: "inner"}})
	m, ok := e.Thrown.(map[string]any)
	if !ok {
		t.Fatalf("thrown %T", e.Thrown)
	}
	if v, ok := m["u"]; !ok || v != nil {
		t.Fatalf("undefined became %#v", v)
	}
	if inner, ok := m["err"].(*Error); !ok || inner.Message != "inner" {
		t.Fatalf("nested error became %#v", m["err"])
	}
}
