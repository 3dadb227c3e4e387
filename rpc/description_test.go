package rpc

import (
	"reflect"
	"testing"

	"github.com/netron-go/netron/internal/wire"
)

// A definition becomes its description: arguments in call order (Titan may
// send them in any order), properties with their flags.
func TestDescribe(t *testing.T) {
	def := wire.Definition{ID: "d1", ParentID: "p0", PeerID: "ts", Meta: wire.ServiceMeta{
		Name: "calc", Version: "1.2.0",
		Methods: map[string]wire.MethodMeta{"add": {Type: "number", Arguments: []wire.ArgumentMeta{
			{Index: 1, Type: "number"}, {Index: 0, Type: "string"}}}},
		Properties: map[string]wire.PropertyMeta{"total": {Type: "number", Readonly: true}},
	}}
	got := describe(def)
	want := ServiceDescription{Name: "calc", Version: "1.2.0", ID: "d1", ParentID: "p0", PeerID: "ts",
		Methods: map[string]MethodDescription{"add": {Result: "number", Arguments: []ArgumentDescription{
			{Index: 0, Type: "string"}, {Index: 1, Type: "number"}}}},
		Properties: map[string]PropertyDescription{"total": {Type: "number", ReadOnly: true}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("describe:\n got %+v\nwant %+v", got, want)
	}
	if got.QualifiedName() != "calc@1.2.0" || !reflect.DeepEqual(got.MethodNames(), []string{"add"}) {
		t.Fatalf("QualifiedName %q, MethodNames %v", got.QualifiedName(), got.MethodNames())
	}
	if d := describe(wire.Definition{}); d.Methods != nil || d.Properties != nil {
		t.Fatalf("empty definition: %+v", d)
	}
}
