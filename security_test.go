package netron_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/netron-go/netron"
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

// deafPeer connects to url as a raw WebSocket peer that sends CALLs of
// target and never reads: first 100 of 128 KiB, whose replies fill the
// socket buffers, then n small ones, whose replies fill the outbound queue.
// (Replies are kept small enough that a stuck write gets little of the
// write watchdog's grace for large messages.)
func deafPeer(t *testing.T, url, target string, n int) *websocket.Conn {
	t.Helper()
	ctx := context.Background()
	ws, _, err := websocket.Dial(ctx, url+"/?id=deaf", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	if _, _, err := ws.Read(ctx); err != nil { // the hello
		t.Fatal(err)
	}
	big := make([]byte, 128<<10)
	go func() {
		for i := range 100 + n {
			b := wire.AppendHeader(nil, uint32(i+1), wire.Flags(wire.TypeCall, true, 0))
			b = wire.AppendArrayHeader(b, 3)
			b = wire.AppendString(b, target)
			if i < 100 {
				b = wire.AppendString(b, "bytes")
				b = wire.AppendBin(b, big)
			} else {
				b = wire.AppendString(b, "int")
				b, _ = wire.AppendMarshal(b, i)
			}
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := ws.Write(wctx, websocket.MessageBinary, b)
			cancel()
			if err != nil {
				return
			}
		}
	}()
	return ws
}

// A peer that sends requests and stops reading its replies holds at most
// its own share of the node's request slots: requests over its limit are
// refused without a slot (and the refusal dropped once its queue is full),
// so other peers' calls go on. Before, its refusals each took a slot and
// waited for room in its queue, until no slot was left for anyone.
func TestDeafPeerIsolated(t *testing.T) {
	server, _, svc := pairWith(t, netron.Config{ID: "server", Host: "127.0.0.1", Server: true,
		MaxConcurrentRequests: 16, MaxConcurrentRequestsPerPeer: 4, WriteTimeout: -1})
	deafPeer(t, server.URL(), svc.Definition().ID, 2000)
	// Its replies fill the buffers and the queue, until as many senders
	// wait for room as it may have requests.
	waitFor(t, "the deaf peer's replies to wait for room", func() bool {
		for _, p := range server.Peers() {
			if p.ID() == "deaf" {
				return p.Conn().Waiting() == 4
			}
		}
		return false
	})
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := svc.Call(ctx, "int", i)
		cancel()
		if err != nil {
			t.Fatalf("call %d of a well-behaved peer: %v", i, err)
		}
	}
}

// The write timeout closes the connection of a peer that stops reading,
// which frees the requests it held.
func TestDeafPeerClosedByWriteTimeout(t *testing.T) {
	server, _, svc := pairWith(t, netron.Config{ID: "server", Host: "127.0.0.1", Server: true,
		WriteTimeout: 300 * time.Millisecond})
	gone := make(chan error, 1)
	defer server.On(netron.EventPeerDisconnected, func(e netron.Event) {
		if pe, ok := e.Args[0].(netron.PeerEvent); ok && pe.PeerID == "deaf" {
			select {
			case gone <- pe.Err:
			default:
			}
		}
	})()
	deafPeer(t, server.URL(), svc.Definition().ID, 2000)
	select {
	case err := <-gone:
		if !errors.Is(err, peer.ErrWriteTimeout) {
			t.Fatalf("deaf peer disconnected with %v, want peer.ErrWriteTimeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the deaf peer is still connected")
	}
	if _, err := svc.Call(context.Background(), "int", 1); err != nil {
		t.Fatal(err)
	}
}
