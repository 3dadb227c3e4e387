package transport

import (
	"bytes"
	"sync/atomic"

	"github.com/netron-go/netron/internal/wire"
)

// Memory is a node's bound on the memory it holds for what its peers
// send (see WithInboundMemory): the messages it reads (replies to its own
// calls aside), the requests they carry until answered, the decoding of
// their arguments, events on their way to subscribers, stream chunks
// buffered for peers without flow control, answers to PINGs. Each
// connection takes from it through its own share (Conn.TryAcquire), so
// that one connection cannot hold all of it. Nothing waits for it: what
// does not fit is refused. It is safe for concurrent use.
type Memory struct {
	limit   int64
	share   int64 // what one connection may hold at once
	used    atomic.Int64
	peak    atomic.Int64
	refused atomic.Int64
}

// MinInboundMemory is the least WithInboundMemory allows with the read
// limit readLimit and the decode cap decodeMax: what one request of the
// largest packet holds at most, alone on an idle node. Its message (the
// buffer it is read into, up to readLimit+1 bytes, in whole pages), and
// the decode budget of its arguments (wire.Budget), taken in steps of
// wire.AccountStep. Nothing else is charged for a request.
func MinInboundMemory(readLimit, decodeMax int64) int64 {
	readLimit = min(max(readLimit, 1), 1<<40)
	return messageCost(readLimit+1) + wire.Budget(int(readLimit), decodeMax) + wire.AccountStep
}

// messageCost is what a buffer of n bytes costs the Go allocator (whole
// pages above 32 KiB; size classes are within 1/8 below).
func messageCost(n int64) int64 {
	if n <= readChunk {
		return n + n/8 + 16
	}
	const page = 8 << 10
	return (n + page - 1) / page * page
}

// connShare is the fraction of the node's inbound memory one connection
// may hold: a quarter, or one request of the largest packet if that is
// more (MinInboundMemory).
const connShare = 4

func newMemory(limit, readLimit, decodeMax int64) *Memory {
	least := MinInboundMemory(readLimit, decodeMax)
	limit = max(limit, least)
	return &Memory{limit: limit, share: max(limit/connShare, least)}
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
			m.refused.Add(1)
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

// Refusals returns how many times something did not fit (the node's
// limit, or a connection's share) and was refused.
func (m *Memory) Refusals() int64 { return m.refused.Load() }

// Limit returns the bound.
func (m *Memory) Limit() int64 { return m.limit }

// Share returns what one connection may hold at once: a quarter of the
// limit, or MinInboundMemory if that is more.
func (m *Memory) Share() int64 { return m.share }

var _ wire.Memory = (*Memory)(nil)

// TryAcquire takes n bytes of the node's inbound memory for this
// connection, if they fit in both its share (Memory.Share) and the node's
// limit, and reports whether it did. Give them back with Release, on this
// connection, also after it has closed.
func (c *Conn) TryAcquire(n int64) bool {
	if n <= 0 {
		return true
	}
	m := c.hub.mem
	if c.memUsed.Add(n) > m.share {
		c.memUsed.Add(-n)
		m.refused.Add(1)
		return false
	}
	if !m.TryAcquire(n) {
		c.memUsed.Add(-n)
		return false
	}
	return true
}

// Release gives back n bytes taken with TryAcquire.
func (c *Conn) Release(n int64) {
	if n > 0 {
		c.memUsed.Add(-n)
		c.hub.mem.Release(n)
	}
}

// MemoryUsed returns the bytes of the node's inbound memory this
// connection holds now.
func (c *Conn) MemoryUsed() int64 { return c.memUsed.Load() }

var _ wire.Memory = (*Conn)(nil)

// releaseFrame gives back what a frame of its own size was charged once
// it is written (an Outbound's Release): PING answers.
func (c *Conn) releaseFrame(frame []byte) { c.Release(messageCost(int64(len(frame)))) }

// Kept is the inbound memory a packet kept by Keep holds: give it back
// with Release, once, when the packet is let go. The zero Kept holds
// nothing.
type Kept struct {
	c *Conn
	n int64        // bytes charged to c for this packet alone
	b *batchCharge // or a reference to the charge of its batch
}

// Release gives back what k holds.
func (k Kept) Release() {
	if k.b != nil {
		k.b.done()
	}
	if k.c != nil {
		k.c.Release(k.n)
	}
}

// Bytes returns the bytes charged for this packet alone (0 for one that
// shares its batch's charge).
func (k Kept) Bytes() int64 { return k.n }

// Shared reports whether k shares the charge of its batch's message.
func (k Kept) Shared() bool { return k.b != nil }

// batchCharge is the charge of a batch message (ExtensionBatch), shared
// by the packets kept from it: their data aliases the message, which is
// given back, once, when the last of them and the reader let it go. A
// packet kept for long keeps the whole message charged, as it keeps it
// alive.
type batchCharge struct {
	c    *Conn
	n    int64
	refs atomic.Int32
}

func (b *batchCharge) done() {
	if b.refs.Add(-1) == 0 {
		b.c.Release(b.n)
	}
}

// share takes a reference, unless the charge was given back already.
func (b *batchCharge) share() bool {
	for {
		r := b.refs.Load()
		if r <= 0 {
			return false
		}
		if b.refs.CompareAndSwap(r, r+1) {
			return true
		}
	}
}

// Keep takes over what the packet of in needs to outlive the callback of
// TopicRequests it came to, and returns it, for the caller to give back
// with Kept.Release once it lets the packet go: the charge of its message
// (Adopt) when it had the message to itself; for a packet batched with
// others, a share of the batch's charge (the message is charged once, and
// stays charged while a packet of it is kept); otherwise (a batch read
// without a charge, as replies to the node's calls are, or a packet that
// did not come from the reader) a copy of its data, charged for its own
// bytes. False, with nothing held, when that copy does not fit.
func (c *Conn) Keep(in *Inbound) (Kept, bool) {
	if n := c.Adopt(in); n > 0 {
		return Kept{c: c, n: n}, true
	}
	if b := in.batch; b != nil && b.c == c && b.share() {
		return Kept{b: b}, true
	}
	if len(in.Packet.Data) == 0 {
		return Kept{}, true
	}
	held := messageCost(int64(len(in.Packet.Data)))
	if !c.TryAcquire(held) {
		return Kept{}, false
	}
	in.Packet.Data = bytes.Clone(in.Packet.Data)
	return Kept{c: c, n: held}, true
}

// MaxDecodeMemory returns the cap of the decode budget of what comes from
// this connection's peer (WithMaxDecodeMemory).
func (c *Conn) MaxDecodeMemory() int64 { return c.hub.cfg.maxDecodeMemory }
