package netron_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
	"github.com/netron-go/netron/stream"
)

// TestRemoteExposure: a plain Netron peer (B, raw bytes as a Titan client
// sends them) publishes clientsvc@1.0.0 on a node with
// AllowRemoteExposure; a Go node (C) calls it through the node: calls,
// GET, SET and errors relayed as they came, streams both ways, a second
// publisher refused, and the service gone when B disconnects.
func TestRemoteExposure(t *testing.T) {
	ctx := context.Background()
	server := startNode(t, netron.Config{ID: "hub", Host: "127.0.0.1", Server: true, AllowRemoteExposure: true})
	events := make(chan netron.Event, 16)
	server.On(netron.EventServiceUnexpose, func(e netron.Event) { events <- e })

	b := dialRaw(t, server.URL(), "exposer", false)
	// H2 137: expose_service with Titan's 8-key meta.
	meta := map[string]any{"name": "clientsvc", "version": "1.0.0",
		"properties": map[string]any{"mood": map[string]any{"type": "String", "readonly": false}},
		"methods":    map[string]any{"greet": map[string]any{"type": "String", "arguments": []any{map[string]any{"index": 0, "type": "String"}}}}}
	b.send(append(wire.AppendHeader(nil, 1, 0x44), mustMarshal(t, []any{"expose_service", meta})...))
	p := b.recv()
	def, ok := decodeAny(t, p.Data).(wire.Definition)
	if p.Flags != 0x04 || !ok || def.PeerID != "exposer" || def.Meta.Name != "clientsvc" || def.Meta.Properties["mood"].Type != "String" {
		t.Fatalf("expose_service: %#x %#v", p.Flags, decodeAny(t, p.Data))
	}

	client := startNode(t, netron.Config{ID: "caller"})
	cp, err := client.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := cp.Service(ctx, "clientsvc") // by the bare name, as Titan clients ask
	if err != nil || svc.Description().ID != def.ID || svc.Description().PeerID != "exposer" {
		t.Fatalf("lookup: %v %+v", err, svc)
	}

	// B answers what the node forwards: the same data, target = def.ID.
	answer := func(wantType byte, wantData []any, reply []byte, flags byte) {
		t.Helper()
		p := b.recv()
		var got []any
		if err := wire.Unmarshal(p.Data, &got); err != nil || p.Flags != 0x40|wantType || len(got) != len(wantData) {
			t.Fatalf("forwarded %#x %v %v", p.Flags, got, err)
		}
		for i := range got {
			if got[i] != wantData[i] {
				t.Fatalf("forwarded %v, want %v", got, wantData)
			}
		}
		b.send(append(wire.AppendHeader(nil, p.ID, flags), reply...))
	}
	type result struct {
		s   string
		err error
	}
	call := func(f func() (string, error)) chan result {
		ch := make(chan result, 1)
		go func() { s, err := f(); ch <- result{s, err} }()
		return ch
	}

	r := call(func() (string, error) { return rpc.Call[string](ctx, svc, "greet", "C") })
	answer(3, []any{def.ID, "greet", "C"}, mustMarshal(t, "hi C from the exposing client"), 0x03)
	if got := <-r; got.err != nil || got.s != "hi C from the exposing client" {
		t.Fatalf("greet: %+v", got)
	}
	// An ext 126 RangeError from B reaches C as B sent it.
	rangeErr := mustMarshal(t, wire.JSError{Kind: 5, Name: "RangeError", Stack: "RangeError: boom", Message: "boom"})
	r = call(func() (string, error) { return rpc.Call[string](ctx, svc, "greet", "boom") })
	answer(3, []any{def.ID, "greet", "boom"}, rangeErr, 0x83)
	if got := <-r; !errors.Is(got.err, rpc.ErrRangeError) {
		t.Fatalf("relayed error: %v", got.err)
	}
	r = call(func() (string, error) { return rpc.Get[string](ctx, svc, "mood") })
	answer(1, []any{def.ID, "mood"}, mustMarshal(t, "fine"), 0x01)
	if got := <-r; got.err != nil || got.s != "fine" {
		t.Fatalf("get: %+v", got)
	}
	// A SET's error is passed back (Titan answers at once and loses it).
	r = call(func() (string, error) { return "", svc.Set(ctx, "mood", "bad") })
	answer(2, []any{def.ID, "mood", "bad"}, mustMarshal(t, wire.TitanError{Name: "TitanError", Code: 400, Message: "bad mood"}), 0x82)
	if got := <-r; rpc.Code(got.err) != 400 {
		t.Fatalf("set: %v", got.err)
	}

	// A stream result of B reaches C through the node: B answers ext 107
	// and sends its chunks and the end to the node, which streams them
	// to C under a stream id of its own.
	got := make(chan []int, 1)
	go func() {
		var vs []int
		for v, err := range rpc.Stream[int](ctx, svc, "ticks", 3) {
			if err != nil {
				vs = append(vs, -1)
				break
			}
			vs = append(vs, v)
		}
		got <- vs
	}()
	p = b.recv()
	if p.Flags != 0x43 {
		t.Fatalf("forwarded ticks: %#x", p.Flags)
	}
	b.send(append(wire.AppendHeader(nil, p.ID, 0x03), mustMarshal(t, wire.StreamReference{StreamID: "5", Type: 1, Live: true, PeerID: "hub"})...))
	for i := range 3 {
		b.send((&wire.Packet{ID: uint32(100 + i), Flags: 0x65, Data: mustMarshal(t, i*10), StreamID: 5, StreamIndex: uint32(i)}).Append(nil))
	}
	b.send((&wire.Packet{ID: 103, Flags: 0x75, Data: []byte{0xc0}, StreamID: 5, StreamIndex: 3}).Append(nil))
	if vs := <-got; len(vs) != 3 || vs[0] != 0 || vs[1] != 10 || vs[2] != 20 {
		t.Fatalf("relayed stream result: %v", vs)
	}

	// A raw C sends what a Titan client would: by name, with a stream
	// argument whose chunks follow the CALL at once (relayed to B as a
	// stream of the node, peerId = the node), and a second publisher of
	// the name (409).
	c := dialRaw(t, server.URL(), "raw-c", false)
	c.send(append(wire.AppendHeader(nil, 7, 0x43), mustMarshal(t, []any{"clientsvc@1.0.0", "sum", wire.StreamReference{StreamID: "9", Type: 1, PeerID: "raw-c"}})...))
	for i := range 3 {
		c.send((&wire.Packet{ID: uint32(8 + i), Flags: 0x45, Data: mustMarshal(t, i+1), StreamID: 9, StreamIndex: uint32(i)}).Append(nil))
	}
	c.send((&wire.Packet{ID: 11, Flags: 0x55, Data: []byte{0xc0}, StreamID: 9, StreamIndex: 3}).Append(nil))
	p = b.recv()
	var fwd []any
	if err := wire.Unmarshal(p.Data, &fwd); err != nil || p.Flags != 0x43 || len(fwd) != 3 || fwd[1] != "sum" {
		t.Fatalf("forwarded sum: %#x %v %v", p.Flags, fwd, err)
	}
	ref, ok := fwd[2].(wire.StreamReference)
	if !ok || ref.PeerID != "hub" || ref.Type != 1 {
		t.Fatalf("forwarded stream argument: %#v", fwd[2])
	}
	total := 0
	for {
		q := b.recv()
		if q.Type() != wire.TypeStream || q.StreamID == 0 || ref.StreamID != fmt.Sprint(q.StreamID) {
			t.Fatalf("chunk %#x stream %d (want %s)", q.Flags, q.StreamID, ref.StreamID)
		}
		if q.Flags&0x10 != 0 { // eos
			if q.StreamIndex != 3 {
				t.Fatalf("end at index %d", q.StreamIndex)
			}
			break
		}
		v, _ := asFloat(decodeAny(t, q.Data))
		total += int(v)
	}
	b.send(append(wire.AppendHeader(nil, p.ID, 0x03), mustMarshal(t, total)...))
	if q := c.recv(); q.ID != 7 || q.Flags != 0x03 || !bytes.Equal(q.Data, []byte{0x06}) {
		t.Fatalf("sum through the node: %#x %x", q.Flags, q.Data)
	}
	c.send(append(wire.AppendHeader(nil, 8, 0x44), mustMarshal(t, []any{"expose_service", meta})...))
	if p := c.recv(); p.Flags != 0x84 || !bytes.Contains(p.Data, []byte("Service 'clientsvc' already exposed by a different peer")) {
		t.Fatalf("second publisher: %#x %x", p.Flags, p.Data)
	}
	c.send(append(wire.AppendHeader(nil, 9, 0x44), mustMarshal(t, []any{"unexpose_service", "clientsvc"})...))
	if p := c.recv(); p.Flags != 0x84 || !bytes.Contains(p.Data, []byte("does not own service definition "+def.ID)) {
		t.Fatalf("unexpose by another peer: %#x %x", p.Flags, p.Data)
	}
	for _, bad := range []any{map[string]any{"name": "bad name!", "version": "1.0.0"}, map[string]any{"name": "x", "version": "one"}, "not a map"} {
		c.send(append(wire.AppendHeader(nil, 10, 0x44), mustMarshal(t, []any{"expose_service", bad})...))
		if p := c.recv(); p.Flags != 0x84 || rpcError(t, p) == nil || rpc.Code(rpcError(t, p)) != 400 {
			t.Fatalf("expose_service(%v): %#x %x", bad, p.Flags, p.Data)
		}
	}

	// B withdraws it (the answer is the defId, H2 114) and publishes it again.
	b.send(append(wire.AppendHeader(nil, 2, 0x44), mustMarshal(t, []any{"unexpose_service", "clientsvc"})...))
	if p := b.recv(); p.Flags != 0x04 || decodeAny(t, p.Data) != def.ID {
		t.Fatalf("unexpose_service: %#x %#v", p.Flags, decodeAny(t, p.Data))
	}
	if e := recvEvent(t, events); e.Name != netron.EventServiceUnexpose {
		t.Fatalf("event %+v", e)
	}
	b.send(append(wire.AppendHeader(nil, 3, 0x44), mustMarshal(t, []any{"expose_service", meta})...))
	if p := b.recv(); p.Flags != 0x04 {
		t.Fatalf("expose_service again: %#x", p.Flags)
	}

	// B leaves: its service goes, with service:unexpose.
	b.ws.CloseNow()
	if e := recvEvent(t, events); e.Name != netron.EventServiceUnexpose {
		t.Fatalf("event %+v", e)
	}
	if _, err := cp.Service(ctx, "clientsvc"); !errors.Is(err, rpc.ErrServiceNotFound) {
		t.Fatalf("after B left: %v", err)
	}
}

type greeter struct {
	Mood rpc.Property[string] `netron:"mood"`
}

func (*greeter) Greet(who string) string { return "hi " + who + " from B" }

func (*greeter) Ticks(n int) <-chan int {
	ch := make(chan int, n)
	for i := range n {
		ch <- i * 10
	}
	close(ch)
	return ch
}

func (*greeter) Sum(r *stream.Reader[int]) (int, error) {
	n := 0
	for v := range r.C() {
		n += v
	}
	return n, r.Err()
}

func (*greeter) Fail() error {
	return rpc.NewJSError(rpc.KindTypeError, "BadGreeting", "no", map[string]any{"why": "test"})
}

// taker takes services by reference.
type taker struct{}

func (taker) Take(v any) string { return "got a value" }

func (taker) TakeSvc(ctx context.Context, s *rpc.Service) (string, error) {
	return rpc.Call[string](ctx, s, "greet", "via-ref")
}

// TestExposeServiceGoToGo: a Go node (B) publishes its service on a Go hub
// with Peer.ExposeService; another Go node (C) calls it through the hub.
func TestExposeServiceGoToGo(t *testing.T) {
	ctx := context.Background()
	hub := startNode(t, netron.Config{ID: "hub", Host: "127.0.0.1", Server: true, AllowRemoteExposure: true})
	if err := hub.Expose("taker@1.0.0", taker{}); err != nil {
		t.Fatal(err)
	}
	closed := startNode(t, netron.Config{ID: "closed", Host: "127.0.0.1", Server: true})
	b := startNode(t, netron.Config{ID: "b"})
	g := &greeter{}
	g.Mood.Set("fine")
	if err := b.Expose("greeter@1.0.0", g); err != nil {
		t.Fatal(err)
	}
	bp, err := b.Connect(ctx, hub.URL())
	if err != nil {
		t.Fatal(err)
	}
	bc, err := b.Connect(ctx, closed.URL())
	if err != nil {
		t.Fatal(err)
	}
	if err := bc.ExposeService(ctx, "greeter"); !errors.Is(err, rpc.ErrForbidden) {
		t.Fatalf("on a node that does not allow it: %v", err)
	}
	if err := bp.ExposeService(ctx, "greeter@^1"); err != nil {
		t.Fatal(err)
	}
	c := startNode(t, netron.Config{ID: "c"})
	cp, err := c.Connect(ctx, hub.URL())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := cp.Service(ctx, "greeter")
	if err != nil || svc.Description().PeerID != "b" {
		t.Fatalf("lookup: %v", err)
	}
	if s, err := rpc.Call[string](ctx, svc, "greet", "C"); err != nil || s != "hi C from B" {
		t.Fatalf("greet: %q %v", s, err)
	}
	if err := svc.Set(ctx, "mood", "great"); err != nil || g.Mood.Get() != "great" {
		t.Fatalf("set: %v %q", err, g.Mood.Get())
	}
	_, err = svc.Call(ctx, "fail")
	var re *rpc.Error
	if !errors.As(err, &re) || !errors.Is(err, rpc.ErrTypeError) || re.Name != "BadGreeting" || re.Fields["why"] != "test" {
		t.Fatalf("relayed error: %v", err)
	}
	// A reference to the published service: a *rpc.Service parameter gets
	// a handle that calls B; a value parameter cannot take it.
	tk, err := cp.Service(ctx, "taker")
	if err != nil {
		t.Fatal(err)
	}
	if s, err := rpc.Call[string](ctx, tk, "takeSvc", svc); err != nil || s != "hi via-ref from B" {
		t.Fatalf("takeSvc: %q %v", s, err)
	}
	if _, err := rpc.Call[string](ctx, tk, "take", svc); !errors.Is(err, rpc.ErrArgumentType) {
		t.Fatalf("take: %v", err)
	}
	var ticks []int
	for v, err := range rpc.Stream[int](ctx, svc, "ticks", 4) {
		if err != nil {
			t.Fatal(err)
		}
		ticks = append(ticks, v)
	}
	if len(ticks) != 4 || ticks[3] != 30 {
		t.Fatalf("relayed stream result: %v", ticks)
	}
	if n, err := rpc.Call[int](ctx, svc, "sum", stream.FromSeq(func(yield func(int, error) bool) {
		for i := 1; i <= 100; i++ {
			if !yield(i, nil) {
				return
			}
		}
	})); err != nil || n != 5050 {
		t.Fatalf("relayed stream argument: %d %v", n, err)
	}
	if err := bp.UnexposeService(ctx, "greeter"); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Service(ctx, "greeter"); !errors.Is(err, rpc.ErrServiceNotFound) {
		t.Fatalf("after unexpose: %v", err)
	}
	if _, err := rpc.Call[string](ctx, svc, "greet", "C"); !errors.Is(err, rpc.ErrServiceNotFound) {
		t.Fatalf("the old handle after unexpose: %v", err)
	}
	// Published again, then B leaves: gone from the hub.
	if err := bp.ExposeService(ctx, "greeter"); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Service(ctx, "greeter"); err != nil {
		t.Fatal(err)
	}
	if err := bp.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "greeter gone from the hub", func() bool {
		_, err := cp.Service(ctx, "greeter")
		return errors.Is(err, rpc.ErrServiceNotFound)
	})
}
