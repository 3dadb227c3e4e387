package netron

import (
	"context"
	"sync"

	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/peer"
	"github.com/netron-go/netron/rpc"
)

// Peer is a connected remote node.
type Peer struct {
	node *Node
	conn *peer.Conn

	mu       sync.Mutex
	catalog  map[string]wire.Definition
	netronGo bool
}

func (p *Peer) setAbilities(a rpc.Abilities) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.catalog = a.Services
	if a.NetronGo != nil {
		p.netronGo = true
		p.conn.SetExtensions(&peer.Extensions{Version: a.NetronGo.Version, Names: a.NetronGo.Extensions})
	}
}

// ID returns the remote node's id.
func (p *Peer) ID() string { return p.conn.ID() }

// Conn returns the underlying connection.
func (p *Peer) Conn() *peer.Conn { return p.conn }

// IsGo reports whether the peer is a Netron-for-Go node (it negotiated our
// extensions) rather than a plain Netron peer.
func (p *Peer) IsGo() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.netronGo
}

// Service looks a service up on the peer with the query_interface task:
// "name" (latest), "name@1.2.3" (exact), or a semver range such as
// "name@^1" or "name@~1.2" (resolved by Go peers).
func (p *Peer) Service(ctx context.Context, spec string) (*rpc.Service, error) {
	return p.node.client.QueryInterface(ctx, p.conn, spec)
}

// Services returns the catalogue the peer handed over when we connected
// (qualified name → definition); empty for peers without the abilities
// task.
func (p *Peer) Services() map[string]wire.Definition {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]wire.Definition, len(p.catalog))
	for k, v := range p.catalog {
		out[k] = v
	}
	return out
}

// RunTask runs a task on the peer.
func (p *Peer) RunTask(ctx context.Context, name string, args ...any) (rpc.Result, error) {
	return p.node.client.RunTask(ctx, p.conn, name, args...)
}

// Done is closed when the connection closes.
func (p *Peer) Done() <-chan struct{} { return p.conn.Done() }

// Err returns why the connection closed (it matches ErrPeerDisconnected),
// or nil while it is open.
func (p *Peer) Err() error { return p.conn.Err() }

// Close closes the connection to the peer.
func (p *Peer) Close() error { return p.conn.Close() }
