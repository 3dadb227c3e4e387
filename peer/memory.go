package peer

import (
	"sync/atomic"

	"github.com/netron-go/netron/internal/wire"
)

// Memory is a node's bound on the memory it holds for what its peers
// send (see WithInboundMemory). Its users take what they are about to
// hold with TryAcquire and give it back with Release; nothing waits for
// it. It is safe for concurrent use.
type Memory struct {
	limit int64
	used  atomic.Int64
	peak  atomic.Int64
	// releaseFrame gives back the bytes of a frame taken for it, once the
	// frame is written (an Outbound's Release); bound once, not per use.
	releaseFrame func([]byte)
}

func newMemory(limit, readLimit int64) *Memory {
	// One request of the largest packet must fit: its message and the
	// budget of decoding it.
	m := &Memory{limit: max(limit, readLimit+wire.Budget(int(min(readLimit, 1<<40)), 0))}
	m.releaseFrame = func(frame []byte) { m.Release(int64(len(frame))) }
	return m
}

// TryAcquire takes n bytes if they fit under the limit and reports
// whether it did.
func (m *Memory) TryAcquire(n int64) bool {
	if n <= 0 {
		return true
	}
	for {
		used := m.used.Load()
		if used+n > m.limit {
			return false
		}
		if m.used.CompareAndSwap(used, used+n) {
			if used+n > m.peak.Load() {
				m.notePeak(used + n)
			}
			return true
		}
	}
}

func (m *Memory) notePeak(v int64) {
	for {
		p := m.peak.Load()
		if v <= p || m.peak.CompareAndSwap(p, v) {
			return
		}
	}
}

// Release gives back n bytes taken with TryAcquire.
func (m *Memory) Release(n int64) {
	if n > 0 {
		m.used.Add(-n)
	}
}

// Used returns the bytes taken now.
func (m *Memory) Used() int64 { return m.used.Load() }

// Peak returns the most bytes taken at once so far.
func (m *Memory) Peak() int64 { return m.peak.Load() }

// Limit returns the bound.
func (m *Memory) Limit() int64 { return m.limit }
