package netron

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/Masterminds/semver/v3"

	"github.com/netron-go/netron/internal/rpccore"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/peer"
	"github.com/netron-go/netron/rpc"
)

// Peer is a remote node this node is connected to.
//
// A Peer from Node.Connect is a stable handle: with Config.Reconnect on
// (the default) it survives the loss of its connection. It dials the same
// URL again with exponential backoff and jitter, and on each new
// connection exchanges abilities, takes the catalogue again and renews the
// event subscriptions made with On and Events; the service handles from
// Service keep working (they look their service up again on the new
// connection). Between connections every call, lookup and subscription
// through it fails at once with an error matching ErrReconnecting and
// ErrPeerDisconnected; nothing is queued, and a call that was in flight
// when the connection dropped fails with ErrPeerDisconnected and is never
// sent again. Close stops it for good. A Peer that dialled us (accepted)
// never reconnects: it is gone when its connection closes.
type Peer struct {
	node *Node
	conn atomic.Pointer[transport.Conn] // the current connection
	rc   *redialer                      // nil: the peer does not reconnect

	mu       sync.Mutex
	catalog  map[string]rpc.ServiceDescription
	netronGo bool

	// Events (events_remote.go): subscriptions to the peer's events, and
	// the catalogue changes that arrive before its snapshot.
	ev             peerEvents
	catalogReady   bool
	catalogPending []catalogChange
	catalogSub     *peerSub // the subscription that keeps the catalogue
}

func newPeer(n *Node, conn *transport.Conn) *Peer {
	p := &Peer{node: n}
	if conn != nil {
		p.conn.Store(conn)
	}
	return p
}

// setAbilities records what the peer said of itself on conn.
func (p *Peer) setAbilities(conn *transport.Conn, a rpccore.Abilities) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.catalog = describeAll(a.Services)
	p.netronGo = a.NetronGo != nil
	if a.NetronGo != nil {
		conn.SetExtensions(&transport.Extensions{Version: a.NetronGo.Version, Names: agreed(rpccore.SupportedExtensions(), a.NetronGo.Extensions)})
	}
}

// ID returns the remote node's id (on a reconnecting peer, as the node at
// its URL announced itself on the latest connection).
func (p *Peer) ID() string { return p.conn.Load().ID() }

// Accepted reports whether the peer dialled this node (it is an inbound
// connection), rather than this node dialling it (Node.Connect, discovery).
func (p *Peer) Accepted() bool { return p.conn.Load().ServerSide() }

// Compressed reports whether the peer's connection negotiated WebSocket
// permessage-deflate (see Config.Compression): this node and the peer
// both enabled it.
func (p *Peer) Compressed() bool { return p.conn.Load().Compressed() }

// Identity returns who the peer proved to be at the handshake (see
// Config.Auth), or nil when the node does not authenticate its peers and
// for peers this node dialled.
func (p *Peer) Identity() *peer.Identity { return p.conn.Load().Identity() }

// connSource is a Peer as the RPC client sees it: the connection to use
// at each call (rpccore.ConnSource).
type connSource struct{ p *Peer }

func (s connSource) ActiveConn() (*transport.Conn, error) { return s.p.activeConn() }

// activeConn returns the open connection to use now. Between the
// connections of a reconnecting peer it returns an error that matches
// ErrReconnecting; once the peer is gone for good, the error it ended
// with. On a peer that does not reconnect it returns the connection, open
// or not: operations on a closed one fail with its error.
func (p *Peer) activeConn() (*transport.Conn, error) {
	c := p.conn.Load()
	if p.rc == nil {
		return c, nil
	}
	return c, p.rc.connErr(c)
}

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
	return p.netronGo || p.conn.Load().Extensions().Version > 0
}

// Service looks a service up on the peer with the query_interface task:
// "name" (latest), "name@1.2.3" (exact), or a semver range such as
// "name@^1" or "name@~1.2" (resolved by Go peers).
//
// On a reconnecting peer the handle follows the peer across connections:
// after a reconnect its first call looks the
// service up again by its exact qualified name, then calls it. Calls made
// while the peer is between connections fail at once with ErrReconnecting.
//
// A service the peer does not offer fails with an error matching
// rpc.ErrServiceNotFound that says what the peer offers when its catalogue
// is known (Go peers): "rpc: calculator@^9: no match (404); available:
// 1.0.0, 1.2.0".
func (p *Peer) Service(ctx context.Context, spec string) (*rpc.Service, error) {
	var svc *rpc.Service
	var err error
	if p.rc != nil {
		svc, err = p.node.client.QueryInterfaceVia(ctx, connSource{p}, spec)
	} else {
		svc, err = p.node.client.QueryInterface(ctx, p.conn.Load(), spec)
	}
	if err != nil {
		return nil, withAvailable(err, spec, slices.Collect(maps.Keys(p.Services())))
	}
	return svc, nil
}

// withAvailable adds to a service-not-found error for spec what exists
// among offered (qualified names): the versions of its service, or else
// every service offered.
func withAvailable(err error, spec string, offered []string) error {
	re, ok := err.(*rpc.Error)
	if !ok || len(offered) == 0 || !errors.Is(err, rpc.ErrServiceNotFound) {
		return err
	}
	name, _, _ := strings.Cut(spec, "@")
	var versions []*semver.Version
	for _, qn := range offered {
		if n, v, _ := strings.Cut(qn, "@"); n == name {
			if sv, err := semver.NewVersion(v); err == nil {
				versions = append(versions, sv)
			}
		}
	}
	c := *re
	if len(versions) > 0 {
		slices.SortFunc(versions, func(a, b *semver.Version) int { return a.Compare(b) })
		c.Available = nil
		for _, v := range versions {
			c.Available = append(c.Available, v.Original())
		}
	} else {
		c.Available = slices.Sorted(slices.Values(offered))
	}
	return &c
}

// Services returns the peer's catalogue (qualified name → description): the
// one it handed over when we connected, kept current by its service:expose
// and service:unexpose events when the peer allows service events (Go
// peers and the old Netron package with allowServiceEvents). Empty for
// peers without the abilities task (Titan).
func (p *Peer) Services() map[string]rpc.ServiceDescription {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]rpc.ServiceDescription, len(p.catalog))
	for k, v := range p.catalog {
		out[k] = cloneDescription(v)
	}
	return out
}

// cloneDescription returns a copy of d that shares nothing with it.
func cloneDescription(d rpc.ServiceDescription) rpc.ServiceDescription {
	d.Properties = maps.Clone(d.Properties)
	if d.Methods != nil {
		ms := make(map[string]rpc.MethodDescription, len(d.Methods))
		for k, m := range d.Methods {
			m.Arguments = slices.Clone(m.Arguments)
			ms[k] = m
		}
		d.Methods = ms
	}
	return d
}

// RunTask runs a task on the peer.
func (p *Peer) RunTask(ctx context.Context, name string, args ...any) (rpc.Result, error) {
	conn, err := p.activeConn()
	if err != nil {
		return rpc.Result{}, err
	}
	return p.node.client.RunTask(ctx, conn, name, args...)
}

// Done is closed when the peer is gone for good: when its connection
// closes, or, for a reconnecting peer, when it stops reconnecting (Close,
// Node.Stop, or Config.Reconnect.MaxAttempts spent).
func (p *Peer) Done() <-chan struct{} {
	if p.rc != nil {
		return p.rc.done
	}
	return p.conn.Load().Done()
}

// Err returns nil while the peer is connected. Otherwise it returns why
// not, matching ErrPeerDisconnected: the connection's error, or, while a
// reconnecting peer is between connections, an error that also matches
// ErrReconnecting.
func (p *Peer) Err() error {
	_, err := p.activeConn()
	if err == nil && p.rc == nil {
		err = p.conn.Load().Err()
	}
	return err
}

// Close closes the connection to the peer. A reconnecting peer stops
// reconnecting: a dial in progress is abandoned, and a connection it
// completes anyway is closed at once, never used.
func (p *Peer) Close() error {
	if p.rc != nil {
		p.rc.close()
	}
	return p.conn.Load().Close()
}

// describeAll returns the descriptions of defs (nil for nil).
func describeAll(defs map[string]wire.Definition) map[string]rpc.ServiceDescription {
	if defs == nil {
		return nil
	}
	out := make(map[string]rpc.ServiceDescription, len(defs))
	for k, d := range defs {
		out[k] = rpccore.Describe(d)
	}
	return out
}
