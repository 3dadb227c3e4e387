package netron

// Test hooks of reconnection.

// ReconnectDials returns how many times p dialled to reconnect.
func ReconnectDials(p *Peer) int64 {
	if p.rc == nil {
		return 0
	}
	return p.rc.dials.Load()
}

// ReconnectLoops returns how many reconnect goroutines n runs.
func ReconnectLoops(n *Node) int {
	n.reconnects.mu.Lock()
	defer n.reconnects.mu.Unlock()
	return len(n.reconnects.rcs)
}
