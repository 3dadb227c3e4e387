package netron_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
	"github.com/netron-go/netron/stream"
)

// wireValues is what a Titan peer may send inside any value: undefined, a
// service definition, a TitanError, a JavaScript Error and a reference.
func wireValues() []any {
	def := wire.Definition{ID: "d1", PeerID: "ts", Meta: wire.ServiceMeta{Name: "calc", Version: "1.0.0",
		Methods: map[string]wire.MethodMeta{"add": {Type: "number", Arguments: []wire.ArgumentMeta{{Index: 0, Type: "number"}}}}}}
	return []any{
		wire.Undefined{},
		map[string]any{"def": def, "nested": []any{wire.Undefined{}, wire.Reference{DefID: "d1"}}},
		wire.TitanError{Name: "TitanError", Code: 409, Message: "conflict"},
		wire.JSError{Kind: wire.JSKindError, Name: "TypeError", Message: "x is undefined"},
	}
}

type valuesSvc struct{ stopped chan error }

func (valuesSvc) Values() []any { return wireValues() }

func (s valuesSvc) Chunks(ctx context.Context, w *stream.Writer[any]) error {
	for _, v := range wireValues() {
		if err := w.Send(ctx, v); err != nil {
			return err
		}
	}
	return nil
}

func (s valuesSvc) Forever(ctx context.Context, w *stream.Writer[int]) error {
	for i := 0; ; i++ {
		if err := w.Send(ctx, i); err != nil {
			s.stopped <- err
			return err
		}
	}
}

// checkPublic fails when v holds a value of an internal package, and checks
// what the wire values became.
func checkPublic(t *testing.T, what string, v []any) {
	t.Helper()
	if path := internalValue(reflect.ValueOf(v), what); path != "" {
		t.Fatalf("%s holds an internal type at %s", what, path)
	}
	if len(v) != 4 || v[0] != nil {
		t.Fatalf("%s: %#v", what, v)
	}
	m := v[1].(map[string]any)
	d, ok := m["def"].(rpc.ServiceDescription)
	if !ok || d.QualifiedName() != "calc@1.0.0" || d.Methods["add"].Result != "number" {
		t.Fatalf("%s: definition %#v", what, m["def"])
	}
	if n := m["nested"].([]any); n[0] != nil || n[1] != "d1" {
		t.Fatalf("%s: nested %#v", what, n)
	}
	if e, ok := v[2].(*rpc.Error); !ok || e.Code != 409 || e.Message != "conflict" {
		t.Fatalf("%s: TitanError %#v", what, v[2])
	}
	if e, ok := v[3].(*rpc.Error); !ok || e.Code != 500 || e.Name != "TypeError" {
		t.Fatalf("%s: JS Error %#v", what, v[3])
	}
}

// A value decoded into an empty interface holds no type of an internal
// package, whichever way it arrived: a call's result, a stream's chunks,
// a task's arguments, an event's arguments. Call of a method that produces
// a stream fails with ErrStreamResult, and its producer is stopped.
func TestNoInternalValues(t *testing.T) {
	ctx := context.Background()
	stopped := make(chan error, 1)
	server, client, p := connectPair(t, netron.Config{ID: "server"}, netron.Config{ID: "client"})
	if err := server.Expose("values@1.0.0", valuesSvc{stopped: stopped}); err != nil {
		t.Fatal(err)
	}
	svc, err := p.Service(ctx, "values")
	if err != nil {
		t.Fatal(err)
	}
	var got any
	r, err := svc.Call(ctx, "values")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Decode(&got); err != nil {
		t.Fatal(err)
	}
	checkPublic(t, "Result.Decode(&any)", got.([]any))
	list, err := rpc.Call[[]any](ctx, svc, "values")
	if err != nil {
		t.Fatal(err)
	}
	checkPublic(t, "Call[[]any]", list)

	var chunks []any
	for v, err := range rpc.Stream[any](ctx, svc, "chunks") {
		if err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, v)
	}
	checkPublic(t, "Stream[any]", chunks)

	args := make(chan []any, 1)
	if err := server.HandleTask("take", func(_ context.Context, a *rpc.Args) (any, error) {
		rest, err := a.Rest()
		args <- rest
		return nil, err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.RunTask(ctx, "take", wireValues()...); err != nil {
		t.Fatal(err)
	}
	checkPublic(t, "Args.Rest", <-args)

	sub, err := p.Events(ctx, "values")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := server.Emit(ctx, "values", wireValues()...); err != nil {
		t.Fatal(err)
	}
	checkPublic(t, "Event.Args", recvEvent(t, sub.C()).Args)

	// Call of a streaming method, remote and local.
	if _, err := svc.Call(ctx, "forever"); !errors.Is(err, rpc.ErrStreamResult) {
		t.Fatalf("Call of a streaming method: %v, want ErrStreamResult", err)
	}
	if err := <-stopped; !errors.Is(err, stream.ErrCancelled) {
		t.Fatalf("the producer's Send: %v, want ErrCancelled", err)
	}
	local, err := server.Service(ctx, "values")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rpc.Call[int](ctx, local, "forever"); !errors.Is(err, rpc.ErrStreamResult) {
		t.Fatalf("local Call of a streaming method: %v, want ErrStreamResult", err)
	}
	_ = client
}
