package streamcore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
)

// Manager runs the streams of a node. It consumes the stream packets of
// every connection from the bus (transport.TopicStreams: STREAM, STREAM_ERROR,
// STREAM_CLOSE and EXT), keeps the streams of each connection in that
// connection's state, and ends them when the connection closes
// (transport.TopicDisconnected). Its bus callbacks run in the connections'
// reader goroutines and never block: chunks go to per-stream queues
// bounded by flow control, and what must be sent back goes through a
// per-connection control queue.
//
// A Manager owns the goroutines that pump producers (Outbound.Start) and
// send control packets; Close cancels every stream and waits for them.
type Manager struct {
	b     *bus.Bus
	cfg   config
	unsub []func()
	local *connState // in-process pipes
	done  chan struct{}

	mu     sync.Mutex
	conns  map[*connState]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewManager subscribes to the stream packets and disconnects on b.
func NewManager(b *bus.Bus, opts ...Option) (*Manager, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	m := &Manager{b: b, cfg: cfg, conns: make(map[*connState]struct{}), done: make(chan struct{})}
	m.local = newConnState(m, nil)
	u1, err := bus.NewTopic[transport.Inbound](b, transport.TopicStreams).SubscribeFunc(m.onPacket)
	if err != nil {
		return nil, err
	}
	u2, err := bus.NewTopic[transport.ConnEvent](b, transport.TopicDisconnected).SubscribeFunc(m.onDisconnect)
	if err != nil {
		u1()
		return nil, err
	}
	m.unsub = []func(){u1, u2}
	return m, nil
}

// Close stops taking packets, ends every stream (consumers see
// ErrShutdown, producers' contexts are cancelled) and waits for the
// goroutines the Manager owns. It is idempotent.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		m.wg.Wait()
		return nil
	}
	m.closed = true
	close(m.done)
	conns := make([]*connState, 0, len(m.conns))
	for cs := range m.conns {
		conns = append(conns, cs)
	}
	m.mu.Unlock()
	for _, u := range m.unsub {
		u()
	}
	for _, cs := range conns {
		cs.shutdown(ErrShutdown)
	}
	m.local.shutdown(ErrShutdown)
	m.wg.Wait()
	return nil
}

// goTracked runs f in a goroutine Close waits for; false once closed.
func (m *Manager) goTracked(f func()) bool {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return false
	}
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		f()
	}()
	return true
}

type connKey struct{ m *Manager }

// state returns the stream state of conn (nil conn: in-process pipes).
func (m *Manager) state(conn *transport.Conn) *connState {
	if conn == nil {
		return m.local
	}
	key := connKey{m}
	if v, ok := conn.Value(key); ok {
		return v.(*connState)
	}
	v, loaded := conn.LoadOrStoreValue(key, newConnState(m, conn))
	cs := v.(*connState)
	if !loaded {
		m.mu.Lock()
		cs.mu.Lock()
		switch {
		case m.closed:
			cs.closeErr = ErrShutdown
		case cs.closeErr == nil && conn.Err() != nil:
			cs.closeErr = conn.Err()
		case cs.closeErr == nil:
			m.conns[cs] = struct{}{}
		}
		cs.mu.Unlock()
		m.mu.Unlock()
	}
	return cs
}

func (m *Manager) onDisconnect(_ context.Context, ev transport.ConnEvent) {
	v, ok := ev.Conn.Value(connKey{m})
	if !ok {
		return
	}
	cs := v.(*connState)
	cs.shutdown(ev.Err)
	m.mu.Lock()
	delete(m.conns, cs)
	m.mu.Unlock()
}

// onPacket runs in the connection's reader goroutine: it must not block.
func (m *Manager) onPacket(_ context.Context, in transport.Inbound) {
	p := &in.Packet
	switch p.Type() {
	case wire.TypeStream:
		if in.Refused {
			m.onRefused(in.Conn, p)
			return
		}
		m.onChunk(in.Conn, p, &in)
	case wire.TypeStreamError, wire.TypeStreamClose:
		m.onEnd(in.Conn, p)
	case wire.TypeExt:
		m.onExt(in.Conn, p)
	}
}

// onRefused fails the stream of a chunk that did not fit the node's
// inbound memory (transport.Inbound.Refused): it was dropped unread.
func (m *Manager) onRefused(conn *transport.Conn, p *wire.Packet) {
	cs := m.state(conn)
	cs.mu.Lock()
	in := cs.in[p.StreamID]
	cs.mu.Unlock()
	if in == nil {
		return
	}
	mem := conn.Memory()
	in.fail(fmt.Errorf("%w: chunk %d did not fit the node's inbound memory (%d of %d bytes in use)", ErrBufferOverflow, p.StreamIndex, mem.Used(), mem.Limit()), ReasonOverflow)
}

func (m *Manager) onChunk(conn *transport.Conn, p *wire.Packet, pin *transport.Inbound) {
	if p.StreamID == 0 {
		m.cfg.logger.Debug("netron: dropped a STREAM packet without stream id", "peer", conn.ID())
		return
	}
	cs := m.state(conn)
	cs.mu.Lock()
	in := cs.in[p.StreamID]
	cs.mu.Unlock()
	if in == nil {
		// Titan creates a stream for an unknown id; we accept only streams
		// announced in a reply or opened by a call, so this is a chunk of
		// a stream that ended, was cancelled, or never existed.
		m.cfg.logger.Debug("netron: dropped a chunk of an unknown stream", "peer", conn.ID(), "stream", p.StreamID, "index", p.StreamIndex)
		return
	}
	in.deliver(p.Flags, p.Data, p.StreamIndex, pin.Message, pin)
}

func (m *Manager) onEnd(conn *transport.Conn, p *wire.Packet) {
	id, text, err := decodeEnd(p.Data, p.Type())
	if err != nil {
		m.cfg.logger.Warn("netron: dropped a malformed stream packet", "peer", conn.ID(), "type", p.Type().String(), "err", err)
		return
	}
	cs := m.state(conn)
	cs.mu.Lock()
	in, out := cs.in[id], cs.out[id]
	cs.mu.Unlock()
	switch {
	case out != nil && text == ReasonStreamLimit && !conn.Extensions().Has(Extension):
		// A plain consumer (Titan) refusing our stream over its limit:
		// the one STREAM_CLOSE of a plain peer that is about a stream we
		// produce, even when we consume one of its streams with that id.
		out.cancelByConsumer(text)
	case in != nil:
		// The producer's end of a stream we consume (the id space of
		// STREAM_ERROR and STREAM_CLOSE is the producer's: Titan looks
		// them up among its readable streams only).
		if p.Type() == wire.TypeStreamError {
			in.fail(remoteError(text), "")
		} else {
			in.fail(closedByPeer(text), "")
		}
	case out != nil && !conn.Extensions().Has(Extension):
		// A plain consumer stopping one of our streams: Titan ignores
		// this, we honour it. With the extension a consumer cancels with
		// EXT cancel, so these packets always come from a producer: one
		// for a stream we do not consume (yet) must not end our own
		// stream that has the same id.
		if text == "" {
			text = p.Type().String()
		}
		out.cancelByConsumer(text)
	default:
		m.cfg.logger.Debug("netron: dropped the end of an unknown stream", "peer", conn.ID(), "type", p.Type().String(), "stream", id)
	}
}

func (m *Manager) onExt(conn *transport.Conn, p *wire.Packet) {
	c, err := decodeControl(p.Data)
	if errors.Is(err, errNotOurs) {
		return
	}
	if err != nil {
		m.cfg.logger.Warn("netron: dropped a malformed stream control packet", "peer", conn.ID(), "err", err)
		return
	}
	cs := m.state(conn)
	cs.mu.Lock()
	out := cs.out[c.streamID]
	ours := c.streamID <= cs.lastID // an id we allocated
	cs.mu.Unlock()
	if out == nil {
		m.cfg.logger.Debug("netron: dropped a control packet of an unknown stream", "peer", conn.ID(), "kind", c.kind, "stream", c.streamID)
		if c.kind == extCredit && ours {
			// A consumer granting credit waits for chunks of a stream we
			// no longer have: most likely we gave up before it opened it
			// (ErrNotClaimed). Tell it, or it waits for ever. Best
			// effort; the id is in the consumer's inbound space, so this
			// can end nothing but the stream that granted the credit.
			// An id we never allocated is not ours to end.
			cs.sendControl(appendEnd(nil, conn.NextID(), wire.TypeStreamError, c.streamID, ReasonNotClaimed), false)
		}
		return
	}
	switch c.kind {
	case extCredit:
		out.addCredit(int64(c.credit))
	case extCancel:
		out.cancelByConsumer(c.reason)
	}
}

// parseID parses the msgpack-string stream id of a StreamReference.
func parseID(s string) (uint32, error) {
	id, err := strconv.ParseUint(s, 10, 32)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("%w: stream id %q", ErrInvalidReference, s)
	}
	return uint32(id), nil
}

// Announce registers the stream a reply from conn refers to, before the
// caller opens it with Accept, so chunks that a producer without flow
// control sends right behind the reply are kept. It runs in the reader
// goroutine (package rpc calls it as the reply arrives) and does not
// block. A stream nobody opens within the claim timeout is cancelled.
func (m *Manager) Announce(conn *transport.Conn, ref wire.StreamReference) error {
	id, err := parseID(ref.StreamID)
	if err != nil {
		return err
	}
	cs := m.state(conn)
	in := newInbound(m, cs, id, ref.Live, conn.Extensions().Has(Extension))
	cs.mu.Lock()
	switch {
	case cs.closeErr != nil:
		cs.mu.Unlock()
		return cs.closeErr
	case cs.in[id] != nil:
		cs.mu.Unlock()
		return fmt.Errorf("%w: stream %d announced twice", ErrInvalidReference, id)
	}
	// The limit is applied when the stream is opened: announces come
	// only from replies to our own calls.
	cs.in[id] = in
	in.armClaim()
	cs.mu.Unlock()
	return nil
}

// Expect registers a stream that a peer without flow control passes as an
// argument of a call, as the call is read (package rpc calls it in the
// reader goroutine, before the method runs and opens it with Accept): such
// a peer sends the chunks right behind the call, without waiting for
// credit, and they must not be lost whatever the latency before Accept.
// Until then they are buffered like any chunk of a peer without flow
// control (WithMaxBuffered, and the node's inbound memory). The streams
// expected and not opened yet count against the stream limit of the peer.
// A stream nobody opens within the claim timeout is cancelled; Forget
// cancels it at once. Expect returns the registered stream, for Forget, or
// nil for a peer with flow control, for which it does nothing: its
// producer waits for the credit Accept grants.
func (m *Manager) Expect(conn *transport.Conn, ref wire.StreamReference) (*Inbound, error) {
	if conn == nil || conn.Extensions().Has(Extension) {
		return nil, nil
	}
	id, err := parseID(ref.StreamID)
	if err != nil {
		return nil, err
	}
	cs := m.state(conn)
	in := newInbound(m, cs, id, ref.Live, false)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	switch {
	case cs.closeErr != nil:
		return nil, cs.closeErr
	case cs.in[id] != nil:
		return nil, fmt.Errorf("%w: stream %d passed twice", ErrInvalidReference, id)
	case len(cs.in) >= m.cfg.maxStreams:
		return nil, fmt.Errorf("%w: limit %d per peer", ErrTooManyStreams, m.cfg.maxStreams)
	}
	cs.in[id] = in
	in.armClaim()
	return in, nil
}

// Forget cancels a stream registered with Expect, unless it was opened
// (the call that passed it failed before its method ran, or the method did
// not read it): its buffered chunks are dropped and its producer is told
// to stop. A later stream of the same id is not touched.
func (m *Manager) Forget(in *Inbound, reason string) {
	if in == nil {
		return
	}
	cs := in.cs
	cs.mu.Lock()
	if cs.in[in.id] != in || in.claimed {
		cs.mu.Unlock()
		return
	}
	delete(cs.in, in.id)
	cs.mu.Unlock()
	in.mu.Lock()
	if in.claimT != nil {
		in.claimT.Stop()
	}
	in.mu.Unlock()
	in.closeWith(fmt.Errorf("%w: %s", ErrClosed, reason))
}

// Reject tells the producer of ref, best effort, that its stream will not
// be read (a reply whose caller is gone).
func (m *Manager) Reject(conn *transport.Conn, ref wire.StreamReference, reason string) {
	id, err := parseID(ref.StreamID)
	if err != nil || conn == nil {
		return
	}
	m.state(conn).sendCancel(id, reason)
}

// Accept opens the stream ref refers to for reading: a stream announced
// by a reply on conn, a stream passed as an argument by a peer, or (conn
// nil) an in-process stream of this Manager. It grants the producer its
// first credit. The Inbound is read through a Reader (NewReader).
func (m *Manager) Accept(conn *transport.Conn, ref wire.StreamReference) (*Inbound, error) {
	id, err := parseID(ref.StreamID)
	if err != nil {
		return nil, err
	}
	cs := m.state(conn)
	cs.mu.Lock()
	if cs.closeErr != nil {
		cs.mu.Unlock()
		return nil, cs.closeErr
	}
	in := cs.in[id]
	switch {
	case in != nil && in.claimed:
		cs.mu.Unlock()
		return nil, fmt.Errorf("%w: stream %d is already open", ErrInvalidReference, id)
	case in == nil && conn == nil:
		cs.mu.Unlock()
		return nil, fmt.Errorf("%w: no local stream %d", ErrInvalidReference, id)
	case in == nil:
		in = newInbound(m, cs, id, ref.Live, conn.Extensions().Has(Extension))
		cs.in[id] = in
	}
	in.claimed = true
	over := cs.claimedIn() > m.cfg.maxStreams
	cs.mu.Unlock()
	if over {
		in.fail(fmt.Errorf("%w: %d streams from %s", ErrTooManyStreams, m.cfg.maxStreams, cs.peerID()), ReasonStreamLimit)
		in.remove()
		return nil, fmt.Errorf("%w: limit %d per peer", ErrTooManyStreams, m.cfg.maxStreams)
	}
	in.claim()
	return in, nil
}

// NewOutbound opens a stream to conn (nil: an in-process stream, read with
// Accept(nil, ref)). The producer writes it through a Writer (NewWriter)
// or a Source run by Start; the consumer learns of it from Reference,
// sent in a reply or as a call argument. live streams have no inactivity
// timeout on the consumer's side.
//
// On a connection that negotiated Extension the stream has flow control:
// nothing is sent before the consumer grants credit.
func (m *Manager) NewOutbound(conn *transport.Conn, live bool) (*Outbound, error) {
	cs := m.state(conn)
	credit := conn == nil || conn.Extensions().Has(Extension)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closeErr != nil {
		return nil, cs.closeErr
	}
	if len(cs.out) >= m.cfg.maxStreams {
		return nil, fmt.Errorf("%w: limit %d per peer", ErrTooManyStreams, m.cfg.maxStreams)
	}
	id := cs.allocID()
	o := newOutbound(m, cs, id, live, credit)
	cs.out[id] = o
	if conn == nil {
		// The consumer end of an in-process stream waits to be accepted.
		in := newInbound(m, cs, id, live, true)
		in.pipe, o.pipe = o, in
		cs.in[id] = in
		in.armClaim()
	}
	return o, nil
}

// Streams returns how many streams conn has open from (in) and to (out)
// the peer.
func (m *Manager) Streams(conn *transport.Conn) (in, out int) {
	cs := m.state(conn)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.in), len(cs.out)
}

// connState is the streams of one connection (conn nil: in-process).
type connState struct {
	m    *Manager
	conn *transport.Conn

	mu       sync.Mutex
	in       map[uint32]*Inbound
	out      map[uint32]*Outbound
	lastID   uint32
	closeErr error

	ctrlMu   sync.Mutex
	ctrl     [][]byte
	ctrlBusy bool
}

func newConnState(m *Manager, conn *transport.Conn) *connState {
	return &connState{m: m, conn: conn, in: make(map[uint32]*Inbound), out: make(map[uint32]*Outbound)}
}

func (cs *connState) peerID() string {
	if cs.conn == nil {
		return "this node"
	}
	return cs.conn.ID()
}

// allocID returns a stream id not in use; cs.mu is held.
func (cs *connState) allocID() uint32 {
	for {
		cs.lastID++
		id := cs.lastID
		if id == 0 {
			continue
		}
		if _, used := cs.out[id]; used {
			continue
		}
		if cs.conn == nil {
			if _, used := cs.in[id]; used {
				continue
			}
		}
		return id
	}
}

func (cs *connState) claimedIn() int {
	n := 0
	for _, in := range cs.in {
		if in.claimed {
			n++
		}
	}
	return n
}

// shutdown ends every stream of the connection with err.
func (cs *connState) shutdown(err error) {
	cs.mu.Lock()
	if cs.closeErr == nil {
		cs.closeErr = err
	}
	ins := make([]*Inbound, 0, len(cs.in))
	for _, in := range cs.in {
		ins = append(ins, in)
	}
	outs := make([]*Outbound, 0, len(cs.out))
	for _, o := range cs.out {
		outs = append(outs, o)
	}
	clear(cs.in)
	clear(cs.out)
	cs.mu.Unlock()
	for _, in := range ins {
		if errors.Is(err, ErrShutdown) {
			in.shutdown()
		} else {
			in.fail(err, "")
		}
		// The peer is gone: an unopened stream's chunks are dropped. An
		// opened one's stay, and stay charged, until its consumer takes
		// them or closes it.
		in.cs.mu.Lock()
		claimed := in.claimed
		in.cs.mu.Unlock()
		if !claimed {
			in.mu.Lock()
			in.dropQueue()
			in.mu.Unlock()
		}
	}
	for _, o := range outs {
		o.abort(err)
	}
}

// maxCtrlQueue bounds the best-effort control packets waiting for the
// writer; credit grants and cancels are never dropped.
const maxCtrlQueue = 256

// sendControl queues a control frame for the connection's writer without
// blocking: one goroutine per connection drains the queue while it is not
// empty. must frames are never dropped; the others are when the queue is
// full.
func (cs *connState) sendControl(frame []byte, must bool) {
	if cs.conn == nil {
		return
	}
	cs.ctrlMu.Lock()
	if !must && len(cs.ctrl) >= maxCtrlQueue {
		cs.ctrlMu.Unlock()
		return
	}
	cs.ctrl = append(cs.ctrl, frame)
	if cs.ctrlBusy {
		cs.ctrlMu.Unlock()
		return
	}
	cs.ctrlBusy = true
	cs.ctrlMu.Unlock()
	if !cs.m.goTracked(cs.drainControl) {
		cs.ctrlMu.Lock()
		cs.ctrl, cs.ctrlBusy = nil, false
		cs.ctrlMu.Unlock()
	}
}

func (cs *connState) drainControl() {
	for {
		cs.ctrlMu.Lock()
		if len(cs.ctrl) == 0 {
			cs.ctrl, cs.ctrlBusy = nil, false
			cs.ctrlMu.Unlock()
			return
		}
		f := cs.ctrl[0]
		cs.ctrl[0] = nil
		cs.ctrl = cs.ctrl[1:]
		cs.ctrlMu.Unlock()
		if err := cs.conn.Send(cs.conn.Context(), f, nil); err != nil {
			cs.ctrlMu.Lock()
			cs.ctrl, cs.ctrlBusy = nil, false
			cs.ctrlMu.Unlock()
			return
		}
	}
}

// sendCancel tells the producer of stream id to stop: EXT cancel with the
// extension, STREAM_CLOSE without (Titan ignores it; Go producers honour
// it).
func (cs *connState) sendCancel(id uint32, reason string) {
	if cs.conn == nil {
		return
	}
	var f []byte
	if cs.conn.Extensions().Has(Extension) {
		f = appendCancel(nil, cs.conn.NextID(), id, reason)
	} else {
		// A plain peer looks STREAM_CLOSE up among the streams it reads
		// (Titan does; it has no consumer cancel): while we produce a
		// stream with the same id, it would take the packet for that
		// stream's end and truncate it. Then nothing is sent, and the
		// peer's producer runs to its end, its chunks dropped here.
		cs.mu.Lock()
		collides := cs.out[id] != nil
		cs.mu.Unlock()
		if collides {
			cs.m.cfg.logger.Debug("netron: consumer cancel not sent: our stream has the same id", "peer", cs.conn.ID(), "stream", id)
			return
		}
		f = appendEnd(nil, cs.conn.NextID(), wire.TypeStreamClose, id, reason)
	}
	cs.sendControl(f, true)
}
