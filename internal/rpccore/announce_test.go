package rpccore

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/streamcore"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
)

// The server looks at every CALL of a plain peer as it is read, for the
// streams its arguments pass (announceStreams). For a method that takes
// none, or a service that has none, that costs no allocation: the names
// are looked up where they lie in the packet.
func TestAnnounceStreamsAllocatesNothing(t *testing.T) {
	b := bus.New()
	defer b.Close()
	sm, err := streamcore.NewManager(b)
	if err != nil {
		t.Fatal(err)
	}
	defer sm.Close()
	reg := NewRegistry("server")
	if _, err := reg.Expose("calc@1.0.0", calc{}); err != nil {
		t.Fatal(err)
	}
	def, err := reg.Expose("upload@1.0.0", &uploadSvc{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(b, reg, WithStreams(sm))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	hub := transport.NewHub(b, "server", transport.WithKeepAlive(-1, 0))
	defer hub.Close()
	connected, err := bus.NewTopic[transport.ConnEvent](b, transport.TopicConnected).Subscribe(bus.WithBuffer(1))
	if err != nil {
		t.Fatal(err)
	}
	defer connected.Close()
	hs := httptest.NewServer(hub)
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/?id=plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	var conn *transport.Conn
	select {
	case ev := <-connected.C():
		conn = ev.Conn
	case <-ctx.Done():
		t.Fatal("no connection")
	}
	call := func(target, method string, args ...[]byte) transport.Inbound {
		d := wire.AppendArrayHeader(nil, 2+len(args))
		d = wire.AppendString(d, target)
		d = wire.AppendString(d, method)
		for _, a := range args {
			d = append(d, a...)
		}
		return transport.Inbound{Conn: conn, Packet: wire.Packet{ID: 1, Flags: wire.Flags(wire.TypeCall, true, 0), Data: d}}
	}
	for _, in := range []transport.Inbound{
		call("calc@1.0.0", "add", []byte{1}, []byte{2}),
		call(def.ID, "nope"),
		call("nobody@1.0.0", "add"),
	} {
		if n := testing.AllocsPerRun(100, func() {
			if refs := srv.announceStreams(&in); refs != nil {
				t.Fatalf("registered %d streams", len(refs))
			}
		}); n != 0 {
			t.Errorf("%x: %.0f allocations", in.Packet.Data, n)
		}
	}
}
