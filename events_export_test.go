package netron

import "context"

// Test hooks of the events machinery.

// ForwarderCount returns how many peers have a live forwarder (a queue and
// a sender goroutine) on n.
func ForwarderCount(n *Node) int { return int(n.ev.forwarders.Load()) }

// ForwardedNames returns how many names (and patterns) peers subscribe to
// on n, over all peers.
func ForwardedNames(n *Node) int { return int(n.ev.fwdNames.Load()) }

// ForwarderDropped returns how many events the forwarders of n dropped.
func ForwarderDropped(n *Node) uint64 {
	n.ev.mu.Lock()
	defer n.ev.mu.Unlock()
	var d uint64
	for s := range n.ev.senders {
		d += s.dropped.Load()
	}
	return d
}

// HandlerCount returns how many handler goroutines n runs.
func HandlerCount(n *Node) int {
	n.ev.mu.Lock()
	defer n.ev.mu.Unlock()
	return len(n.ev.handlers)
}

// PublishNodeEvent and PublishServiceDiscovered are what discovery calls.
func PublishNodeEvent(ctx context.Context, n *Node, e NodeEvent) error {
	return n.ev.publishNodeEvent(ctx, e)
}

func PublishServiceDiscovered(ctx context.Context, n *Node, e ServiceDiscovered) error {
	return n.ev.publishServiceDiscovered(ctx, e)
}

// ParseEvent is parseEvent, wanting every event.
func ParseEvent(data []byte, kind string) (string, []any, error) {
	return parseEvent(data, kind, func(string) bool { return true }, nil, nil, nil)
}
