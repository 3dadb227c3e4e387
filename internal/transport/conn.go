package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/peer"
)

// Conn is one WebSocket connection to a peer. It owns one reader goroutine,
// which decodes packet headers and publishes what arrives on the bus. What
// is published on its outbound topic is queued and written by whichever
// sender finds no write in progress (see Send), so an idle connection has
// no writer goroutine and a lone packet no hand-off. Keep-alive runs on a
// timer, not a goroutine of its own.
type Conn struct {
	hub        *Hub
	ws         *websocket.Conn
	id         string
	serverSide bool
	compressed bool // permessage-deflate negotiated (WithCompression)
	remoteAddr string
	identity   atomic.Pointer[peer.Identity] // see SetIdentity
	anonymous  bool                          // admitted without credentials (WithAnonymous)

	outTopic *bus.Topic[Outbound]
	unsubOut func()
	nextID   atomic.Uint32

	// Senders between their check that the connection is open and the end
	// of their publish (see queue), and the outbound subscription's end,
	// which waits for the last of them.
	queueing  atomic.Int32
	closing   atomic.Bool
	unsubOnce sync.Once

	// The outbound queue (see Send and enqueue). The sender holding the
	// writer role (writing) owns wbatch.
	wmu        sync.Mutex
	wq         []Outbound
	wbatch     []Outbound
	writing    bool
	wclosed    bool
	closeAfter string        // ClosePolicyAfterWrites's reason, until the queue is written
	wroom      chan struct{} // closed when the queue has room again; nil without waiters
	waiting    atomic.Int32  // senders waiting for room (see Waiting)

	ctx    context.Context // lives as long as the connection
	cancel context.CancelFunc

	done      chan struct{}
	closeOnce sync.Once
	err       error // set before done is closed

	// The write watchdog (see armWatchdog): writes completed, whether one
	// is in progress, and the timer, armed while writes go on.
	writes     atomic.Uint64
	inWrite    atomic.Bool
	wSize      atomic.Int64 // bytes of the write in progress
	wdGrace    bool         // the write in progress got its size's grace (see checkWrite); under wdMu
	wdArmed    atomic.Bool
	wdMu       sync.Mutex
	wdTimer    *time.Timer
	wdSeen     uint64     // writes when the timer was armed
	heldMu     sync.Mutex // Hold's waits, run by the reader after each publish
	held       []func()
	hasHeld    atomic.Bool
	publishing atomic.Bool   // the reader is inside an inbound topic's publish
	goingAway  atomic.Bool   // the peer announced its shutdown
	lastRead   atomic.Int64  // unix nanoseconds of the last frame read
	pongs      atomic.Uint64 // keep-alive pings answered, for tests
	kaMu       sync.Mutex
	kaTimer    *time.Timer
	values     sync.Map
	extension  atomic.Pointer[Extensions]

	// Inbound memory (see Memory): what this connection holds of it;
	// the message the reader is handling (msgSeq, its number) and its
	// charge, for Adopt: the number in the high 32 bits, the bytes in
	// the low ones; the calls of this node waiting for a reply here.
	memUsed   atomic.Int64
	msgSeq    uint32
	msgCharge atomic.Uint64
	awaiting  atomic.Int64
	relFrame  func([]byte) // releaseFrame, bound once

}

// Extensions are the protocol extensions both sides of a connection agreed
// on. A plain Netron peer has none.
type Extensions struct {
	// Version is the netron-go protocol version of the peer, 0 for a plain
	// Netron peer.
	Version int
	// Names lists the agreed extensions.
	Names []string
}

// Has reports whether the extension name was agreed.
func (e *Extensions) Has(name string) bool {
	if e == nil {
		return false
	}
	for _, n := range e.Names {
		if n == name {
			return true
		}
	}
	return false
}

// ID returns the remote node's id.
func (c *Conn) ID() string { return c.id }

// Identity returns who the peer authenticated as, or nil when the hub
// has no authenticator (and no verified client certificate).
func (c *Conn) Identity() *peer.Identity { return c.identity.Load() }

// RemoteAddr returns the remote network address as the transport saw it.
func (c *Conn) RemoteAddr() string { return c.remoteAddr }

// ServerSide reports whether the remote peer dialled us.
func (c *Conn) ServerSide() bool { return c.serverSide }

// Compressed reports whether the connection negotiated permessage-deflate
// (see WithCompression): both sides offered or accepted it.
func (c *Conn) Compressed() bool { return c.compressed }

// Memory returns the node's bound on the memory held for its peers'
// requests (see WithInboundMemory), shared by every connection of the hub.
func (c *Conn) Memory() *Memory { return c.hub.mem }

// helloAfterPong sends the server's hello to a plain peer once it has
// answered a ping (see Hub.ServeHTTP), or after helloPongWait without an
// answer. The reader must be running: it reads the pong. False when the
// connection closed first.
func (c *Conn) helloAfterPong(hello []byte) bool {
	ctx, cancel := context.WithTimeout(c.ctx, min(helloPongWait, c.hub.cfg.handshakeTimeout))
	err := c.ws.Ping(ctx)
	cancel()
	if err != nil && c.Err() == nil {
		c.hub.cfg.logger.Debug("netron: no pong before the hello; sending it anyway", "peer", c.id, "err", err)
	}
	if c.Err() != nil {
		return false
	}
	return c.Send(c.ctx, hello, nil) == nil
}

// Context returns a context that is cancelled when the connection closes.
func (c *Conn) Context() context.Context { return c.ctx }

// Done returns a channel closed when the connection has closed.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns nil while the connection is open, and afterwards the reason
// it closed, which wraps peer.ErrDisconnected.
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// NextID returns the next packet id of this connection: a counter from 1
// that wraps from 0xFFFFFFFF back to 1.
func (c *Conn) NextID() uint32 {
	for {
		if id := c.nextID.Add(1); id != 0 {
			return id
		}
	}
}

// Extensions returns the extensions agreed with the peer (never nil; do
// not modify it).
func (c *Conn) Extensions() *Extensions {
	if e := c.extension.Load(); e != nil {
		return e
	}
	return &noExtensions
}

// noExtensions is what a plain Netron peer has; callers must not modify it.
var noExtensions Extensions

// SetExtensions records the extensions agreed with the peer.
func (c *Conn) SetExtensions(e *Extensions) { c.extension.Store(e) }

// Value returns per-connection state stored by another package under key.
func (c *Conn) Value(key any) (any, bool) { return c.values.Load(key) }

// LoadOrStoreValue stores per-connection state under key unless present.
func (c *Conn) LoadOrStoreValue(key, v any) (actual any, loaded bool) {
	return c.values.LoadOrStore(key, v)
}

// OutboundTopic is the name of the bus topic whose packets this
// connection writes (see Send and Queue).
func (c *Conn) OutboundTopic() string { return c.outTopic.Name() }

// Send publishes an encoded packet on the connection's outbound topic and
// makes sure it is written. When no other write is in progress the
// calling goroutine writes it, together with whatever else is queued by
// then; otherwise the goroutine writing takes it along. Send blocks while
// the outbound queue is full (WithOutboundQueue), until ctx ends, and
// while it writes. After the connection has closed it returns the
// connection's error. Unless Send returns an error, the connection owns
// frame from here on and calls release, if not nil, once it is written or
// dropped (the connection closed first). A Send that wrote a lone packet
// yields the processor once before it returns (a request's answer or a
// reply's next request is then picked up by a processor already awake).
//
// A SubscribeFunc callback of the connection's inbound topics runs on
// its reader goroutine and should answer with Queue: while the reader
// writes, nothing is read.
func (c *Conn) Send(ctx context.Context, frame []byte, release func([]byte)) error {
	return c.SendBefore(ctx, time.Time{}, frame, release)
}

// SendBefore is Send whose wait for room in a full outbound queue also ends
// at deadline, unless it is zero, with context.DeadlineExceeded: a
// caller's timeout without a context or a timer per call (a timer is made
// only when the queue is full). A write already in progress is not cut
// short; the write timeout bounds it.
func (c *Conn) SendBefore(ctx context.Context, deadline time.Time, frame []byte, release func([]byte)) error {
	if err := c.queue(ctx, deadline, Outbound{Frame: frame, Release: release, sender: true}); err != nil {
		return err
	}
	c.flush()
	return nil
}

// Queue is Send without writing in the calling goroutine: the packet is
// queued and written by the goroutine writing at the moment, or by a
// goroutine of the hub. The caller goes on while its packet is written:
// a producer of large stream chunks encodes the next one meanwhile, and
// queued chunks go out several per message between Go peers. It waits
// while the outbound queue is full, like Send; unless it returns an
// error the connection owns frame and calls release once it is written
// or dropped. The reader goroutine uses it for its own replies.
func (c *Conn) Queue(ctx context.Context, frame []byte, release func([]byte)) error {
	return c.queue(ctx, time.Time{}, Outbound{Frame: frame, Release: release})
}

// queue waits for room in the outbound queue, queues o for the writer
// and publishes it on the outbound topic for whoever else listens there.
// The writer takes o directly, not through its subscription to that topic:
// a packet queue returns nil for is always taken, and written or released
// (enqueue), whatever happens to the topic (a shutdown that unsubscribes
// the writer meanwhile, a closed bus, a listener whose wait fails).
func (c *Conn) queue(ctx context.Context, deadline time.Time, o Outbound) error {
	c.queueing.Add(1)
	defer c.leaveQueue()
	if err := c.Err(); err != nil {
		return err
	}
	if err := c.waitRoom(ctx, deadline); err != nil {
		return err
	}
	// The node-wide tap sees the frame before the writer can release it.
	// With nobody listening this costs a few atomic loads; a listener's
	// policy decides whether it can hold the sender up (a node's taps
	// drop instead).
	if err := c.hub.outbound.Publish(ctx, Sent{Conn: c, Frame: o.Frame}); err != nil && c.Err() == nil {
		c.hub.cfg.logger.Debug("netron: an outbound packet did not reach every listener of the outbound tap", "peer", c.id, "err", err)
	}
	c.enqueue(ctx, o)
	o.queued = true // the writer's subscription skips it
	if err := c.outTopic.Publish(ctx, o); err != nil && c.Err() == nil {
		c.hub.cfg.logger.Debug("netron: an outbound packet did not reach every listener of its topic", "peer", c.id, "err", err)
	}
	return nil
}

// leaveQueue ends a sender's stay in queue; the last one out of a closing
// connection ends its outbound subscription.
func (c *Conn) leaveQueue() {
	if c.queueing.Add(-1) == 0 && c.closing.Load() {
		c.unsubOnce.Do(c.unsubOut)
	}
}

// waitRoom waits until the outbound queue has room, ctx ends, the
// deadline (unless zero) passes or the connection closes.
func (c *Conn) waitRoom(ctx context.Context, deadline time.Time) error {
	var until <-chan time.Time
	for {
		c.wmu.Lock()
		if len(c.wq) < c.hub.cfg.outboundQueue {
			c.wmu.Unlock()
			return nil
		}
		if c.wroom == nil {
			c.wroom = make(chan struct{})
		}
		room := c.wroom
		start := !c.writing
		c.writing = true
		c.wmu.Unlock()
		if start {
			// A full queue nobody writes: its senders are about to
			// flush, but do not wait for them.
			c.hub.goTracked(c.writeQueued)
		}
		if until == nil && !deadline.IsZero() {
			t := time.NewTimer(time.Until(deadline))
			defer t.Stop()
			until = t.C
		}
		c.waiting.Add(1)
		select {
		case <-room:
			c.waiting.Add(-1)
		case <-ctx.Done():
			c.waiting.Add(-1)
			return ctx.Err()
		case <-until:
			c.waiting.Add(-1)
			return context.DeadlineExceeded
		case <-c.done:
			c.waiting.Add(-1)
			return c.err
		}
	}
}

// Waiting returns how many senders wait for room in the outbound queue:
// what the peer has not read yet holds them up.
func (c *Conn) Waiting() int { return int(c.waiting.Load()) }

// enqueue is the writer's subscription to the outbound topic. It runs in
// the publisher's goroutine. A packet from Send is written by Send itself
// (flush); any other publisher's packet by a goroutine of the hub when no
// write is in progress.
func (c *Conn) enqueue(_ context.Context, o Outbound) {
	if o.queued {
		return // queue gave it to the writer before publishing it
	}
	c.wmu.Lock()
	if c.wclosed {
		c.wmu.Unlock()
		o.release()
		return
	}
	c.wq = append(c.wq, o)
	start := !o.sender && !c.writing
	if start {
		c.writing = true
	}
	c.wmu.Unlock()
	if start {
		c.hub.goTracked(c.writeQueued)
	}
}

// flush takes the writer role if nobody holds it and writes what is
// queued. The caller gives the role to a goroutine of the hub after
// flushRounds writes, so a sender is not kept writing for others.
func (c *Conn) flush() {
	c.wmu.Lock()
	if c.writing || len(c.wq) == 0 {
		c.wmu.Unlock()
		return
	}
	c.writing = true
	lone := len(c.wq) == 1
	c.wmu.Unlock()
	if lone && c.Extensions().Has(ExtensionBatch) {
		// Let the goroutines that are about to send run first: one
		// write for all of them instead of one each. Without other
		// runnable goroutines this returns at once.
		runtime.Gosched()
	}
	for range flushRounds {
		if c.writeOnce() == 0 {
			if lone {
				// A lone packet is usually a request or a reply whose
				// answer, or next request, follows within microseconds.
				// Yielding once wakes an idle P (runtime.Gosched calls
				// wakep), which polls the network while the sender goes
				// on to wait; without it that P's thread is often asleep
				// when the answer comes, and waking it made lone round
				// trips about a third slower on 2 vCPUs (see
				// docs/benchmarks.md).
				runtime.Gosched()
			}
			return
		}
	}
	c.wmu.Lock()
	if len(c.wq) == 0 || c.wclosed {
		c.stopWritingLocked()
		c.wmu.Unlock()
		return
	}
	c.wmu.Unlock()
	c.hub.goTracked(c.writeQueued)
}

// flushRounds is how many messages a sender writes before it hands the
// writer role on.
const flushRounds = 4

// writeQueued writes until the queue is empty; the caller holds the
// writer role. Before giving the role up it yields once: a sender that
// queues packet after packet (an event forwarder, a stream producer) is
// likely runnable, and its next packet then costs no new goroutine.
//
// Between Go peers it also yields before the write that follows a lone
// packet, so that runnable senders join the next message. Without that a
// writer goroutine took over a conversation: a write preempted by the
// peer it woke let the next packet queue up behind it, and the writer
// then wrote each one, preempted again, one hand-off more per packet (7 %
// of the writes in the sequential benchmark; yielding halved the context
// switches per round trip and made it 2–4 % faster, docs/benchmarks.md).
// Not before every write: runtime.Gosched goes through the global run
// queue, which a busy processor looks at only every 61st round, and a
// yield per packet to a plain peer, which gets no batches, made the
// writer a hundred times slower while every processor was busy.
func (c *Conn) writeQueued() {
	lone := false
	for {
		c.wmu.Lock()
		empty := len(c.wq) == 0 && !c.wclosed
		c.wmu.Unlock()
		if empty || (lone && c.Extensions().Has(ExtensionBatch)) {
			runtime.Gosched()
		}
		n := c.writeOnce()
		if n == 0 {
			return
		}
		lone = n == 1
	}
}

// writeOnce writes the next message: the first queued packet, or, when
// several are queued and the peer agreed to ExtensionBatch, up to maxBatch
// of them as one WebSocket message (one frame, one write system call): an
// EXT packet ["batch", bin, bin, …] whose bins are the packets. Plain
// Netron peers always get one packet per message. The caller holds the
// writer role; writeOnce returns how many packets it wrote, or gives the
// role up and returns 0 when the queue is empty or the connection closed.
func (c *Conn) writeOnce() int {
	c.wmu.Lock()
	if len(c.wq) == 0 || c.wclosed {
		c.stopWritingLocked()
		c.wmu.Unlock()
		return 0
	}
	n := 1
	if len(c.wq) > 1 && c.Extensions().Has(ExtensionBatch) {
		// A batch never grows past maxBatchBytes (nor our own read limit,
		// which the peer's is likely to match): each of its packets fits
		// the peer's limit, so must the message they share.
		limit := min(maxBatchBytes, int(c.hub.cfg.readLimit)) - batchOverhead
		size := wire.BinLen(len(c.wq[0].Frame))
		for n < len(c.wq) && n < maxBatch && size+wire.BinLen(len(c.wq[n].Frame)) <= limit {
			size += wire.BinLen(len(c.wq[n].Frame))
			n++
		}
	}
	batch := append(c.wbatch[:0], c.wq[:n]...)
	rest := copy(c.wq, c.wq[n:])
	clear(c.wq[rest:])
	c.wq = c.wq[:rest]
	if rest == 0 && cap(c.wq) > maxBatch {
		c.wq = nil // let a burst's queue go
	}
	if c.wroom != nil {
		close(c.wroom)
		c.wroom = nil
	}
	c.wmu.Unlock()

	msg := batch[0].Frame
	var buf *[]byte
	if n > 1 {
		buf = batchPool.Get().(*[]byte)
		*buf = appendBatch((*buf)[:0], batch)
		msg = *buf
	}
	c.wSize.Store(int64(len(msg)))
	c.inWrite.Store(true)
	c.armWatchdog()
	err := c.ws.Write(context.Background(), websocket.MessageBinary, msg)
	c.writes.Add(1)
	c.inWrite.Store(false)
	for i := range batch {
		batch[i].release()
	}
	clear(batch)
	c.wbatch = batch[:0]
	if cap(c.wbatch) > maxBatch {
		c.wbatch = nil
	}
	if buf != nil && cap(*buf) <= 4*maxBatchBytes {
		batchPool.Put(buf)
	}
	if err != nil {
		c.shutdown(fmt.Errorf("write: %w", err), websocket.StatusInternalError, "")
		c.wmu.Lock()
		c.stopWritingLocked()
		c.wmu.Unlock()
		return 0
	}
	return n
}

// armWatchdog makes sure the write watchdog is armed while writes go on.
// Socket writes get no context (one would cost allocations per write), so
// a peer that stops reading blocks a write for as long as it likes; the
// watchdog closes the connection when one has made no progress for the
// write timeout. It costs a write a few atomic operations, and a timer
// reset once per timeout while writes go on.
func (c *Conn) armWatchdog() {
	d := c.hub.cfg.writeTimeout
	if d <= 0 || c.wdArmed.Load() || !c.wdArmed.CompareAndSwap(false, true) {
		return
	}
	c.wdMu.Lock()
	defer c.wdMu.Unlock()
	if c.Err() != nil {
		return
	}
	c.wdSeen = c.writes.Load()
	c.wdGrace = false
	c.wdTimer = time.AfterFunc(d, c.checkWrite) // armed only when disarmed: none is pending
}

// minWriteRate is the slowest a peer may read a large message without
// being taken for one that stopped: a write of n bytes gets n/minWriteRate
// seconds beyond the write timeout.
const minWriteRate = 64 << 10

// checkWrite runs a write timeout after the watchdog was armed: a write
// in progress with none completed since then has been blocked all along,
// unless it is large enough to take that long to a slow reader, which gets
// its size at minWriteRate on top, once.
func (c *Conn) checkWrite() {
	d := c.hub.cfg.writeTimeout
	c.wdMu.Lock()
	if c.Err() != nil {
		c.wdMu.Unlock()
		return
	}
	done := c.writes.Load()
	if c.inWrite.Load() {
		if done == c.wdSeen && !c.wdGrace {
			if g := time.Duration(c.wSize.Load()) * time.Second / minWriteRate; g > 0 {
				c.wdGrace = true
				c.wdTimer.Reset(g)
				c.wdMu.Unlock()
				return
			}
		}
		if done == c.wdSeen {
			c.wdMu.Unlock()
			c.hub.cfg.logger.Warn("netron: closing a connection whose peer does not read", "peer", c.id, "timeout", d)
			c.shutdown(fmt.Errorf("%w: no progress for %s", peer.ErrWriteTimeout, d), websocket.StatusPolicyViolation, "write timeout")
			c.ws.CloseNow() // unblocks the write; the close handshake could not be written anyway
			return
		}
		c.wdSeen = done // writes go on: watch the one in progress
		c.wdGrace = false
		c.wdTimer.Reset(d)
		c.wdMu.Unlock()
		return
	}
	c.wdArmed.Store(false)
	c.wdTimer = nil // fired: an idle connection keeps no timer
	c.wdMu.Unlock()
	if c.inWrite.Load() {
		c.armWatchdog() // a write that began meanwhile found the watchdog still armed
	}
}

// stopWritingLocked gives up the writer role; what is still queued is
// released if the connection has closed. Called under wmu.
func (c *Conn) stopWritingLocked() {
	c.writing = false
	c.dropQueued()
	if reason := c.closeAfter; reason != "" && !c.wclosed {
		c.closeAfter = ""
		c.hub.goTracked(func() { c.ClosePolicy(reason) })
	}
}

// dropQueued releases what is queued once the connection has closed.
// Called under wmu.
func (c *Conn) dropQueued() {
	if !c.wclosed {
		return
	}
	for i := range c.wq {
		c.wq[i].release()
	}
	c.wq = nil
}

// batchPool holds the buffers batched messages are built in.
var batchPool = sync.Pool{New: func() any { return new([]byte) }}

// SendPacket encodes p and queues it.
func (c *Conn) SendPacket(ctx context.Context, p *wire.Packet) error {
	return c.Send(ctx, p.Append(nil), nil)
}

// GoingAway reports whether the peer announced that it is shutting down:
// requests it is already serving complete, new ones should go elsewhere.
func (c *Conn) GoingAway() bool { return c.goingAway.Load() }

// GoAway tells a Go peer that this node is shutting down (an EXT packet
// ["goaway", reason]); plain Netron peers are told nothing, they see the
// connection close. The connection stays open.
func (c *Conn) GoAway(ctx context.Context, reason string) error {
	if c.Extensions().Version == 0 {
		return nil
	}
	b := wire.AppendHeader(nil, c.NextID(), wire.Flags(wire.TypeExt, false, 0))
	b = wire.AppendArrayHeader(b, 2)
	b = wire.AppendString(b, "goaway")
	b = wire.AppendString(b, reason)
	return c.Send(ctx, b, nil)
}

// extKind returns the kind of an EXT packet's data (see wire.ExtKind).
func extKind(data []byte) string { return string(wire.ExtKind(data)) }

// Close closes the connection with a normal closure. Pending operations
// fail with peer.ErrDisconnected.
func (c *Conn) Close() error {
	c.shutdown(errors.New("closed locally"), websocket.StatusNormalClosure, "")
	return nil
}

// ClosePolicy closes the connection with status 1008 (policy violation),
// telling the peer why: for a peer that keeps sending what the node
// refuses.
func (c *Conn) ClosePolicy(reason string) {
	c.shutdown(fmt.Errorf("%w: %s", peer.ErrPolicy, reason), websocket.StatusPolicyViolation, reason)
}

// ClosePolicyAfterWrites is ClosePolicy once what is queued now, and what
// is queued before the writer runs out of packets, has been written: the
// answer that made the node close (the last failed authentication's, the
// last refused request's) reaches the peer before the close frame.
func (c *Conn) ClosePolicyAfterWrites(reason string) {
	if reason == "" {
		reason = "policy violation"
	}
	c.wmu.Lock()
	if c.writing || len(c.wq) > 0 {
		c.closeAfter = reason // the writer closes when it stops (stopWritingLocked)
		c.wmu.Unlock()
		return
	}
	c.wmu.Unlock()
	c.ClosePolicy(reason)
}

// CloseWithError closes the connection, telling the peer why.
func (c *Conn) CloseWithError(status websocket.StatusCode, reason string) {
	c.shutdown(fmt.Errorf("closed locally: %s", reason), status, reason)
}

// shutdown closes the connection once: it records the error, releases
// waiters, announces the disconnect, and closes the socket in the
// background (a close handshake can take seconds with a dead peer).
func (c *Conn) shutdown(cause error, status websocket.StatusCode, reason string) {
	c.closeOnce.Do(func() {
		c.err = fmt.Errorf("%w: %s: %w", peer.ErrDisconnected, c.id, cause)
		close(c.done)
		c.hub.cfg.obs.ConnClosed(c.serverSide)
		c.cancel()
		c.kaMu.Lock()
		if c.kaTimer != nil {
			c.kaTimer.Stop()
		}
		c.kaMu.Unlock()
		c.wdMu.Lock()
		if c.wdTimer != nil {
			c.wdTimer.Stop()
		}
		c.wdMu.Unlock()
		// The outbound subscription ends now, or when the last sender in
		// queue has published (enqueue releases what comes after wclosed).
		c.closing.Store(true)
		if c.queueing.Load() == 0 {
			c.unsubOnce.Do(c.unsubOut)
		}
		c.wmu.Lock()
		c.wclosed = true
		if !c.writing {
			c.dropQueued()
		}
		c.wmu.Unlock()
		c.hub.remove(c)
		if len(reason) > 120 {
			reason = reason[:120]
		}
		ws := c.ws
		c.hub.goTracked(func() { _ = ws.Close(status, reason) })
		c.hub.cfg.logger.Debug("netron: peer disconnected", "peer", c.id, "cause", cause)
		_ = c.hub.disconnected.Publish(context.Background(), ConnEvent{Conn: c, PeerID: c.id, Err: c.err})
	})
}

// start runs the reader and arms keep-alive; false if the connection
// closed first (the hub closing while it was being set up): then nothing
// starts, and the caller must not announce it.
func (c *Conn) start(first []byte, firstHeld int64) bool {
	c.kaMu.Lock() // shutdown stops the timer under kaMu, after closing done
	defer c.kaMu.Unlock()
	if c.Err() != nil {
		c.hub.mem.Release(firstHeld)
		return false
	}
	c.lastRead.Store(time.Now().UnixNano())
	c.memUsed.Add(firstHeld) // taken from the node's memory before c existed
	c.hub.goTracked(func() { c.readLoop(first, firstHeld) })
	if c.hub.cfg.keepAliveInterval > 0 {
		c.kaTimer = time.AfterFunc(c.hub.cfg.keepAliveInterval, c.keepAlive)
	}
	return true
}

func (c *Conn) readLoop(first []byte, firstHeld int64) {
	if first != nil {
		if !c.handleMessage(websocket.MessageBinary, first, firstHeld) {
			return
		}
	}
	var hint int64 // see readHint
	for {
		// No cancellable context on socket calls: coder/websocket arms a
		// context.AfterFunc per call for one (allocations on every packet);
		// shutdown closes the socket instead, which ends the call.
		typ, r, err := c.ws.Reader(context.Background())
		if err != nil {
			c.readFailed(err)
			return
		}
		m, err := readMessage(r, c.hub.cfg.readLimit, c, c.freeBytes, hint)
		if err != nil {
			c.readFailed(err)
			return
		}
		hint = readHint(m.size)
		c.lastRead.Store(time.Now().UnixNano())
		if m.refused {
			if !c.refuse(&m) {
				return
			}
			continue
		}
		if typ == websocket.MessageText && !utf8.Valid(m.frame) {
			// RFC 6455 §8.1. Titan sends packets in text frames at
			// times, but only packets that are UTF-8 (c2 #311).
			c.Release(m.held)
			c.hub.cfg.logger.Warn("netron: closing connection after a text frame that is not UTF-8", "peer", c.id)
			c.shutdown(fmt.Errorf("%w: a text frame that is not valid UTF-8", peer.ErrProtocol), websocket.StatusInvalidFramePayloadData, "text frame is not valid UTF-8")
			return
		}
		if !c.handleMessage(typ, m.frame, m.held) {
			return
		}
	}
}

// handleMessage handles one message that holds held bytes of inbound
// memory: a subscriber that keeps its packet takes them over (Adopt);
// what is left is given back once the message is handled.
func (c *Conn) handleMessage(typ websocket.MessageType, frame []byte, held int64) bool {
	c.msgSeq++
	if c.msgSeq == 0 {
		c.msgSeq = 1 // 0 marks the packets of a batch: never adopted
	}
	seq := c.msgSeq
	rest := held
	if held < 1<<32 {
		c.msgCharge.Store(uint64(seq)<<32 | uint64(held))
		rest = 0
	}
	ok := c.handleFrame(typ, frame, len(frame), seq)
	v := c.msgCharge.Swap(0)
	if uint32(v>>32) == seq {
		rest += int64(uint32(v))
	}
	c.Release(rest)
	return ok
}

// Adopt takes over the inbound memory the message of in holds (see
// WithInboundMemory), for a subscriber of TopicRequests or TopicStreams
// that keeps in's data after its callback has returned (its data aliases
// the message), and returns it: the caller gives it back with Release once
// it lets the data go. It returns 0 when there is nothing to take: the
// packet shares its message with others (a batch), another subscriber took
// it, in did not come from this connection's reader, or the callback has
// returned. Only the reader's goroutine, inside the callback, gets more.
func (c *Conn) Adopt(in *Inbound) int64 {
	if in.seq == 0 || in.Conn != c {
		return 0
	}
	for {
		v := c.msgCharge.Load()
		if uint32(v>>32) != in.seq || uint32(v) == 0 {
			return 0
		}
		if c.msgCharge.CompareAndSwap(v, uint64(in.seq)<<32) {
			return int64(uint32(v))
		}
	}
}

// AwaitReplies counts the calls of this node waiting for a reply on the
// connection (delta +1 when one is sent, -1 when it is answered or given
// up): a reply while one waits is read without a charge to the inbound
// memory (see WithInboundMemory).
func (c *Conn) AwaitReplies(delta int) { c.awaiting.Add(int64(delta)) }

// freeBytes returns how many bytes the message that starts with head may
// take without a charge to the inbound memory: a reply to a call of this
// node while one waits on the connection, whatever its size (up to the
// read limit), or a batch of at most maxBatchBytes, which may carry such
// replies. Anything else, and a batch that grows past that, is charged.
func (c *Conn) freeBytes(head []byte) int64 {
	if len(head) < wire.HeaderSize || head[0] == '{' || c.awaiting.Load() <= 0 {
		return 0
	}
	flags := head[4]
	if flags&wire.FlagImpulse != 0 {
		return 0
	}
	switch wire.Type(flags & 0x0f) {
	case wire.TypeGet, wire.TypeSet, wire.TypeCall, wire.TypeTask:
		return c.hub.cfg.readLimit
	case wire.TypeExt:
		if string(wire.ExtKind(head[wire.HeaderSize:])) == "batch" {
			return maxBatchBytes
		}
	}
	return 0
}

// refuse handles a message that did not fit the inbound memory and was
// dropped unread (see readMessage). A request is published with Refused
// set and no data, for the RPC server to answer with 503; so is a STREAM
// chunk (with its trailer), for its stream to fail. Anything else is
// dropped: a PING is not answered, an event is lost.
func (c *Conn) refuse(m *message) bool {
	log := c.hub.cfg.logger
	if m.headLen < wire.HeaderSize || m.head[0] == '{' {
		log.Debug("netron: dropped a message that does not fit the node's inbound memory", "peer", c.id, "size", m.size)
		return true
	}
	p := wire.Packet{ID: binary.BigEndian.Uint32(m.head[:4]), Flags: m.head[4]}
	var topic *bus.Topic[Inbound]
	switch t := p.Type(); {
	case t == wire.TypeStream && m.size >= wire.HeaderSize+wire.TrailerSize:
		p.StreamID = binary.BigEndian.Uint32(m.tail[:4])
		p.StreamIndex = binary.BigEndian.Uint32(m.tail[4:])
		topic = c.hub.streams
	case t >= wire.TypeGet && t <= wire.TypeTask && p.IsRequest():
		topic = c.hub.requests
	}
	log.Debug("netron: refused a message that does not fit the node's inbound memory", "peer", c.id, "type", p.Type(), "request_id", p.ID, "size", m.size, "used", c.hub.mem.Used(), "limit", c.hub.mem.Limit())
	if topic == nil {
		return true
	}
	c.publishing.Store(true)
	err := topic.Publish(c.ctx, Inbound{Conn: c, Packet: p, Message: m.size, Refused: true})
	c.publishing.Store(false)
	if err != nil {
		c.dropHeld()
		if c.Err() == nil {
			c.shutdown(fmt.Errorf("bus: %w", err), websocket.StatusGoingAway, "node stopping")
		}
		return false
	}
	c.runHeld()
	return true
}

// readChunk is the size of the pooled buffers messages are first read
// into: a smaller message is copied out at its exact size, a larger one
// goes on in a buffer of its own.
const readChunk = 32 << 10

var chunkPool = sync.Pool{New: func() any { return new([readChunk]byte) }}

// message is one message read by readMessage.
type message struct {
	frame []byte
	held  int64 // inbound memory it holds
	size  int
	// refused: it did not fit the inbound memory and was read and
	// dropped; its first bytes (its packet header) and last 8 (a STREAM
	// packet's trailer) are kept.
	refused bool
	head    [wire.HeaderSize]byte
	headLen int
	tail    [wire.TrailerSize]byte
}

// maxReadHint bounds the buffer a message is read into before its size
// shows: one large message does not make every one after it start large.
const maxReadHint = 1 << 20

// readHint is the buffer readMessage starts the next message at after one
// of size bytes: that size and a little more (so that a message of the
// same size ends before the buffer is full), up to maxReadHint; 0 after
// a message that fits readChunk.
func readHint(size int) int64 {
	if size <= readChunk || size > maxReadHint {
		return 0
	}
	return int64(size) + 512
}

// readMessage reads one message of at most limit bytes (the reader fails
// beyond). Packets alias their frame, so every message gets a buffer of
// its own: a message up to readChunk is read into a pooled buffer and
// copied out at its exact size; a larger one grows a buffer of its own,
// which becomes the frame, copied to its size when that wastes more than
// an eighth of it. No buffer that held a large message is kept for the
// next one. hint (see readHint) is the size that buffer starts at, when
// larger than the least: a stream's chunks, each the size of the last,
// are read into one buffer each instead of one that doubles three times
// and a copy (5 allocations of 64 to 128 KiB for a 64 KiB chunk).
//
// Its buffer is taken from mem as it is read, never waited for, except
// for the first free(head) bytes (head: its first bytes, the packet
// header; see Conn.freeBytes): held is what the caller gives back once
// the message is handled. A message that does not fit is read to its end
// without being kept (refused).
func readMessage(r io.Reader, limit int64, mem wire.Memory, free func(head []byte) int64, hint int64) (m message, err error) {
	chunk := chunkPool.Get().(*[readChunk]byte)
	defer chunkPool.Put(chunk)
	n, err := io.ReadFull(r, chunk[:])
	m.headLen = copy(m.head[:], chunk[:n])
	switch err {
	case io.EOF, io.ErrUnexpectedEOF:
		m.size = n
		if free(chunk[:n]) < int64(n) {
			if m.held = messageCost(int64(n)); !mem.TryAcquire(m.held) {
				m.held, m.refused = 0, true
				keepTail(&m.tail, chunk[:n])
				return m, nil
			}
		}
		m.frame = bytes.Clone(chunk[:n])
		return m, nil
	case nil:
	default:
		return m, err
	}
	freeUpTo := free(chunk[:n])
	defer func() {
		if err != nil || m.refused {
			mem.Release(m.held)
			m.held = 0
		}
	}()
	// take charges the buffer once it is larger than what is free: all of
	// it at once the first time.
	charged := false
	take := func(size int64) bool {
		switch {
		case charged:
			if !mem.TryAcquire(messageCost(size) - m.held) {
				return false
			}
		case size > freeUpTo:
			if !mem.TryAcquire(messageCost(size)) {
				return false
			}
			charged = true
		default:
			return true
		}
		m.held = messageCost(size)
		return true
	}
	first := int64(2 * readChunk)
	if hint > first {
		first = min(hint, limit+1)
	}
	if !take(first) {
		return discard(r, chunk, n, chunk[:n], m)
	}
	buf := make([]byte, readChunk, first)
	copy(buf, chunk[:])
	for {
		if len(buf) == cap(buf) {
			// Doubles, up to one byte past the limit: the read that
			// goes past it fails.
			grow := min(int64(len(buf)), max(limit+1-int64(len(buf)), 1))
			if !take(int64(len(buf)) + grow) {
				return discard(r, chunk, len(buf), buf, m)
			}
			buf = append(make([]byte, 0, int64(len(buf))+grow), buf...)
		}
		k, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		switch {
		case err == io.EOF:
			m.size = len(buf)
			if waste := cap(buf) - len(buf); waste > len(buf)/8 {
				// A copy at its size, taken before the larger buffer is
				// given back (when it fits; otherwise the buffer stays).
				if !charged {
					buf = bytes.Clone(buf)
				} else if size := messageCost(int64(len(buf))); mem.TryAcquire(size) {
					mem.Release(m.held)
					m.held = size
					buf = bytes.Clone(buf)
				}
			}
			m.frame = buf
			return m, nil
		case err != nil:
			return m, err
		}
	}
}

// discard reads the rest of a message that does not fit the inbound
// memory into chunk, keeping nothing but its last 8 bytes; read is what
// was read of it before, ending with prev.
func discard(r io.Reader, chunk *[readChunk]byte, read int, prev []byte, m message) (message, error) {
	m.refused = true
	m.size = read
	keepTail(&m.tail, prev)
	for {
		k, err := r.Read(chunk[:])
		m.size += k
		keepTail(&m.tail, chunk[:k])
		switch {
		case err == io.EOF:
			return m, nil
		case err != nil:
			return m, err
		}
	}
}

// keepTail shifts p into t, which keeps the last bytes seen.
func keepTail(t *[wire.TrailerSize]byte, p []byte) {
	if len(p) >= len(t) {
		copy(t[:], p[len(p)-len(t):])
		return
	}
	copy(t[:], t[len(p):])
	copy(t[len(t)-len(p):], p)
}

func (c *Conn) readFailed(err error) {
	status := websocket.CloseStatus(err)
	switch {
	case errors.Is(err, websocket.ErrMessageTooBig): // coder/websocket closed with 1009 itself
		err = fmt.Errorf("%w: message larger than the read limit of %d bytes: %w", peer.ErrProtocol, c.hub.cfg.readLimit, err)
	case status == websocket.StatusMessageTooBig:
		err = errors.New("closed by peer: our message was larger than its read limit (status 1009)")
	case status != -1:
		err = fmt.Errorf("closed by peer (status %d)", status)
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		err = fmt.Errorf("connection lost: %w", err)
	}
	c.shutdown(err, websocket.StatusInternalError, "")
}

// handleFrame processes one packet from the peer, which came in a message
// of msg bytes (a batch carries several); false means the connection was
// closed.
func (c *Conn) handleFrame(typ websocket.MessageType, frame []byte, msg int, seq uint32) bool {
	return c.handlePacket(typ, frame, msg, seq, nil)
}

// handlePacket is handleFrame for a packet of a batch too: seq is 0 and
// batch the batch's charge, if it has one.
func (c *Conn) handlePacket(typ websocket.MessageType, frame []byte, msg int, seq uint32, batch *batchCharge) bool {
	if len(frame) > 0 && frame[0] == '{' {
		// A handshake message after the handshake (a repeated client-id):
		// Titan drops it; so do we, without closing.
		if hs, ok := parseHandshakeAside(frame); ok {
			c.hub.cfg.logger.Debug("netron: dropped handshake message after handshake", "peer", c.id, "type", hs.Type)
			return true
		}
	}
	p, err := wire.Decode(frame)
	if err != nil {
		c.hub.cfg.logger.Warn("netron: closing connection after a malformed frame", "peer", c.id, "err", err, "text", typ == websocket.MessageText)
		c.shutdown(fmt.Errorf("%w: %w", peer.ErrProtocol, err), websocket.StatusProtocolError, err.Error())
		return false
	}
	var topic *bus.Topic[Inbound]
	switch t := p.Type(); {
	case t == wire.TypePing:
		if p.IsRequest() {
			// The answer echoes the data: it counts against the node's
			// inbound memory until written, or a peer that sends large
			// PINGs and reads nothing would make the node queue them
			// (the queue bounds packets, not bytes). A PING that does not
			// fit is not answered.
			reply := wire.Packet{ID: p.ID, Flags: 0, Data: p.Data}
			size := wire.HeaderSize + len(p.Data)
			if !c.TryAcquire(messageCost(int64(size))) {
				c.hub.cfg.logger.Debug("netron: PING not answered: the node's inbound memory is full", "peer", c.id)
				return true
			}
			frame := reply.Append(make([]byte, 0, size))
			if err := c.Queue(c.ctx, frame, c.relFrame); err != nil {
				c.relFrame(frame)
				return false
			}
		}
		return true
	case t == wire.TypeExt && !p.IsRequest():
		// Not-request EXT packets are ours: batch, goaway.
		switch extKind(p.Data) {
		case "batch":
			return c.handleBatch(typ, p.Data, msg, seq)
		case "goaway":
			c.goingAway.Store(true)
			c.hub.cfg.logger.Info("netron: peer is going away", "peer", c.id)
		}
		return true
	case t >= wire.TypeStream:
		topic = c.hub.streams
	case p.IsRequest():
		topic = c.hub.requests
	default:
		topic = c.hub.responses
	}
	c.publishing.Store(true)
	err = topic.Publish(c.ctx, Inbound{Conn: c, Packet: p, Message: msg, seq: seq, batch: batch})
	c.publishing.Store(false)
	if err != nil {
		c.dropHeld()
		if c.Err() == nil {
			c.shutdown(fmt.Errorf("bus: %w", err), websocket.StatusGoingAway, "node stopping")
		}
		return false
	}
	c.runHeld()
	return true
}

// Hold is for a subscriber of an inbound topic (TopicRequests,
// TopicResponses, TopicStreams), from its callback, which runs on the
// connection's reader goroutine inside the topic's publish: wait runs on
// the reader once the publish has returned, before the next packet is
// read. A subscriber that must wait for room (backpressure) waits there:
// inside the publish it would hold the topic's lock, and with it every
// other connection's reader. Holds run in the order they were made. Hold
// reports false, and registers nothing, when the reader is not publishing
// (it was called from another goroutine): the caller then waits itself.
// A wait registered during a publish that fails (the node stopping) is
// dropped.
func (c *Conn) Hold(wait func()) bool {
	if !c.publishing.Load() {
		return false
	}
	c.heldMu.Lock()
	c.held = append(c.held, wait)
	c.hasHeld.Store(true)
	c.heldMu.Unlock()
	return true
}

// dropHeld forgets the waits of a publish that failed.
func (c *Conn) dropHeld() {
	c.heldMu.Lock()
	c.held = nil
	c.hasHeld.Store(false)
	c.heldMu.Unlock()
}

// runHeld runs the waits Hold registered during the last publish.
func (c *Conn) runHeld() {
	if !c.hasHeld.Load() {
		return
	}
	c.heldMu.Lock()
	held := c.held
	c.held = nil
	c.hasHeld.Store(false)
	c.heldMu.Unlock()
	for _, wait := range held {
		wait()
	}
}

// parseHandshakeAside is parseHandshake on a goroutine of its own. The
// reader's stack stays parked for the connection's life and never
// shrinks below what it once used; encoding/json would double it (8 KiB
// instead of 4 per idle connection). Go and Titan clients send their
// client-id once, right after the hello, so this runs about once per
// connection.
func parseHandshakeAside(frame []byte) (handshakeMsg, bool) {
	type result struct {
		hs handshakeMsg
		ok bool
	}
	ch := make(chan result, 1)
	go func() {
		hs, ok := parseHandshake(frame)
		ch <- result{hs, ok}
	}()
	r := <-ch
	return r.hs, r.ok
}

// ExtensionBatch is the extension under which Go peers put several packets
// in one WebSocket message (see writeOnce).
const ExtensionBatch = "batch1"

// maxBatch bounds the packets and bytes of one batched message; the bytes
// leave room for four 64 KiB stream chunks with their headers.
const (
	maxBatch      = 64
	maxBatchBytes = 256<<10 + 4<<10
)

// batchOverhead is the size of a batch packet without its bins: the header
// (5 bytes), the array header (at most 5) and "batch" (6).
const batchOverhead = 5 + 5 + 6

// appendBatch appends the batch packet carrying frames.
func appendBatch(dst []byte, frames []Outbound) []byte {
	dst = wire.AppendHeader(dst, 0, uint8(wire.TypeExt))
	dst = wire.AppendArrayHeader(dst, 1+len(frames))
	dst = wire.AppendString(dst, "batch")
	for _, f := range frames {
		dst = wire.AppendBin(dst, f.Frame)
	}
	return dst
}

// handleBatch processes the packets of a batch message in order, without
// copying them; false means the connection was closed.
func (c *Conn) handleBatch(typ websocket.MessageType, data []byte, msg int, seq uint32) bool {
	// The message's charge, taken from the reader: its packets keep a
	// share of it (Keep), and the last one gives it back.
	var batch *batchCharge
	if v := c.msgCharge.Swap(uint64(seq) << 32); uint32(v>>32) == seq && uint32(v) != 0 {
		batch = &batchCharge{c: c, n: int64(uint32(v))}
		batch.refs.Store(1) // the reader's
		defer batch.done()
	}
	err := wire.EachBatchFrame(data, func(frame []byte) error {
		if len(frame) > 0 && frame[0] == '{' {
			return errors.New("handshake message in a batch")
		}
		if p, err := wire.Decode(frame); err == nil && p.Type() == wire.TypeExt && !p.IsRequest() && extKind(p.Data) == "batch" {
			return errors.New("batch inside a batch")
		}
		if !c.handlePacket(typ, frame, msg, 0, batch) {
			return errConnClosed
		}
		return nil
	})
	switch {
	case err == errConnClosed:
		return false
	case err != nil:
		c.hub.cfg.logger.Warn("netron: closing connection after a malformed batch", "peer", c.id, "err", err)
		c.shutdown(fmt.Errorf("%w: batch: %w", peer.ErrProtocol, err), websocket.StatusProtocolError, "malformed batch")
		return false
	}
	return true
}

var errConnClosed = errors.New("connection closed")

func (c *Conn) keepAlive() {
	if c.Err() != nil {
		return
	}
	interval := c.hub.cfg.keepAliveInterval
	idle := time.Duration(time.Now().UnixNano() - c.lastRead.Load())
	next := interval
	if idle < interval {
		next = interval - idle
	} else {
		ok := c.hub.goTrackedWait(func() {
			ctx, cancel := context.WithTimeout(c.ctx, c.hub.cfg.keepAliveTimeout)
			defer cancel()
			if err := c.ws.Ping(ctx); err != nil {
				if c.Err() == nil {
					c.shutdown(fmt.Errorf("keep-alive: no pong within %s: %w", c.hub.cfg.keepAliveTimeout, err), websocket.StatusPolicyViolation, "keep-alive timeout")
				}
				return
			}
			c.pongs.Add(1)
		})
		if !ok {
			return
		}
	}
	c.kaMu.Lock()
	if c.Err() == nil {
		c.kaTimer.Reset(next)
	}
	c.kaMu.Unlock()
}
