package netron_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/peer"
	"github.com/netron-go/netron/rpc"
)

type WhoAmI struct{}

func (WhoAmI) Who(ctx context.Context) string {
	if id, ok := peer.IdentityFrom(ctx); ok {
		return id.Subject
	}
	return "anonymous"
}

func (WhoAmI) Secret() string { return "42" }

func TestAuthenticationAndAuthorization(t *testing.T) {
	key := "0123456789abcdef0123"
	acl := rpc.NewACL(true). // default deny
					Allow("ops", "whoami", "*").
					Allow("*", "whoami@1.0.0", "who")
	server := startNode(t, netron.Config{ID: "server", Host: "127.0.0.1", Server: true,
		Auth: netron.AuthConfig{HMACKey: key}, Authorizer: acl})
	for _, svc := range []string{"whoami@1.0.0", "hidden@1.0.0"} {
		if err := server.Expose(svc, WhoAmI{}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	token := func(sub string) string {
		tok, err := peer.NewHMACToken([]byte(key), sub, 0)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	// No token, or a bad one: rejected before any call.
	for _, tok := range []string{"", "forged.token"} {
		c := startNode(t, netron.Config{ID: "anon", Auth: netron.AuthConfig{DialToken: tok}})
		if _, err := c.Connect(ctx, server.URL()); !errors.Is(err, peer.ErrUnauthenticated) {
			t.Fatalf("token %q: %v", tok, err)
		}
	}
	if n := len(server.Peers()); n != 0 {
		t.Fatalf("%d unauthenticated peers", n)
	}

	dev := startNode(t, netron.Config{ID: "dev", Auth: netron.AuthConfig{DialToken: token("dev")}})
	p, err := dev.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := p.Service(ctx, "whoami@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rpc.Call[string](ctx, svc, "who"); err != nil || got != "dev" {
		t.Fatalf("who = %q, %v", got, err)
	}
	// Forbidden looks exactly like missing.
	_, errForbidden := svc.Call(ctx, "secret")
	_, errMissing := svc.Call(ctx, "nosuch")
	if !errors.Is(errForbidden, rpc.ErrMethodNotFound) || !errors.Is(errMissing, rpc.ErrMethodNotFound) {
		t.Fatalf("secret: %v; nosuch: %v", errForbidden, errMissing)
	}
	if _, err := p.Service(ctx, "hidden@1.0.0"); !errors.Is(err, rpc.ErrServiceNotFound) {
		t.Fatalf("hidden service: %v", err)
	}
	if _, ok := p.Services()["hidden@1.0.0"]; ok {
		t.Fatal("the catalogue shows a hidden service")
	}

	ops := startNode(t, netron.Config{ID: "ops", Auth: netron.AuthConfig{DialToken: token("ops")}})
	po, err := ops.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	so, err := po.Service(ctx, "whoami")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rpc.Call[string](ctx, so, "secret"); err != nil || got != "42" {
		t.Fatalf("ops secret = %q, %v", got, err)
	}
}

func TestSharedTokenNodes(t *testing.T) {
	server := startNode(t, netron.Config{ID: "server", Host: "127.0.0.1", Server: true, Auth: netron.AuthConfig{Token: "s3cret"}})
	if err := server.Expose("whoami@1.0.0", WhoAmI{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := startNode(t, netron.Config{ID: "x", Auth: netron.AuthConfig{Token: "wrong"}}).Connect(ctx, server.URL()); !errors.Is(err, peer.ErrUnauthenticated) {
		t.Fatalf("wrong token: %v", err)
	}
	p, err := startNode(t, netron.Config{ID: "y", Auth: netron.AuthConfig{Token: "s3cret"}}).Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := p.Service(ctx, "whoami")
	if got, _ := rpc.Call[string](ctx, svc, "who"); got != "token" {
		t.Fatalf("who = %q", got)
	}
}

// A peer over its limit of concurrent requests gets 429 at once; the
// requests within the limit complete.
func TestPeerConcurrencyLimit(t *testing.T) {
	_, _, svc := pairWith(t, netron.Config{ID: "server", Host: "127.0.0.1", Server: true, MaxConcurrentRequestsPerPeer: 4})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok, limited int
	for range 12 {
		wg.Go(func() {
			_, err := svc.Call(context.Background(), "sleep", 300)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, rpc.ErrTooManyRequests):
				limited++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// At most 4 ran (fewer when another request of this peer, such as the
	// catalogue sync after Connect, held a slot); the rest got 429 at once.
	if ok == 0 || ok > 4 || limited < 8 || ok+limited != 12 {
		t.Fatalf("%d completed, %d limited", ok, limited)
	}
}

// A caller that waits for each reply before its next call never exceeds
// a limit of one: the server stops counting a call before its reply goes
// out, not after.
func TestPeerConcurrencyLimitSequential(t *testing.T) {
	_, _, svc := pairWith(t, netron.Config{ID: "server", Host: "127.0.0.1", Server: true, MaxConcurrentRequestsPerPeer: 1})
	for i := range 2000 {
		if _, err := svc.Call(context.Background(), "int", i); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}

// Blob's Echo returns what it is given and counts its calls.
type Blob struct{ calls atomic.Int64 }

func (b *Blob) Echo(v []byte) []byte {
	b.calls.Add(1)
	return v
}

// deafPeer connects to server as a raw WebSocket peer "deaf" that sends
// CALLs of blob@1.0.0's echo and never reads: requests of 128 KiB, each
// once the one before ran, whose replies fill the socket buffers and the
// outbound queue until a reply waits for room (the server's connection
// counts a waiting sender: a signal, not a guess) or the server closes the
// connection. (Replies are kept small enough that a stuck write gets
// little of the write watchdog's grace for large messages.) It returns the
// server's connection to the peer, and a function that sends one more
// small request.
func deafPeer(t *testing.T, server *netron.Node) (*transport.Conn, func() error) {
	t.Helper()
	blob := &Blob{}
	if err := server.Expose("blob@1.0.0", blob); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ws, _, err := websocket.Dial(ctx, server.URL()+"/?id=deaf", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	if _, _, err := ws.Read(ctx); err != nil { // the hello
		t.Fatal(err)
	}
	var conn *transport.Conn
	waitFor(t, "the server to count the deaf peer", func() bool {
		for _, p := range server.Peers() {
			if p.ID() == "deaf" {
				conn = netron.ConnOf(p)
			}
		}
		return conn != nil
	})
	id := uint32(0)
	request := func(arg []byte) error {
		id++
		b := wire.AppendHeader(nil, id, wire.Flags(wire.TypeCall, true, 0))
		b = wire.AppendArrayHeader(b, 3)
		b = wire.AppendString(b, "blob@1.0.0")
		b = wire.AppendString(b, "echo")
		b = wire.AppendBin(b, arg)
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return ws.Write(wctx, websocket.MessageBinary, b)
	}
	big := make([]byte, 128<<10)
	deadline := time.Now().Add(30 * time.Second)
	congested := func() bool { return conn.Waiting() > 0 || conn.Err() != nil } // or closed by the write timeout
	for sent := int64(1); !congested(); sent++ {
		if err := request(big); err != nil {
			if congested() {
				break
			}
			t.Fatalf("request %d: %v", sent, err)
		}
		for blob.calls.Load() < sent && !congested() {
			if time.Now().After(deadline) {
				t.Fatalf("the deaf peer's replies filled nothing in 30 s (%d sent)", sent)
			}
			time.Sleep(time.Millisecond)
		}
	}
	return conn, func() error { return request([]byte("x")) }
}

// A peer that sends requests and stops reading its replies holds at most
// its own share of the node's request slots: requests over its limit are
// refused without a slot (and the refusal dropped once its queue is full),
// so other peers' calls go on. Before, its refusals each took a slot and
// waited for room in its queue, until no slot was left for anyone.
func TestDeafPeerIsolated(t *testing.T) {
	server, _, svc := pairWith(t, netron.Config{ID: "server", Host: "127.0.0.1", Server: true,
		MaxConcurrentRequests: 16, MaxConcurrentRequestsPerPeer: 4, WriteTimeout: -1})
	conn, more := deafPeer(t, server)
	// It sends small requests until as many replies wait for room as it
	// may have requests (the ones over its limit are refused).
	waitFor(t, "the deaf peer's replies to wait for room", func() bool {
		if conn.Waiting() == 4 {
			return true
		}
		if err := more(); err != nil {
			t.Fatalf("a small request: %v", err)
		}
		return false
	})
	for range 100 { // and goes on sending
		if err := more(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := svc.Call(ctx, "int", i)
		cancel()
		if err != nil {
			t.Fatalf("call %d of a well-behaved peer: %v", i, err)
		}
	}
	if n := conn.Waiting(); n > 4 {
		t.Fatalf("%d of the deaf peer's replies wait for room; its limit is 4", n)
	}
}

// The write timeout closes the connection of a peer that stops reading,
// which frees the requests it held.
func TestDeafPeerClosedByWriteTimeout(t *testing.T) {
	server, _, svc := pairWith(t, netron.Config{ID: "server", Host: "127.0.0.1", Server: true,
		WriteTimeout: 300 * time.Millisecond})
	gone := make(chan error, 1)
	defer on(t, server, netron.EventPeerDisconnected, func(e netron.Event) {
		if pe, ok := e.Args[0].(netron.PeerEvent); ok && pe.PeerID == "deaf" {
			select {
			case gone <- pe.Err:
			default:
			}
		}
	})()
	deafPeer(t, server)
	select {
	case err := <-gone:
		if !errors.Is(err, peer.ErrWriteTimeout) {
			t.Fatalf("deaf peer disconnected with %v, want peer.ErrWriteTimeout", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the deaf peer is still connected")
	}
	if _, err := svc.Call(context.Background(), "int", 1); err != nil {
		t.Fatal(err)
	}
}
