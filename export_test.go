package netron

import (
	"context"

	"github.com/netron-go/netron/internal/transport"
)

// Test hooks of the node's engines, which its API does not show.

// ConnOf returns p's current connection.
func ConnOf(p *Peer) *transport.Conn { return p.conn.Load() }

// StreamCounts returns how many streams n consumes from and produces to p.
func StreamCounts(n *Node, p *Peer) (in, out int) { return n.streams.Streams(p.conn.Load()) }

// ServerWaiting returns how many requests wait for a slot of n's server.
func ServerWaiting(n *Node) int { return n.server.Waiting() }

// DrainServer drains n's server (its Drain).
func DrainServer(ctx context.Context, n *Node) error { return n.server.Drain(ctx) }
