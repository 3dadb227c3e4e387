package app

import (
	"context"
	"sort"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/rpc"
)

// TaskListPeers is the task a Netron created by an App answers with the
// peers it is connected to, as a list of PeerInfo: what `netron peers`
// shows. Plain Netron and Titan nodes do not have it (they answer 404).
const TaskListPeers = "list_peers"

// PeerInfo describes one connection of a node, as TaskListPeers reports it.
type PeerInfo struct {
	// ID is the peer's node id.
	ID string `msgpack:"id" json:"id"`
	// Direction is "in" for a peer that dialled the node, "out" for one the
	// node dialled.
	Direction string `msgpack:"direction" json:"direction"`
	// Go is true for a Netron-for-Go peer, false for a plain Netron
	// (Titan) peer.
	Go bool `msgpack:"go" json:"go"`
}

// registerTasks adds the application's built-in tasks to node.
func registerTasks(node *netron.Node) {
	_ = node.HandleTask(TaskListPeers, func(context.Context, *rpc.Args) (any, error) {
		return ListPeers(node), nil
	}) // cannot fail: the name is neither empty nor reserved
}

// ListPeers returns the peers of node, sorted by id.
func ListPeers(node *netron.Node) []PeerInfo {
	peers := node.Peers()
	out := make([]PeerInfo, 0, len(peers))
	for _, p := range peers {
		dir := "out"
		if p.Accepted() {
			dir = "in"
		}
		out = append(out, PeerInfo{ID: p.ID(), Direction: dir, Go: p.IsGo()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
