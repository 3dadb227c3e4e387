package transport_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/peer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newHub returns a hub on its own bus, closed with the test.
func newHub(t *testing.T, id string, opts ...transport.Option) *transport.Hub {
	t.Helper()
	b := bus.New()
	h := transport.NewHub(b, id, opts...)
	t.Cleanup(func() {
		h.Close()
		b.Close()
	})
	return h
}

func serve(t *testing.T, h *transport.Hub) string {
	t.Helper()
	addr, err := h.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return "ws://" + addr.String()
}

func events(t *testing.T, h *transport.Hub, topic string) *bus.Subscription[transport.ConnEvent] {
	t.Helper()
	s, err := bus.Subscribe[transport.ConnEvent](h.Bus(), topic, bus.WithBuffer(16))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func next[T any](t *testing.T, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("timed out")
		panic("unreachable")
	}
}

func TestDialHandshakeAndEvents(t *testing.T) {
	server := newHub(t, "server")
	client := newHub(t, "client")
	url := serve(t, server)
	sConnected := events(t, server, transport.TopicConnected)
	cDisconnected := events(t, client, transport.TopicDisconnected)
	sDisconnected := events(t, server, transport.TopicDisconnected)

	c, err := client.Dial(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID() != "server" || c.ServerSide() {
		t.Fatalf("client side: id %q serverSide %v", c.ID(), c.ServerSide())
	}
	ev := next(t, sConnected.C())
	if ev.PeerID != "client" || !ev.Conn.ServerSide() {
		t.Fatalf("server saw %+v", ev)
	}
	if n := len(server.Conns()); n != 1 {
		t.Fatalf("server has %d conns", n)
	}
	c.Close()
	if ev := next(t, cDisconnected.C()); ev.Conn != c || !errors.Is(ev.Err, peer.ErrDisconnected) {
		t.Fatalf("client disconnect event %+v", ev)
	}
	if ev := next(t, sDisconnected.C()); ev.PeerID != "client" || !errors.Is(ev.Err, peer.ErrDisconnected) {
		t.Fatalf("server disconnect event %+v", ev)
	}
	if !errors.Is(c.Err(), peer.ErrDisconnected) {
		t.Fatalf("Err = %v", c.Err())
	}
	if err := c.Send(context.Background(), []byte{0, 0, 0, 1, 0x40, 0xc0}, nil); !errors.Is(err, peer.ErrDisconnected) {
		t.Fatalf("Send after close = %v", err)
	}
}

// A client like the old Netron package sends no client-id; a client that
// dials without ?id names itself in a text frame (netron-browser). Both work
// when the hub is mounted in a mux of the user's.
func TestHandshakeVariants(t *testing.T) {
	server := newHub(t, "server")
	ts := httptest.NewServer(server)
	t.Cleanup(ts.Close)
	url := "ws" + strings.TrimPrefix(ts.URL, "http")
	connected := events(t, server, transport.TopicConnected)
	ctx := context.Background()

	// Old package: ?id=, no answer, straight to packets.
	ws, _, err := websocket.Dial(ctx, url+"/?id=old-client", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if _, msg, err := ws.Read(ctx); err != nil || string(msg) != `{"type":"id","id":"server"}` {
		t.Fatalf("hello %s %v", msg, err)
	}
	if ev := next(t, connected.C()); ev.PeerID != "old-client" {
		t.Fatalf("connected %+v", ev)
	}
	ping := []byte{0, 0, 0, 9, 0x40, 0x07}
	if err := ws.Write(ctx, websocket.MessageBinary, ping); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.Read(ctx); err != nil || string(msg) != string([]byte{0, 0, 0, 9, 0x00, 0x07}) {
		t.Fatalf("pong %x %v", msg, err)
	}

	// Browser: no ?id, a client-id text frame.
	ws2, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws2.CloseNow()
	if _, _, err := ws2.Read(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ws2.Write(ctx, websocket.MessageText, []byte(`{"type":"client-id","id":"browser-1"}`)); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, connected.C()); ev.PeerID != "browser-1" {
		t.Fatalf("connected %+v", ev)
	}
}

// An invalid ?id= is refused before the upgrade, with 400: after it, the
// refusal wrote nothing and the upgraded connection was left open.
func TestInvalidIDRefused(t *testing.T) {
	server := newHub(t, "server")
	url := serve(t, server)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, id := range []string{"%01bad", strings.Repeat("x", 300)} {
		ws, resp, err := websocket.Dial(ctx, url+"/?id="+id, nil)
		if err == nil {
			ws.CloseNow()
			t.Fatalf("id %.20q: upgraded (status %d)", id, resp.StatusCode)
		}
		if resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("id %.20q: %v, response %v; want 400", id, err, resp)
		}
	}
	if n := len(server.Conns()); n != 0 {
		t.Fatalf("%d connections after refusals", n)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	server := newHub(t, "server", transport.WithHandshakeTimeout(100*time.Millisecond))
	url := serve(t, server)
	ctx := context.Background()
	// No ?id and silence: the server gives up after the handshake timeout.
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if _, _, err := ws.Read(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, _, err := ws.Read(rctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("server kept a silent client: %v", err)
	}
	if n := len(server.Conns()); n != 0 {
		t.Fatalf("%d conns", n)
	}

	// A server that never says hello: Dial fails with peer.ErrHandshake.
	mute := httptest.NewServer(muteHandler{})
	defer mute.Close()
	client := newHub(t, "client", transport.WithHandshakeTimeout(100*time.Millisecond))
	_, err = client.Dial(ctx, "ws"+strings.TrimPrefix(mute.URL, "http"))
	if !errors.Is(err, peer.ErrHandshake) {
		t.Fatalf("Dial to a mute server: %v", err)
	}
}

type muteHandler struct{}

func (muteHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer ws.CloseNow()
	_, _, _ = ws.Read(r.Context()) // until the client gives up and closes

}

// A peer that stops answering is found dead by keep-alive.
func TestKeepAliveClosesDeadPeer(t *testing.T) {
	server := newHub(t, "server", transport.WithKeepAlive(50*time.Millisecond, 50*time.Millisecond))
	url := serve(t, server)
	disconnected := events(t, server, transport.TopicDisconnected)
	ctx := context.Background()
	// This client never reads after the handshake, so it never answers a
	// ping: like a half-open connection.
	ws, _, err := websocket.Dial(ctx, url+"/?id=zombie", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if _, _, err := ws.Read(ctx); err != nil {
		t.Fatal(err)
	}
	ev := next(t, disconnected.C())
	if ev.PeerID != "zombie" || !strings.Contains(ev.Err.Error(), "keep-alive") {
		t.Fatalf("disconnect %+v", ev)
	}

	// A live peer answers pings and stays connected. Its server pings
	// often but waits long for pongs: a busy machine is not a dead peer.
	live := newHub(t, "live", transport.WithKeepAlive(20*time.Millisecond, 30*time.Second))
	client := newHub(t, "client")
	c, err := client.Dial(ctx, serve(t, live))
	if err != nil {
		t.Fatal(err)
	}
	waitConns(t, live, 1)
	sc := live.Conns()[0]
	deadline := time.Now().Add(30 * time.Second)
	for transport.Pongs(sc) < 3 {
		if time.Now().After(deadline) || sc.Err() != nil {
			t.Fatalf("%d pings answered; connection error %v", transport.Pongs(sc), sc.Err())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if c.Err() != nil || sc.Err() != nil {
		t.Fatalf("live peer dropped: %v, %v", c.Err(), sc.Err())
	}
}

func TestMaxPeers(t *testing.T) {
	server := newHub(t, "server", transport.WithMaxPeers(1))
	url := serve(t, server)
	client := newHub(t, "client")
	c1, err := client.Dial(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	// The server says hello before it counts the peer: wait until it has.
	waitConns(t, server, 1)
	if _, err := client.Dial(context.Background(), url); err == nil {
		t.Fatal("second peer admitted")
	}
	if n := len(server.Conns()); n != 1 || c1.Err() != nil {
		t.Fatalf("server has %d conns; first peer: %v", n, c1.Err())
	}
}

// dialRequests connects a client hub to a server hub and returns the
// client hub, its connection and a subscription to the server's requests.
func dialRequests(t *testing.T) (*transport.Hub, *transport.Conn, *bus.Subscription[transport.Inbound]) {
	t.Helper()
	server := newHub(t, "server")
	url := serve(t, server)
	reqs, err := bus.Subscribe[transport.Inbound](server.Bus(), transport.TopicRequests, bus.WithBuffer(4))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reqs.Close() })
	client := newHub(t, "client")
	c, err := client.Dial(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	return client, c, reqs
}

func TestInboundOnTheBus(t *testing.T) {
	_, c, reqs := dialRequests(t)
	p := wire.Packet{ID: c.NextID(), Flags: wire.Flags(wire.TypeCall, true, 0), Data: []byte{0x92, 0xa1, 'x', 0xa1, 'y'}}
	if err := c.SendPacket(context.Background(), &p); err != nil {
		t.Fatal(err)
	}
	in := next(t, reqs.C())
	if in.Packet.ID != 1 || in.Packet.Type() != wire.TypeCall || string(in.Packet.Data) != string(p.Data) || in.Conn.ID() != "client" {
		t.Fatalf("inbound %+v", in)
	}
}

func TestNextIDWraps(t *testing.T) {
	server := newHub(t, "server")
	url := serve(t, server)
	client := newHub(t, "client")
	c, err := client.Dial(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	if id := c.NextID(); id != 1 {
		t.Fatalf("first id %d", id)
	}
	transport.SetNextID(c, 0xfffffffe)
	if a, b := c.NextID(), c.NextID(); a != 0xffffffff || b != 1 {
		t.Fatalf("wrap: %d then %d", a, b)
	}
}

// A subscriber that holds its connection's reader (Conn.Hold) holds back
// that connection's next packets only, and only once the publish has
// returned: another connection's packets go through meanwhile.
func TestHoldHoldsOneConnection(t *testing.T) {
	server := newHub(t, "server")
	url := serve(t, server)
	release := make(chan struct{})
	got := make(chan string, 8)
	unsub, err := bus.NewTopic[transport.Inbound](server.Bus(), transport.TopicRequests).SubscribeFunc(func(_ context.Context, in transport.Inbound) {
		got <- in.Conn.ID() + ":" + string(in.Packet.Data[1:])
		if in.Conn.ID() == "slow" && string(in.Packet.Data[1:]) == "a" {
			in.Conn.Hold(func() { <-release })
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	dial := func(id string) *transport.Conn {
		c, err := newHub(t, id).Dial(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	send := func(c *transport.Conn, s string) {
		p := wire.Packet{ID: c.NextID(), Flags: wire.Flags(wire.TypeCall, true, 0), Data: append([]byte{0xa1}, s...)}
		if err := c.SendPacket(context.Background(), &p); err != nil {
			t.Fatal(err)
		}
	}
	slow, fast := dial("slow"), dial("fast")
	send(slow, "a")
	if s := next(t, got); s != "slow:a" {
		t.Fatalf("got %s", s)
	}
	send(slow, "b") // waits behind the hold
	send(fast, "c")
	if s := next(t, got); s != "fast:c" {
		t.Fatalf("got %s, want fast:c while slow is held", s)
	}
	select {
	case s := <-got:
		t.Fatalf("got %s while slow is held", s)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if s := next(t, got); s != "slow:b" {
		t.Fatalf("got %s after the release, want slow:b", s)
	}
	// Outside its reader's publish Hold registers nothing: the caller
	// must wait itself.
	if slow.Hold(func() { t.Error("a hold made outside a publish ran") }) {
		t.Fatal("Hold outside a publish reported true")
	}
}
