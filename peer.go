package netron

import (
	"context"
	"slices"
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

	// Events (events_remote.go): subscriptions to the peer's events, and
	// the catalogue changes that arrive before its snapshot.
	ev             peerEvents
	catalogReady   bool
	catalogPending []catalogChange
}

func (p *Peer) setAbilities(a rpc.Abilities) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.catalog = a.Services
	if a.NetronGo != nil {
		p.netronGo = true
		p.conn.SetExtensions(&peer.Extensions{Version: a.NetronGo.Version, Names: agreed(rpc.SupportedExtensions(), a.NetronGo.Extensions)})
	}
}

// ID returns the remote node's id.
func (p *Peer) ID() string { return p.conn.ID() }

// Conn returns the underlying connection.
func (p *Peer) Conn() *peer.Conn { return p.conn }

// agreed returns the extensions both sides offered, in our order.
func agreed(ours, theirs []string) []string {
	var out []string
	for _, o := range ours {
		if slices.Contains(theirs, o) {
			out = append(out, o)
		}
	}
	return out
}

// IsGo reports whether the peer is a Netron-for-Go node (it negotiated our
// extensions, whichever side dialled) rather than a plain Netron peer.
func (p *Peer) IsGo() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.netronGo || p.conn.Extensions().Version > 0
}

// Service looks a service up on the peer with the query_interface task:
// "name" (latest), "name@1.2.3" (exact), or a semver range such as
// "name@^1" or "name@~1.2" (resolved by Go peers).
func (p *Peer) Service(ctx context.Context, spec string) (*rpc.Service, error) {
	return p.node.client.QueryInterface(ctx, p.conn, spec)
}

// Services returns the peer's catalogue (qualified name → definition): the
// one it handed over when we connected, kept current by its service:expose
// and service:unexpose events when the peer allows service events (Go
// peers and the old Netron package with allowServiceEvents). Empty for
// peers without the abilities task (Titan).
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
