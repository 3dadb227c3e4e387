package streamcore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netron-go/netron/internal/wire"
)

// Outbound is the producer end of one stream, untyped: it sends any value
// msgpack can carry. Write it through a Writer (NewWriter) or let Start
// pump a Source into it.
//
// With flow control (the peer negotiated Extension, or the stream is
// in-process) Send waits for credit: the consumer grants its window when it
// opens the stream and grants again as it takes chunks, so a producer
// faster than its consumer waits instead of filling memory. Without it
// (plain Netron peers) Send is bounded only by the connection's outbound
// queue. Send returns once its chunk is queued for the connection
// (transport.Conn.Queue), which writes it while the producer encodes the next.
type Outbound struct {
	m      *Manager
	cs     *connState
	id     uint32
	live   bool
	credit bool
	pipe   *Inbound // consumer of an in-process stream

	ctx    context.Context
	cancel context.CancelCauseFunc
	wake   chan struct{}

	sendMu   sync.Mutex // serialises Send and Close: chunks go out in index order
	finished bool       // guarded by sendMu
	endSent  bool       // the end (EOS or STREAM_ERROR) went out; guarded by sendMu
	index    uint32     // guarded by sendMu

	mu       sync.Mutex
	avail    int64 // credit in bytes; a chunk may be sent while it is positive
	credited bool  // a grant came
	started  bool  // Start ran: the consumer knows the stream
	openT    *time.Timer
	failed   atomic.Bool // closed with an error, for the metrics
}

func newOutbound(m *Manager, cs *connState, id uint32, live, credit bool) *Outbound {
	parent := context.Background()
	if cs.conn != nil {
		parent = cs.conn.Context()
	}
	ctx, cancel := context.WithCancelCause(parent)
	m.cfg.obs.StreamOpened(false)
	return &Outbound{m: m, cs: cs, id: id, live: live, credit: credit, ctx: ctx, cancel: cancel, wake: make(chan struct{}, 1)}
}

// ID returns the stream id.
func (o *Outbound) ID() uint32 { return o.id }

// Live reports whether the stream is live.
func (o *Outbound) Live() bool { return o.live }

// FlowControlled reports whether the stream has credit-based flow control.
func (o *Outbound) FlowControlled() bool { return o.credit }

// SetLive changes whether the stream is live. Only before its Reference
// is sent.
func (o *Outbound) SetLive(live bool) {
	o.live = live
	if o.pipe != nil {
		o.pipe.live = live
	}
}

// Context returns the producer's context: it is cancelled when the
// consumer stops (its cause matches ErrCancelled), when the connection
// closes (the cause matches peer.ErrDisconnected), when the Manager
// closes, and after Close.
func (o *Outbound) Context() context.Context { return o.ctx }

// Reference returns the StreamReference (ext 107) that announces the
// stream to its consumer: the id as a msgpack string, type 1 (the writable
// side), the live flag, and peerID, which Titan sets to the id of the
// other side of the connection.
func (o *Outbound) Reference() wire.StreamReference {
	peerID := ""
	if o.cs.conn != nil {
		peerID = o.cs.conn.ID()
	}
	return wire.StreamReference{StreamID: strconv.FormatUint(uint64(o.id), 10), Type: 1, Live: o.live, PeerID: peerID}
}

// cause returns why the stream's context ended, or nil.
func (o *Outbound) cause() error {
	if o.ctx.Err() == nil {
		return nil
	}
	c := context.Cause(o.ctx)
	if errors.Is(c, context.Canceled) && o.cs.conn != nil {
		if err := o.cs.conn.Err(); err != nil {
			return err
		}
	}
	return c
}

func (o *Outbound) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// remove forgets the stream in its connection's table.
func (o *Outbound) remove() {
	o.cs.mu.Lock()
	gone := o.cs.out[o.id] == o
	if gone {
		delete(o.cs.out, o.id)
	}
	o.cs.mu.Unlock()
	if gone {
		o.m.cfg.obs.StreamEnded(false, o.failed.Load() || !errors.Is(context.Cause(o.ctx), ErrClosed))
	}
}

// abort ends the stream without telling the peer (see stop).
func (o *Outbound) abort(err error) {
	o.end(err)
	o.remove()
}

// end cancels the stream's context with err and wakes a Send waiting for
// credit; the stream stays in its connection's table.
func (o *Outbound) end(err error) {
	o.mu.Lock()
	if o.openT != nil {
		o.openT.Stop()
	}
	o.mu.Unlock()
	o.cancel(err)
	o.signal()
}

// stop ends a stream that has not ended yet with err and tells its
// consumer, best effort, with STREAM_ERROR {streamId, message}, so that a
// consumer that opened the stream (or opens it later) fails instead of
// waiting for chunks that will never come. Nothing is sent when the
// stream had already ended (its end went out, the consumer cancelled it,
// the connection closed) or when the consumer cannot know it (neither
// Start nor a chunk told it: its announcement may never have been sent).
//
// The stream leaves its connection's table only once its STREAM_ERROR is
// queued: credit its consumer granted meanwhile then finds it (and is
// dropped) instead of being answered not-claimed ahead of the error, which
// would end the consumer with not-claimed instead of message.
func (o *Outbound) stop(err error, message string) {
	running := o.ctx.Err() == nil
	o.end(err) // first: a Send waiting for credit holds sendMu
	o.mu.Lock()
	known := o.started
	o.mu.Unlock()
	o.sendMu.Lock()
	o.finished = true
	notify := running && !o.endSent && (known || o.index > 0)
	o.endSent = o.endSent || notify
	o.sendMu.Unlock()
	// Forgotten before the peer is told: a consumer that opens the stream
	// after the STREAM_ERROR reached it grants credit to a stream we no
	// longer have, and is told again (Manager.onExt) instead of waiting.
	o.remove()
	if notify && o.pipe == nil && o.cs.conn != nil {
		o.cs.sendControl(appendEnd(nil, o.cs.conn.NextID(), wire.TypeStreamError, o.id, message), true)
	}
}

// cancelByConsumer is the consumer's cancel (EXT cancel, or STREAM_CLOSE
// or STREAM_ERROR from a plain peer).
func (o *Outbound) cancelByConsumer(reason string) {
	o.abort(cancelled(reason))
}

// addCredit adds a grant from the consumer.
func (o *Outbound) addCredit(n int64) {
	o.mu.Lock()
	o.avail += n
	over := o.avail > MaxWindow
	if !o.credited {
		o.credited = true
		if o.openT != nil {
			o.openT.Stop()
		}
	}
	o.mu.Unlock()
	if over {
		err := fmt.Errorf("%w: the consumer granted more than %d bytes", ErrCreditOverflow, int64(MaxWindow))
		o.m.cfg.logger.Warn("netron: stream failed", "peer", o.cs.peerID(), "stream", o.id, "err", err)
		if o.cs.conn != nil {
			o.cs.sendControl(appendEnd(nil, o.cs.conn.NextID(), wire.TypeStreamError, o.id, err.Error()), false)
		}
		o.abort(err)
		return
	}
	o.signal()
}

// Ready waits until the stream may send a chunk (it has credit, or has no
// flow control), until ctx ends, or until the stream ends.
func (o *Outbound) Ready(ctx context.Context) error {
	for {
		if err := o.cause(); err != nil {
			return err
		}
		if !o.credit {
			return nil
		}
		o.mu.Lock()
		ok := o.avail > 0
		o.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-o.wake:
		case <-ctx.Done():
			if err := o.cause(); err != nil {
				return err // ctx is (derived from) the stream's context
			}
			return ctx.Err()
		case <-o.ctx.Done():
		}
	}
}

// acquire takes cost bytes of credit, waiting for some to be available.
func (o *Outbound) acquire(ctx context.Context, cost int64) error {
	for stalled := false; ; stalled = true {
		if err := o.cause(); err != nil {
			return err
		}
		if !o.credit {
			return nil
		}
		o.mu.Lock()
		if o.avail > 0 {
			o.avail -= cost
			o.mu.Unlock()
			return nil
		}
		o.mu.Unlock()
		if !stalled {
			o.m.cfg.obs.CreditStall()
		}
		select {
		case <-o.wake:
		case <-ctx.Done():
			if err := o.cause(); err != nil {
				return err // ctx is (derived from) the stream's context
			}
			return ctx.Err()
		case <-o.ctx.Done():
		}
	}
}

// frames recycles the buffers chunks are encoded into; the connection's
// writer gives them back after the write. A free list rather than a
// sync.Pool: putting a slice into a sync.Pool allocates.
var frames = make(chan []byte, 64)

const maxPooledFrame = 128 << 10 // 64 frames of 128 KiB: at most 8 MiB kept

// getFrame returns an empty buffer for a frame of about size bytes.
func getFrame(size int) []byte {
	select {
	case b := <-frames:
		if cap(b) >= size {
			return b[:0]
		}
		putFrame(b)
	default:
	}
	return make([]byte, 0, max(size, 64))
}

func putFrame(b []byte) {
	if cap(b) > maxPooledFrame {
		return
	}
	select {
	case frames <- b[:0]:
	default:
	}
}

// Send encodes v and sends it as the next chunk, waiting for credit while
// the consumer is behind. It returns the stream's end (ErrCancelled when
// the consumer stopped, the disconnect error, ErrClosed after Close), or
// ctx's error. A value that cannot be encoded or is larger than the chunk
// limit is refused and the stream carries on; any other error ends the
// stream.
func (o *Outbound) Send(ctx context.Context, v any) error {
	if b, ok := v.([]byte); ok {
		return o.send(ctx, nil, b, true)
	}
	return o.send(ctx, v, nil, false)
}

// sendBytes is Send of a []byte without boxing it in an interface (which
// allocates): the sources and Writers of []byte call it.
func (o *Outbound) sendBytes(ctx context.Context, b []byte) error {
	return o.send(ctx, nil, b, true)
}

// send is Send of v, or of b when bin is set (a []byte, written as msgpack
// bin, nil as msgpack nil, as AppendMarshal does).
func (o *Outbound) send(ctx context.Context, v any, b []byte, bin bool) error {
	o.sendMu.Lock()
	defer o.sendMu.Unlock()
	if o.finished {
		return ErrClosed
	}
	if err := o.cause(); err != nil {
		return err
	}
	flags := flagsChunk
	if o.live {
		flags = flagsChunkLive
	}
	var buf []byte
	if o.pipe == nil {
		size := 64
		if bin {
			size = len(b) + wire.HeaderSize + 5 + wire.TrailerSize
		}
		buf = getFrame(size)
	}
	buf = wire.AppendHeader(buf, 0, flags)
	switch {
	case bin && b == nil:
		buf = wire.AppendNil(buf)
	case bin:
		buf = wire.AppendBin(buf, b)
	default:
		var err error
		if buf, err = wire.AppendMarshal(buf, v); err != nil {
			o.release(buf)
			return fmt.Errorf("stream: encode %T: %w", v, err)
		}
	}
	n := len(buf) - wire.HeaderSize
	if n > o.m.cfg.maxChunk {
		o.release(buf)
		return fmt.Errorf("%w: %d bytes, limit %d", ErrChunkTooLarge, n, o.m.cfg.maxChunk)
	}
	if err := o.acquire(ctx, frameCost(n)); err != nil {
		o.release(buf)
		return err
	}
	idx := o.index
	o.index++
	if o.pipe != nil {
		o.pipe.deliverLocal(flags, buf[wire.HeaderSize:], idx)
		o.m.cfg.obs.Chunk(false, n+wire.HeaderSize+wire.TrailerSize) // as a packet would be
		return nil
	}
	binary.BigEndian.PutUint32(buf, o.cs.conn.NextID())
	buf = wire.AppendTrailer(buf, o.id, idx)
	size := len(buf)
	// Queued, not written here: the connection writes the chunk (several
	// per message between Go peers) while the producer encodes the next.
	if err := o.cs.conn.Queue(ctx, buf, putFrame); err != nil {
		// The index is spent: the stream cannot go on.
		o.finished = true
		if c := o.cause(); c != nil {
			err = c
		} else {
			o.endSent = true
			o.cs.sendControl(appendEnd(nil, o.cs.conn.NextID(), wire.TypeStreamError, o.id, "producer stopped: "+err.Error()), false)
		}
		o.abort(err)
		return err
	}
	o.m.cfg.obs.Chunk(false, size)
	return nil
}

func (o *Outbound) release(buf []byte) {
	if o.pipe == nil {
		putFrame(buf)
	}
}

// Close ends the stream: with err nil the consumer gets the end of stream
// after every chunk sent; otherwise it gets err's message (STREAM_ERROR)
// after them. It returns why the stream had already ended (the consumer's
// cancel, the disconnect), or nil. Close is idempotent; the producer's
// context is cancelled afterwards.
func (o *Outbound) Close(err error) error {
	o.sendMu.Lock()
	defer o.sendMu.Unlock()
	if o.finished {
		return nil
	}
	o.finished = true
	if err != nil {
		o.failed.Store(true)
	}
	if c := o.cause(); c != nil {
		// Ended already: whoever ended it takes it out of the table (stop
		// only once the consumer is told; a closed connection drops its
		// whole table).
		return c
	}
	defer o.abort(ErrClosed)
	o.endSent = true
	if o.pipe != nil {
		if err == nil {
			o.pipe.deliverLocal(flagsChunk|wire.FlagEOS, nil, o.index)
		} else {
			o.pipe.fail(RemoteError(err.Error(), err), "")
		}
		return nil
	}
	var f []byte
	if err == nil {
		f = appendEOS(getFrame(16), o.cs.conn.NextID(), o.live, o.id, o.index)
	} else {
		f = appendEnd(getFrame(64), o.cs.conn.NextID(), wire.TypeStreamError, o.id, err.Error())
	}
	if serr := o.cs.conn.Send(o.ctx, f, putFrame); serr != nil {
		if c := o.cause(); c != nil {
			return c
		}
		return serr
	}
	return nil
}

// Start runs run in a goroutine the Manager owns, with the producer's
// context, and closes the stream with its result: the end of stream for
// nil, STREAM_ERROR otherwise. A panic in run becomes an internal error
// for the consumer and a log line. It reports false (and aborts the
// stream) when the Manager is closed.
func (o *Outbound) Start(run func(ctx context.Context) error) bool {
	o.mu.Lock()
	o.started = true
	if o.credit && o.pipe == nil && !o.credited {
		// A consumer that never opens the stream never grants credit:
		// give up after the claim timeout rather than wait forever, and
		// say so: a consumer that opens it late then fails at once.
		o.openT = time.AfterFunc(o.m.cfg.claimTimeout, func() {
			o.mu.Lock()
			credited := o.credited
			o.mu.Unlock()
			if !credited {
				o.stop(fmt.Errorf("%w: no credit from the consumer within %s", ErrNotClaimed, o.m.cfg.claimTimeout), ReasonNotClaimed)
			}
		})
	}
	o.mu.Unlock()
	ok := o.m.goTracked(func() {
		var err error
		func() {
			defer func() {
				if r := recover(); r != nil {
					o.m.cfg.logger.Error("netron: stream producer panicked", "peer", o.cs.peerID(), "stream", o.id, "panic", r, "stack", string(debug.Stack()))
					err = errors.New("internal error in the stream producer")
				}
			}()
			err = run(o.ctx)
		}()
		_ = o.Close(err)
	})
	if !ok {
		o.abort(ErrShutdown)
	}
	return ok
}

// Abort ends a stream that will not run (its announcement was never
// sent): nothing is sent to the peer.
//
// Abort also stops a running producer (after Start, or once a chunk was
// sent): its context is cancelled with err, and its consumer gets err's
// message (STREAM_ERROR, best effort) unless the stream had already ended,
// so that it does not wait for ever. An in-process consumer sees err.
func (o *Outbound) Abort(err error) {
	if err == nil {
		err = ErrClosed
	}
	o.stop(err, err.Error())
	if o.pipe != nil {
		o.pipe.fail(err, "")
		o.pipe.remove()
	}
}

// SendBytes is Send of a []byte without boxing it in an interface (which
// allocates): the sources and Writers of []byte call it.
func (o *Outbound) SendBytes(ctx context.Context, b []byte) error { return o.sendBytes(ctx, b) }
