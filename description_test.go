package netron_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/rpc"
)

type Pinger struct{}

func (Pinger) Ping(s string, n int) string { return strings.Repeat(s, n) }

// internalValue returns the path to the first value inside v whose type is
// defined in an internal package, or "".
func internalValue(v reflect.Value, path string) string {
	if !v.IsValid() {
		return ""
	}
	if v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return ""
		}
		if v.Kind() == reflect.Interface {
			return internalValue(v.Elem(), path)
		}
	}
	if t := v.Type(); strings.Contains(t.PkgPath(), "/internal/") {
		return path + ": " + t.String()
	}
	switch v.Kind() {
	case reflect.Pointer:
		return internalValue(v.Elem(), path)
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if p := internalValue(v.Index(i), path+"["+string(rune('0'+i%10))+"]"); p != "" {
				return p
			}
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			if p := internalValue(v.MapIndex(k), path+"."+k.String()); p != "" {
				return p
			}
		}
	}
	return ""
}

// A peer's service:expose arrives with a ServiceDescription: in the
// event's arguments (no wire type inside), decoded into a ServiceEvent,
// and in the peer's catalogue, which the holder may modify.
func TestRemoteServiceEventDecodes(t *testing.T) {
	ctx := context.Background()
	server, _, p := connectPair(t, netron.Config{ID: "server"}, netron.Config{ID: "client"})
	sub, err := p.Events(ctx, netron.EventServiceExpose)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := server.Expose("pinger@1.0.0", Pinger{}); err != nil {
		t.Fatal(err)
	}
	e := recvEvent(t, sub.C())
	if path := internalValue(reflect.ValueOf(e.Args), "Args"); path != "" {
		t.Fatalf("event argument holds an internal type at %s", path)
	}
	var se netron.ServiceEvent
	if err := e.Decode(0, &se); err != nil {
		t.Fatal(err)
	}
	want := rpc.MethodDescription{Result: "String", Arguments: []rpc.ArgumentDescription{{Index: 0, Type: "String"}, {Index: 1, Type: "Number"}}}
	if se.QualifiedName != "pinger@1.0.0" || se.Definition == nil || se.Definition.PeerID != "server" ||
		!reflect.DeepEqual(se.Definition.Methods["ping"], want) {
		t.Fatalf("service event %+v, definition %+v", se, se.Definition)
	}
	waitFor(t, "the catalogue", func() bool { _, ok := p.Services()["pinger@1.0.0"]; return ok })
	cat := p.Services()
	d := cat["pinger@1.0.0"]
	if d.ID != se.Definition.ID || d.QualifiedName() != "pinger@1.0.0" {
		t.Fatalf("catalogue entry %+v", d)
	}
	d.Methods["ping"].Arguments[0].Type = "changed"
	delete(d.Methods, "ping")
	if got := p.Services()["pinger@1.0.0"].Methods["ping"]; !reflect.DeepEqual(got, want) {
		t.Fatalf("the catalogue changed with a copy: %+v", got)
	}
	svc, err := p.Service(ctx, "pinger")
	if err != nil {
		t.Fatal(err)
	}
	if desc := svc.Description(); desc.ID != d.ID || !reflect.DeepEqual(desc.MethodNames(), []string{"ping"}) {
		t.Fatalf("Service.Description %+v", desc)
	}
}
