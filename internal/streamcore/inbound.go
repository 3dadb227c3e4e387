package streamcore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
)

// epoch gives cheap monotonic timestamps.
var epoch = time.Now()

func now() int64 { return int64(time.Since(epoch)) }

type chunk struct {
	data   []byte
	cost   int64 // frameCost: what flow control counts
	charge int64 // what it holds of the node's inbound memory (peers without flow control)
}

// chunkEntry is what a chunk costs the queue: its entry, in a slice that
// grows by doubling (twice its size at most).
const chunkEntry = 2 * int64(unsafe.Sizeof(chunk{}))

// Between Go peers several packets may share one WebSocket message
// (transport.ExtensionBatch), and a packet's data aliases that message: a chunk
// left in a queue keeps the whole message alive, with other streams'
// chunks in it, outside any window. A chunk that shares its message is
// therefore copied out of it (the smallest into a slab of their own
// stream), unless it is at least aliasMin and the rest of the message at
// most maxPinned: a Go sender batches only up to about 256 KiB, so its
// 64 KiB chunks stay zero-copy, while a peer that packs a small chunk with
// megabytes of others cannot make the queue hold them. A chunk alone in its
// message (the packet header aside) is never copied.
const (
	aliasMin  = 64 << 10
	maxPinned = 512 << 10
	ownHeader = 64      // more than a chunk packet's own header and trailer
	slabSize  = 4 << 10 // the slabs small chunks are copied into
	slabMax   = 512     // chunks up to this size go to the slab
)

// own returns data, which came in a message of msg bytes, or a copy of it
// when it may pin others (see aliasMin); copied reports which. It runs in
// the reader goroutine with in.mu held.
func (in *Inbound) own(data []byte, msg int) (b []byte, copied bool) {
	others := msg - len(data)
	if others <= ownHeader || len(data) >= aliasMin && others <= maxPinned {
		return data, false
	}
	if len(data) > slabMax {
		return bytes.Clone(data), true
	}
	if cap(in.slab)-len(in.slab) < len(data) {
		in.slab = make([]byte, 0, slabSize)
	}
	off := len(in.slab)
	in.slab = append(in.slab, data...)
	return in.slab[off:len(in.slab):len(in.slab)], true
}

// bufferCost bounds what n bytes of a buffer of their own cost the Go
// allocator (size classes waste at most an eighth; whole pages above 32
// KiB), and what n bytes of a slab cost, its unused tail shared among the
// eight chunks at least that fill it.
func bufferCost(n int) int64 {
	if n <= 32<<10 {
		return int64(n + n/8 + 16)
	}
	const page = 8 << 10
	return int64((n + page - 1) / page * page)
}

// Inbound is the consumer end of one stream, untyped: its chunks are
// msgpack values. Read it through a Reader (NewReader); package rpc
// hands out Readers.
//
// Chunks are kept in order in a queue that flow control bounds: with the
// extension the producer never has more than the window in flight; without
// it (a plain Netron producer) the queue is bounded by WithMaxBuffered and
// the stream fails with ErrBufferOverflow rather than grow. A chunk whose
// index is not the next one fails the stream (ErrIndexGap): the transport
// is ordered, so Titan's reordering buffer is not needed.
type Inbound struct {
	m      *Manager
	cs     *connState
	id     uint32
	live   bool
	credit bool
	pipe   *Outbound // producer of an in-process stream

	wake chan struct{} // one consumer waits on it
	stop chan struct{} // closed by Close and by the Manager's Close

	mu         sync.Mutex
	q          []chunk
	qHead      int
	qBytes     int64
	next       uint32
	window     int64 // the current window (see WithMaxWindow)
	granted    int64 // credit granted in total
	received   int64 // credit used by the chunks received
	unacked    int64 // consumed since the last grant
	claimed    bool  // opened by Accept (guarded by cs.mu when set)
	ended      bool  // no more chunks: eos, failure or Close
	err        error // why it ended; nil after a complete stream
	closed     bool  // Close was called
	lastActive int64
	charged    int64  // node inbound memory the queue holds (peers without flow control)
	slab       []byte // see own
	inact      *time.Timer
	claimT     *time.Timer
	stopOnce   sync.Once
	failed     atomic.Bool // it ended with an error, for the metrics
}

func newInbound(m *Manager, cs *connState, id uint32, live, credit bool) *Inbound {
	m.cfg.obs.StreamOpened(true)
	return &Inbound{
		m: m, cs: cs, id: id, live: live, credit: credit,
		wake: make(chan struct{}, 1), stop: make(chan struct{}),
		lastActive: now(), window: m.cfg.window,
	}
}

// ID returns the stream id (the producer's).
func (in *Inbound) ID() uint32 { return in.id }

// Live reports whether the producer declared the stream live (no
// inactivity timeout).
func (in *Inbound) Live() bool { return in.live }

// FlowControlled reports whether the stream has credit-based flow control.
func (in *Inbound) FlowControlled() bool { return in.credit }

// Err returns nil while the stream runs and after a complete stream, and
// otherwise why it ended (the producer's error, the disconnect, …). It
// reports the end as soon as it is known, before the consumer has taken
// the chunks that came before it.
func (in *Inbound) Err() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.err
}

func (in *Inbound) signal() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// armClaim starts the claim timer of an announced stream.
func (in *Inbound) armClaim() {
	in.claimT = time.AfterFunc(in.m.cfg.claimTimeout, func() {
		in.mu.Lock()
		pending := !in.ended
		in.mu.Unlock()
		in.cs.mu.Lock()
		claimed := in.claimed
		in.cs.mu.Unlock()
		if claimed {
			return
		}
		if pending {
			in.fail(fmt.Errorf("%w within %s", ErrNotClaimed, in.m.cfg.claimTimeout), ReasonNotClaimed)
		}
		in.mu.Lock()
		in.dropQueue()
		in.mu.Unlock()
		in.remove()
		if in.pipe != nil {
			in.pipe.cancelByConsumer(ReasonNotClaimed)
		}
	})
}

// claim starts the stream for its consumer: the inactivity timer of a
// finite stream and the first credit.
func (in *Inbound) claim() {
	in.mu.Lock()
	if in.claimT != nil {
		in.claimT.Stop()
	}
	if in.ended {
		failed := in.err != nil
		in.mu.Unlock()
		if failed {
			in.remove() // it failed before it was opened: Next reports why
		}
		return
	}
	in.lastActive = now()
	if !in.live && in.m.cfg.inactivity > 0 {
		in.inact = time.AfterFunc(in.m.cfg.inactivity, in.checkInactive)
	}
	var grant int64
	if in.credit {
		grant = in.m.cfg.window
		in.granted += grant
	}
	in.mu.Unlock()
	in.sendGrant(grant)
}

// growWindow doubles the window, up to the Manager's bound, and returns
// the credit that adds. Called under mu.
func (in *Inbound) growWindow() int64 {
	grow := min(in.window, in.m.cfg.maxWindowOf()-in.window)
	if grow <= 0 {
		return 0
	}
	in.window += grow
	return grow
}

func (in *Inbound) checkInactive() {
	d := in.m.cfg.inactivity
	in.mu.Lock()
	if in.ended {
		in.mu.Unlock()
		return
	}
	idle := time.Duration(now() - in.lastActive)
	switch {
	case in.qHead < len(in.q):
		// Chunks are waiting: the consumer is the slow one.
		in.inact.Reset(d)
		in.mu.Unlock()
		return
	case idle < d:
		in.inact.Reset(d - idle)
		in.mu.Unlock()
		return
	}
	in.mu.Unlock()
	in.fail(fmt.Errorf("%w: nothing received for %s", ErrInactive, d), ReasonInactive)
}

// deliver takes one STREAM packet, which came in p. It runs in the reader
// goroutine.
func (in *Inbound) deliver(flags uint8, data []byte, index uint32, msg int, p *transport.Inbound) {
	in.mu.Lock()
	if in.ended {
		in.mu.Unlock()
		in.m.cfg.logger.Debug("netron: dropped a chunk after the end of its stream", "peer", in.cs.peerID(), "stream", in.id, "index", index)
		return
	}
	if want := in.next; index != want {
		in.mu.Unlock()
		in.fail(fmt.Errorf("%w: index %d, want %d", ErrIndexGap, index, want), ReasonProtocol)
		return
	}
	eos := flags&wire.FlagEOS != 0
	if eos && (len(data) == 0 || (len(data) == 1 && data[0] == 0xc0)) {
		in.endLocked(nil)
		in.mu.Unlock()
		in.signal()
		return
	}
	if len(data) > in.m.cfg.maxChunk {
		in.mu.Unlock()
		in.fail(fmt.Errorf("%w: %d bytes, limit %d", ErrChunkTooLarge, len(data), in.m.cfg.maxChunk), ReasonProtocol)
		return
	}
	cost := frameCost(len(data))
	if in.credit {
		if in.granted-in.received <= 0 {
			in.mu.Unlock()
			in.fail(fmt.Errorf("%w: chunk %d sent without credit", ErrCreditOverflow, index), ReasonProtocol)
			return
		}
		in.received += cost
	} else if len(in.q)-in.qHead >= in.m.cfg.maxBuffered || in.qBytes+cost > in.m.cfg.maxBufferedBytes {
		in.mu.Unlock()
		in.fail(fmt.Errorf("%w: more than %d chunks or %d bytes buffered", ErrBufferOverflow, in.m.cfg.maxBuffered, in.m.cfg.maxBufferedBytes), ReasonOverflow)
		return
	}
	kept, copied := in.own(data, msg)
	var charge int64
	if conn := in.cs.conn; !in.credit && conn != nil {
		// What a peer without flow control makes us buffer counts
		// against the node's inbound memory, at what it costs: the
		// message the chunk keeps (what the reader charged for it, taken
		// over) or its copy, and its entry in the queue.
		charge = chunkEntry
		var adopted int64
		switch {
		case copied:
			charge += bufferCost(len(kept))
		case p != nil:
			adopted = conn.Adopt(p)
			fallthrough
		default:
			if adopted > 0 {
				charge += adopted
			} else {
				charge += bufferCost(msg)
			}
		}
		if !conn.TryAcquire(charge - adopted) {
			conn.Release(adopted)
			in.mu.Unlock()
			mem := conn.Memory()
			in.fail(fmt.Errorf("%w: the node's inbound memory is full (%d of %d bytes)", ErrBufferOverflow, mem.Used(), mem.Limit()), ReasonOverflow)
			return
		}
		in.charged += charge
	}
	in.q = append(in.q, chunk{data: kept, cost: cost, charge: charge})
	in.qBytes += cost
	in.next++
	in.m.cfg.obs.Chunk(true, len(data)+wire.HeaderSize+wire.TrailerSize) // the packet
	in.lastActive = now()
	if eos {
		in.endLocked(nil) // a last chunk with data (older peers)
	}
	in.mu.Unlock()
	in.signal()
}

// endLocked records the end of the stream; in.mu is held. The stream
// stays in its connection's table until its consumer has read the end or
// closed it, or (never opened) until its claim timer fires, so that Accept
// still finds an announced stream that ended early.
func (in *Inbound) endLocked(err error) {
	if err != nil {
		in.failed.Store(true)
	}
	in.ended = true
	in.err = err
	in.slab = nil
	if in.inact != nil {
		in.inact.Stop()
	}
}

// fail ends the stream with err, keeping the chunks already queued for the
// consumer. A non-empty cancelReason tells the producer to stop.
func (in *Inbound) fail(err error, cancelReason string) {
	in.mu.Lock()
	if in.ended {
		in.mu.Unlock()
		return
	}
	in.endLocked(err)
	in.mu.Unlock()
	if cancelReason != "" {
		in.m.cfg.logger.Warn("netron: stream failed", "peer", in.cs.peerID(), "stream", in.id, "err", err)
		in.sendCancel(cancelReason)
	}
	in.cs.mu.Lock()
	claimed := in.claimed
	in.cs.mu.Unlock()
	if claimed {
		in.remove()
	}
	in.signal()
}

// uncharge gives back n bytes (at most what is charged) of the node's
// inbound memory; in.mu is held.
func (in *Inbound) uncharge(n int64) {
	n = min(n, in.charged)
	if n <= 0 {
		return
	}
	in.charged -= n
	in.cs.conn.Release(n)
}

// dropQueue drops the chunks nobody will read; in.mu is held.
func (in *Inbound) dropQueue() {
	clear(in.q)
	in.q, in.qHead, in.qBytes = nil, 0, 0
	in.uncharge(in.charged)
}

// remove forgets the stream in its connection's table.
func (in *Inbound) remove() {
	in.cs.mu.Lock()
	gone := in.cs.in[in.id] == in
	if gone {
		delete(in.cs.in, in.id)
	}
	in.cs.mu.Unlock()
	if gone {
		in.m.cfg.obs.StreamEnded(true, in.failed.Load())
	}
}

func (in *Inbound) sendGrant(n int64) {
	for n > 0 {
		g := min(n, math.MaxUint32)
		n -= g
		if in.pipe != nil {
			in.pipe.addCredit(g)
			continue
		}
		if in.cs.conn != nil {
			in.cs.sendControl(appendCredit(nil, in.cs.conn.NextID(), in.id, uint32(g)), true)
		}
	}
}

func (in *Inbound) sendCancel(reason string) {
	if in.pipe != nil {
		in.pipe.cancelByConsumer(reason)
		return
	}
	in.cs.sendCancel(in.id, reason)
}

// Next returns the next chunk (one msgpack value), io.EOF after a complete
// stream, or the error the stream ended with once the chunks before it
// have been taken. It waits for a chunk until ctx ends, which leaves the
// stream as it is. One goroutine at a time may call Next.
func (in *Inbound) Next(ctx context.Context) ([]byte, error) {
	for {
		in.mu.Lock()
		if in.closed {
			err := in.err
			in.mu.Unlock()
			if err == nil {
				return nil, io.EOF
			}
			return nil, err
		}
		if in.qHead < len(in.q) {
			c := in.q[in.qHead]
			in.q[in.qHead] = chunk{}
			in.qHead++
			if in.qHead == len(in.q) {
				in.q, in.qHead = in.q[:0], 0
			} else if in.qHead >= 1024 && in.qHead*2 >= len(in.q) {
				n := copy(in.q, in.q[in.qHead:])
				clear(in.q[n:])
				in.q, in.qHead = in.q[:n], 0
			}
			in.qBytes -= c.cost
			in.uncharge(c.charge)
			in.lastActive = now()
			var grant int64
			if in.credit && !in.ended {
				in.unacked += c.cost
				if in.unacked >= in.window/2 {
					grant = in.unacked
					in.unacked = 0
					if in.qHead == len(in.q) {
						// Nothing buffered: the consumer keeps up.
						grant += in.growWindow()
					}
					in.granted += grant
				}
			}
			in.mu.Unlock()
			in.sendGrant(grant)
			return c.data, nil
		}
		if in.ended {
			err := in.err
			in.mu.Unlock()
			in.remove()
			if err == nil {
				return nil, io.EOF
			}
			return nil, err
		}
		in.mu.Unlock()
		var connDone <-chan struct{}
		if in.cs.conn != nil {
			connDone = in.cs.conn.Done()
		}
		select {
		case <-in.wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-connDone:
			in.fail(in.cs.conn.Err(), "")
		case <-in.stop:
		}
	}
}

// Close stops reading. A stream that has not ended is cancelled: the
// producer is told to stop (its context is cancelled), queued chunks are
// dropped, and Err reports ErrClosed. Close after the end only releases
// the stream. It is idempotent.
func (in *Inbound) Close() error { return in.closeWith(nil) }

// closeWith closes with cause as the error of an unfinished stream
// (ErrClosed when nil).
func (in *Inbound) closeWith(cause error) error {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return nil
	}
	in.closed = true
	wasEnded := in.ended
	if !wasEnded {
		if cause == nil {
			cause = ErrClosed
		}
		in.endLocked(cause)
	}
	clear(in.q)
	in.q, in.qHead, in.qBytes = nil, 0, 0
	in.uncharge(in.charged)
	in.mu.Unlock()
	in.stopOnce.Do(func() { close(in.stop) })
	in.remove()
	if !wasEnded {
		in.sendCancel(ReasonConsumerCancel)
	}
	in.signal()
	return nil
}

// shutdown closes the stream for the Manager's Close without telling the
// peer (its connection is going away with the node).
func (in *Inbound) shutdown() {
	in.mu.Lock()
	if !in.ended {
		in.endLocked(ErrShutdown)
	}
	in.mu.Unlock()
	in.stopOnce.Do(func() { close(in.stop) })
	if in.pipe != nil {
		in.pipe.abort(ErrShutdown)
	}
	in.signal()
}

// deliverLocal is how an in-process producer hands over a chunk.
func (in *Inbound) deliverLocal(flags uint8, data []byte, index uint32) {
	in.deliver(flags, data, index, len(data), nil)
}

// CloseWith closes the stream with cause as the error of an unfinished
// stream (nil: ErrClosed), as Close does.
func (in *Inbound) CloseWith(cause error) error { return in.closeWith(cause) }

// Stopped is closed when the stream is closed on this side (Close,
// CloseWith, the Manager's Close).
func (in *Inbound) Stopped() <-chan struct{} { return in.stop }

// Trusted is DecodeMax of an in-process stream: its chunks are this
// process's own bytes and decode without a budget.
const Trusted = -1

// DecodeMax returns the cap of the decode budget of a chunk: the
// connection's (transport.Conn.MaxDecodeMemory), or Trusted for an in-process
// stream.
func (in *Inbound) DecodeMax() int64 {
	if conn := in.cs.conn; conn != nil {
		return conn.MaxDecodeMemory()
	}
	return Trusted
}
