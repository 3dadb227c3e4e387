package rpccore

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/netron-go/netron/internal/streamcore"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
)

// ConnSource supplies the connection to a peer at the time of each call,
// for service handles that outlive one connection (a peer that
// reconnects).
type ConnSource interface {
	// ActiveConn returns the connection to use now, or, when there is
	// none, the error the call fails with at once (it should match
	// peer.ErrDisconnected).
	ActiveConn() (*transport.Conn, error)
}

// QueryInterfaceVia looks a service up like QueryInterface, on src's
// current connection, and returns a handle that calls through src (see
// RemoteVia).
func (c *Client) QueryInterfaceVia(ctx context.Context, src ConnSource, spec string) (*rpc.Service, error) {
	conn, err := src.ActiveConn()
	if err != nil {
		return nil, err
	}
	svc, err := c.QueryInterface(ctx, conn, spec)
	if err != nil {
		return nil, err
	}
	return c.remoteVia(src, conn, serviceDef(svc)), nil
}

// RemoteVia returns a handle for a service definition that asks src for
// the connection at every call, def being valid on src's current
// connection. A call fails at once with src's error while src has no
// connection, and is never queued or replayed. The first call on a
// connection the handle has not used yet looks the service up again by
// its exact qualified name (query_interface "name@version"), since a
// restarted node gives its services new ids, then calls it; a service the
// node no longer offers fails with its not-found error.
func (c *Client) RemoteVia(src ConnSource, def wire.Definition) *rpc.Service {
	conn, _ := src.ActiveConn()
	return c.remoteVia(src, conn, def)
}

func (c *Client) remoteVia(src ConnSource, conn *transport.Conn, def wire.Definition) *rpc.Service {
	return newService(def, c.newVia(src, conn, def))
}

// newVia returns the invoker of a service that calls through src, def
// being valid on conn (nil: none yet).
func (c *Client) newVia(src ConnSource, conn *transport.Conn, def wire.Definition) *viaInvoker {
	v := &viaInvoker{c: c, src: src, qn: def.Meta.Name, sem: make(chan struct{}, 1)}
	if def.Meta.Version != "" {
		v.qn += "@" + def.Meta.Version
	}
	if conn != nil {
		v.b.Store(&binding{conn: conn, id: def.ID})
	}
	return v
}

// viaInvoker calls a service through whatever connection its source has.
type viaInvoker struct {
	c   *Client
	src ConnSource
	qn  string
	b   atomic.Pointer[binding] // the definition id valid on a connection
	sem chan struct{}           // one lookup at a time
}

// binding is a service's definition id on one connection.
type binding struct {
	conn *transport.Conn
	id   string
}

// resolve returns the invoker for the source's connection and the
// service's id on it, looking the service up on a new connection.
func (v *viaInvoker) resolve(ctx context.Context) (remoteInvoker, string, error) {
	conn, err := v.src.ActiveConn()
	if err != nil {
		return remoteInvoker{}, "", err
	}
	if b := v.b.Load(); b != nil && b.conn == conn {
		return remoteInvoker{c: v.c, conn: conn, svc: v.qn}, b.id, nil
	}
	select {
	case v.sem <- struct{}{}:
	case <-ctx.Done():
		return remoteInvoker{}, "", ctx.Err()
	}
	defer func() { <-v.sem }()
	if b := v.b.Load(); b != nil && b.conn == conn {
		return remoteInvoker{c: v.c, conn: conn, svc: v.qn}, b.id, nil
	}
	svc, err := v.c.QueryInterface(ctx, conn, v.qn)
	if err != nil {
		return remoteInvoker{}, "", fmt.Errorf("rpc: looking %s up on the new connection to %s: %w", v.qn, conn.ID(), err)
	}
	v.b.Store(&binding{conn: conn, id: serviceDef(svc).ID})
	return remoteInvoker{c: v.c, conn: conn, svc: v.qn}, serviceDef(svc).ID, nil
}

func (v *viaInvoker) Invoke(ctx context.Context, _, method string, args []any) ([]byte, error) {
	r, id, err := v.resolve(ctx)
	if err != nil {
		return nil, err
	}
	return r.Invoke(ctx, id, method, args)
}

func (v *viaInvoker) OpenStream(ctx context.Context, _, method string, args []any) (*streamcore.Inbound, error) {
	r, id, err := v.resolve(ctx)
	if err != nil {
		return nil, err
	}
	return r.OpenStream(ctx, id, method, args)
}

func (v *viaInvoker) DecodeMax() int64 {
	if conn, err := v.src.ActiveConn(); err == nil {
		return conn.MaxDecodeMemory()
	}
	return 0 // the default cap
}

func (v *viaInvoker) PeerID() string {
	if conn, err := v.src.ActiveConn(); err == nil {
		return conn.ID()
	}
	if b := v.b.Load(); b != nil {
		return b.conn.ID()
	}
	return ""
}
