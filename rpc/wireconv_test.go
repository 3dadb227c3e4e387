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

// TestErrorFieldsArePublic: the details and fields of an error from a peer
// hold no wire type either.
func TestErrorFieldsArePublic(t *testing.T) {
	te := fromWire(wire.TitanError{Code: 400, Name: "TitanError", Message: "m",
		Details: map[string]any{"u": wire.Undefined{}, "ref": wire.Reference{DefID: "d1"}},
		Extras:  map[string]any{"inner": wire.JSError{Kind: wire.JSKindError, Name: "Error", Message: "inner"}}})
	if v, ok := te.Details["u"]; !ok || v != nil {
		t.Fatalf("undefined detail became %#v", v)
	}
	if te.Details["ref"] != "d1" {
		t.Fatalf("reference detail became %#v", te.Details["ref"])
	}
	if inner, ok := te.Fields["inner"].(*Error); !ok || inner.Message != "inner" {
		t.Fatalf("nested error field became %#v", te.Fields["inner"])
	}
	je := fromWire(wire.JSError{Kind: wire.JSKindError, Name: "Error", Message: "m", Fields: map[string]any{"meta": []any{wire.Undefined{}}}})
	if meta, ok := je.Fields["meta"].([]any); !ok || len(meta) != 1 || meta[0] != nil {
		t.Fatalf("JavaScript error field became %#v", je.Fields["meta"])
	}
}
