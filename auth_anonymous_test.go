package netron_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/peer"
	"github.com/netron-go/netron/rpc"
)

// aliceAuth accepts alice/secret (basic authentication, as the
// authenticate task passes a username and password) and the bearer token
// "alice-token"; it counts its calls.
func aliceAuth(calls *atomic.Int32) peer.Authenticator {
	return peer.AuthenticatorFunc(func(r *http.Request) (*peer.Identity, error) {
		calls.Add(1)
		if u, pw, ok := r.BasicAuth(); ok && u == "alice" && pw == "secret" {
			return &peer.Identity{Subject: "alice", Method: "password"}, nil
		}
		if r.Header.Get("Authorization") == "Bearer alice-token" {
			return &peer.Identity{Subject: "alice", Method: "token"}, nil
		}
		return nil, peer.ErrUnauthenticated
	})
}

// anonServer is a node with an Authenticator that admits anonymous peers:
// they may look up public@1.0.0 and call open@1.0.0; private@1.0.0 needs
// authentication.
func anonServer(t *testing.T, calls *atomic.Int32, maxFailures int) *netron.Node {
	t.Helper()
	server := startNode(t, netron.Config{ID: "srv", Host: "127.0.0.1", Server: true, Authenticator: aliceAuth(calls),
		Auth: netron.AuthConfig{AllowAnonymous: true, AnonymousQuery: "public", AnonymousCall: "nosuch, open@1.0.0", MaxFailures: maxFailures}})
	for _, svc := range []string{"public@1.0.0", "open@1.0.0", "private@1.0.0"} {
		if err := server.Expose(svc, WhoAmI{}); err != nil {
			t.Fatal(err)
		}
	}
	return server
}

// authRequired checks that p is Titan's 401 "Authentication required"
// with details want.
func authRequired(t *testing.T, what string, p wire.Packet, want map[string]any) {
	t.Helper()
	te, ok := decodeAny(t, p.Data).(wire.TitanError)
	if p.Flags&0x80 == 0 || !ok || te.Code != 401 || te.Message != "Authentication required" || len(te.Details) != len(want) {
		t.Fatalf("%s: %#x %#v", what, p.Flags, decodeAny(t, p.Data))
	}
	for k, v := range want {
		if te.Details[k] != v {
			t.Fatalf("%s: details %v, want %v", what, te.Details, want)
		}
	}
	if !errors.Is(rpcError(t, p), rpc.ErrAuthenticationRequired) {
		t.Fatalf("%s: %v does not match ErrAuthenticationRequired", what, rpcError(t, p))
	}
}

// TestAnonymousTitanClient replays what a Titan client sends on a
// connection without credentials: the policy's refusals, then Titan's
// authenticate bytes (capture 2 #121) and the answers of the parity
// spec's vectors, then the calls its new identity may make.
func TestAnonymousTitanClient(t *testing.T) {
	var calls atomic.Int32
	server := anonServer(t, &calls, 0)
	c := dialRaw(t, server.URL(), "titan-client", false)
	task := func(id uint32, args ...any) wire.Packet {
		c.send(append(wire.AppendHeader(nil, id, 0x44), mustMarshal(t, args)...))
		return c.recv()
	}
	defID := func(p wire.Packet) string {
		t.Helper()
		def, ok := decodeAny(t, p.Data).(wire.Definition)
		if p.Flags != 0x04 || !ok {
			t.Fatalf("query_interface: %#x %#v", p.Flags, decodeAny(t, p.Data))
		}
		return def.ID
	}
	call := func(id uint32, def, method string) wire.Packet {
		c.send(append(wire.AppendHeader(nil, id, 0x43), mustMarshal(t, []any{def, method})...))
		return c.recv()
	}

	pub := defID(task(1, "query_interface", "public"))
	authRequired(t, "query private", task(2, "query_interface", "private"), map[string]any{"service": "private"})
	authRequired(t, "query unknown", task(3, "query_interface", "nosuch"), map[string]any{"service": "nosuch"})
	authRequired(t, "call public", call(4, pub, "who"), map[string]any{"service": "public@1.0.0", "method": "who"})
	authRequired(t, "call unknown id", call(5, "00000000-0000-0000-0000-000000000000", "who"), map[string]any{"service": "00000000-0000-0000-0000-000000000000", "method": "who"})
	authRequired(t, "subscribe", task(6, "subscribe", "service:expose"), map[string]any{"task": "subscribe"})
	authRequired(t, "emit", task(7, "emit", "x", 1), map[string]any{"task": "emit"})
	open := defID(task(8, "query_interface", "open@1.0.0"))
	if p := call(9, open, "who"); p.Flags != 0x03 || decodeAny(t, p.Data) != "anonymous" {
		t.Fatalf("anonymous call of open: %#x %#v", p.Flags, decodeAny(t, p.Data))
	}
	if calls.Load() != 1 { // the upgrade
		t.Fatalf("the authenticator ran %d times before authenticate", calls.Load())
	}

	// Wrong password: Titan's failure map (vector "authenticate response
	// failure"), and the connection stays anonymous.
	c.send(unhex(t, "00 00 00 2a 44 92 ac 61 75 74 68 65 6e 74 69 63 61 74 65 82 a8 75 73 65 72 6e 61 6d 65 a5 61 6c 69 63 65 a8 70 61 73 73 77 6f 72 64 a5 77 72 6f 6e 67"))
	if p := c.recv(); !bytes.Equal(append(wire.AppendHeader(nil, p.ID, p.Flags), p.Data...), unhex(t, `00 00 00 2a 04 82 a7 73 75 63 63 65 73 73 c2 a5 65 72 72 6f 72 b3 49 6e 76 61 6c 69 64 20 63 72 65 64 65 6e 74 69 61 6c 73`)) {
		t.Fatalf("wrong password: %#x %x", p.Flags, p.Data)
	}
	authRequired(t, "query private after a failure", task(10, "query_interface", "private"), map[string]any{"service": "private"})

	// capture 2 #121, byte for byte: {username: alice, password: secret}.
	// The answer is the vector "authenticate response success" but for
	// roles, which an Identity does not carry: [] where the vector has
	// ["user"].
	c.send(unhex(t, "00 00 00 2a 44 92 ac 61 75 74 68 65 6e 74 69 63 61 74 65 82 a8 75 73 65 72 6e 61 6d 65 a5 61 6c 69 63 65 a8 70 61 73 73 77 6f 72 64 a6 73 65 63 72 65 74"))
	want := unhex(t, "00 00 00 2a 04 82 a7 73 75 63 63 65 73 73 c3 a7 63 6f 6e 74 65 78 74 83 a6 75 73 65 72 49 64 a5 61 6c 69 63 65 a5 72 6f 6c 65 73 90 ab 70 65 72 6d 69 73 73 69 6f 6e 73 90")
	if p := c.recv(); !bytes.Equal(append(wire.AppendHeader(nil, p.ID, p.Flags), p.Data...), want) {
		t.Fatalf("authenticate: %#x %x", p.Flags, p.Data)
	}
	// Sent after the reply: the handler sees alice.
	priv := defID(task(11, "query_interface", "private"))
	if p := call(12, priv, "who"); p.Flags != 0x03 || decodeAny(t, p.Data) != "alice" {
		t.Fatalf("private after authenticate: %#x %#v", p.Flags, decodeAny(t, p.Data))
	}
	if p := task(13, "subscribe", "service:expose"); p.Flags != 0x04 {
		t.Fatalf("subscribe after authenticate: %#x %#v", p.Flags, decodeAny(t, p.Data))
	}
}

// TestAnonymousGoClient: a Go node without credentials connects,
// is refused what the policy does not allow, authenticates with the task
// and then calls as alice; calls running meanwhile on other goroutines
// read the identity as it changes (run with -race).
func TestAnonymousGoClient(t *testing.T) {
	var calls atomic.Int32
	server := anonServer(t, &calls, 0)
	client := startNode(t, netron.Config{ID: "cli"})
	ctx := context.Background()
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Service(ctx, "private"); !errors.Is(err, rpc.ErrAuthenticationRequired) {
		t.Fatalf("private before authenticate: %v", err)
	}
	if _, err := p.RunTask(ctx, "subscribe", "x"); !errors.Is(err, rpc.ErrAuthenticationRequired) {
		t.Fatalf("subscribe before authenticate: %v", err)
	}
	open, err := p.Service(ctx, "open")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if got, err := rpc.Call[string](ctx, open, "who"); err != nil || (got != "anonymous" && got != "alice") {
					t.Errorf("who = %q, %v", got, err)
					return
				}
			}
		})
	}
	r, err := p.RunTask(ctx, "authenticate", map[string]any{"token": "alice-token"})
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Success bool `msgpack:"success"`
	}
	if err := r.Decode(&res); err != nil || !res.Success {
		t.Fatalf("authenticate: %+v %v", res, err)
	}
	priv, err := p.Service(ctx, "private")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rpc.Call[string](ctx, priv, "who"); err != nil || got != "alice" {
		t.Fatalf("private who = %q, %v", got, err)
	}
	if got, err := rpc.Call[string](ctx, open, "who"); err != nil || got != "alice" {
		t.Fatalf("open who after authenticate = %q, %v", got, err)
	}
	close(stop)
	wg.Wait()
	if id := server.Peers()[0].Identity(); id == nil || id.Subject != "alice" || id.Method != "token" {
		t.Fatalf("server's identity of the peer: %+v", id)
	}
}

// TestAnonymousStrictUpgrade: AllowAnonymous admits an upgrade without
// credentials only; a wrong token is still refused at the upgrade, and
// without AllowAnonymous an upgrade without credentials is too.
func TestAnonymousStrictUpgrade(t *testing.T) {
	var calls atomic.Int32
	ctx := context.Background()
	server := anonServer(t, &calls, 0)
	if _, err := startNode(t, netron.Config{ID: "x", Auth: netron.AuthConfig{DialToken: "wrong"}}).Connect(ctx, server.URL()); !errors.Is(err, peer.ErrUnauthenticated) {
		t.Fatalf("wrong token: %v", err)
	}
	p, err := startNode(t, netron.Config{ID: "y", Auth: netron.AuthConfig{DialToken: "alice-token"}}).Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Service(ctx, "private"); err != nil {
		t.Fatalf("authenticated at the upgrade: %v", err)
	}
	strict := startNode(t, netron.Config{ID: "strict", Host: "127.0.0.1", Server: true, Authenticator: aliceAuth(&calls)})
	if _, err := startNode(t, netron.Config{ID: "z"}).Connect(ctx, strict.URL()); !errors.Is(err, peer.ErrUnauthenticated) {
		t.Fatalf("no credentials without AllowAnonymous: %v", err)
	}
	if _, err := netron.New(netron.Config{Auth: netron.AuthConfig{AllowAnonymous: true}}); !errors.Is(err, netron.ErrInvalidConfig) {
		t.Fatalf("AllowAnonymous without an authenticator: %v", err)
	}
}

// TestAuthFailureLimit: the connection is closed (1008) right after the
// answer to its MaxFailures-th failed authenticate, and a peer that sends
// many attempts at once gets no more than MaxFailures tries.
func TestAuthFailureLimit(t *testing.T) {
	var calls atomic.Int32
	server := anonServer(t, &calls, 3)
	wrong := mustMarshal(t, []any{"authenticate", map[string]any{"username": "alice", "password": "guess"}})

	c := dialRaw(t, server.URL(), "guesser", false)
	for i := range uint32(3) {
		c.send(append(wire.AppendHeader(nil, i+1, 0x44), wrong...))
		p := c.recv()
		if m, ok := decodeAny(t, p.Data).(map[string]any); p.Flags != 0x04 || !ok || m["success"] != false || m["error"] != "Invalid credentials" {
			t.Fatalf("attempt %d: %#x %#v", i+1, p.Flags, decodeAny(t, p.Data))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := c.ws.Read(ctx); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("after 3 failures: %v", err)
	}

	// 20 attempts at once: at most 3 reach the Authenticator, and the
	// connection closes.
	calls.Store(0)
	c = dialRaw(t, server.URL(), "flooder", false)
	upgrades := calls.Load()
	for i := range uint32(20) {
		if err := c.ws.Write(ctx, websocket.MessageBinary, append(wire.AppendHeader(nil, i+1, 0x44), wrong...)); err != nil {
			break // closed already
		}
	}
	for {
		_, msg, err := c.ws.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
				t.Fatalf("flood: %v", err)
			}
			break
		}
		p, err := wire.Decode(msg)
		if err != nil {
			t.Fatal(err)
		}
		if m, ok := decodeAny(t, p.Data).(map[string]any); !ok || m["success"] != false {
			t.Fatalf("flood answer: %#x %#v", p.Flags, decodeAny(t, p.Data))
		}
	}
	if n := calls.Load() - upgrades; n > 3 {
		t.Fatalf("%d attempts reached the Authenticator, limit 3", n)
	}
}
