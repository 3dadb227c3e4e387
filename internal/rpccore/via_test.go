package rpccore

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/peer"
	"github.com/netron-go/netron/rpc"
)

// switchable is a ConnSource whose connection the test swaps.
type switchable struct {
	conn atomic.Pointer[transport.Conn]
	err  atomic.Pointer[error]
}

func (s *switchable) ActiveConn() (*transport.Conn, error) {
	if e := s.err.Load(); e != nil {
		return nil, *e
	}
	return s.conn.Load(), nil
}

// rpcServer serves calc@1.0.0 on a loopback listener of its own.
func rpcServer(t *testing.T) string {
	t.Helper()
	b := bus.New()
	reg := NewRegistry("server")
	if _, err := reg.Expose("calc@1.0.0", calc{}); err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(b, reg)
	if err != nil {
		t.Fatal(err)
	}
	hub := transport.NewHub(b, "server")
	addr, err := hub.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close(); srv.Close(); b.Close() })
	return "ws://" + addr.String()
}

// A handle made through a ConnSource follows its connection: on a new one
// (to a node whose ids differ) it looks its service up again; without one
// it fails at once with the source's error.
func TestRemoteViaFollowsTheConnection(t *testing.T) {
	ctx := context.Background()
	url1, url2 := rpcServer(t), rpcServer(t)
	b := bus.New()
	c, err := NewClient(b)
	if err != nil {
		t.Fatal(err)
	}
	hub := transport.NewHub(b, "client")
	t.Cleanup(func() { hub.Close(); c.Close(); b.Close() })
	conn1, err := hub.Dial(ctx, url1)
	if err != nil {
		t.Fatal(err)
	}
	conn2, err := hub.Dial(ctx, url2)
	if err != nil {
		t.Fatal(err)
	}
	src := &switchable{}
	src.conn.Store(conn1)
	svc, err := c.QueryInterfaceVia(ctx, src, "calc@^1")
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := rpc.Call[int](ctx, svc, "add", 1, 2); err != nil || sum != 3 {
		t.Fatalf("add on the first connection: %d %v", sum, err)
	}
	down := error(peer.ErrDisconnected)
	src.err.Store(&down)
	if _, err := svc.Call(ctx, "add", 1, 2); !errors.Is(err, peer.ErrDisconnected) {
		t.Fatalf("without a connection: %v", err)
	}
	src.err.Store(nil)
	src.conn.Store(conn2)
	if sum, err := rpc.Call[int](ctx, svc, "add", 2, 3); err != nil || sum != 5 {
		t.Fatalf("add on the second connection: %d %v", sum, err)
	}
	if svc.PeerID() != "server" {
		t.Fatalf("PeerID %q", svc.PeerID())
	}
	// RemoteVia with a definition from elsewhere resolves it on first use.
	other, err := c.QueryInterface(ctx, conn1, "calc@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	via := c.RemoteVia(src, serviceDef(other)) // taken as valid on conn2: it is not
	if _, err := via.Call(ctx, "add", 1, 1); !errors.Is(err, rpc.ErrServiceNotFound) {
		t.Fatalf("a definition id of another node: %v", err)
	}
	empty := &switchable{}
	empty.err.Store(&down)
	if _, err := c.RemoteVia(empty, serviceDef(other)).Call(ctx, "add", 1, 1); !errors.Is(err, peer.ErrDisconnected) {
		t.Fatalf("via an empty source: %v", err)
	}
	lazy := &switchable{}
	lazy.err.Store(&down)
	h := c.RemoteVia(lazy, serviceDef(other))
	lazy.err.Store(nil)
	lazy.conn.Store(conn2)
	if sum, err := rpc.Call[int](ctx, h, "add", 4, 4); err != nil || sum != 8 {
		t.Fatalf("a handle made without a connection: %d %v", sum, err)
	}
}
