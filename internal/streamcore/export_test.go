package streamcore

import (
	"strconv"

	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
)

// inbound returns the consumer's state of the stream ref on conn, or nil.
func inbound(m *Manager, conn *transport.Conn, ref wire.StreamReference) *Inbound {
	id, err := strconv.ParseUint(ref.StreamID, 10, 32)
	if err != nil {
		return nil
	}
	cs := m.state(conn)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.in[uint32(id)]
}

// Stalled reports whether the producer of the stream ref on conn has
// used every byte of credit its consumer, m, granted, and every chunk it
// sent has arrived: it cannot send another chunk until m grants more.
// (Its credit is what m granted less what it sent, so it is at most what
// m granted less what arrived.)
func Stalled(m *Manager, conn *transport.Conn, ref wire.StreamReference) bool {
	in := inbound(m, conn, ref)
	if in == nil {
		return false
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.credit && in.granted > 0 && in.granted-in.received <= 0
}

// Queued returns how many chunks of the stream ref on conn wait for its
// consumer (0 when m knows no such stream).
func Queued(m *Manager, conn *transport.Conn, ref wire.StreamReference) int {
	in := inbound(m, conn, ref)
	if in == nil {
		return 0
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.q) - in.qHead
}
