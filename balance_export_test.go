package netron

import (
	"github.com/netron-go/netron/internal/rpccore"
	"github.com/netron-go/netron/internal/transport"
)

// Test hooks of balancing.

// PoolMembers returns the instances of the pool of spec ("name@range").
func PoolMembers(n *Node, spec string) []rpccore.Member {
	pl, err := n.poolFor(spec)
	if err != nil {
		return nil
	}
	return pl.p.Members()
}

// OrphanCounter captures n's connections to the node id now, and returns
// a func that counts the calls that were waiting for their reply on them
// when they closed.
func OrphanCounter(n *Node, id string) func() int {
	var conns []*transport.Conn
	for _, c := range n.hub.Conns() {
		if c.ID() == id {
			conns = append(conns, c)
		}
	}
	return func() int {
		total := 0
		for _, c := range conns {
			total += n.client.Orphaned(c)
		}
		return total
	}
}
