package transport

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/identctx"
	"github.com/netron-go/netron/peer"
)

// Hub owns a node's connections: it accepts them (as an http.Handler, or
// on a listener of its own), dials them, and bridges every one of them to
// the bus.
type Hub struct {
	bus *bus.Bus
	id  string
	cfg config

	requests, responses, streams *bus.Topic[Inbound]
	connected, disconnected      *bus.Topic[ConnEvent]
	outbound                     *bus.Topic[Sent]

	mem *Memory

	// dialClient is the HTTP client Dial upgrades with: its connections
	// are frameWriters (see dialTransport).
	dialClient *http.Client

	mu      sync.Mutex
	conns   map[*Conn]struct{}
	pending int // upgrades in their handshake, counted with conns against maxPeers
	closing bool
	srv     *http.Server
	ln      net.Listener
	wg      sync.WaitGroup

	preUpgrade atomic.Int64 // HTTP connections of Listen's server not upgraded yet
}

// NewHub returns a Hub for the node localID that publishes on b.
func NewHub(b *bus.Bus, localID string, opts ...Option) *Hub {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	return &Hub{
		bus:          b,
		id:           localID,
		cfg:          cfg,
		requests:     bus.NewTopic[Inbound](b, TopicRequests),
		responses:    bus.NewTopic[Inbound](b, TopicResponses),
		streams:      bus.NewTopic[Inbound](b, TopicStreams),
		connected:    bus.NewTopic[ConnEvent](b, TopicConnected),
		disconnected: bus.NewTopic[ConnEvent](b, TopicDisconnected),
		outbound:     bus.NewTopic[Sent](b, TopicOutbound),
		conns:        make(map[*Conn]struct{}),
		mem:          newMemory(cfg.inboundMemory, cfg.readLimit, cfg.maxDecodeMemory),
		dialClient:   &http.Client{Transport: dialTransport(cfg.tlsClient)},
	}
}

// Memory returns the node's bound on the memory held for its peers'
// requests (see WithInboundMemory).
func (h *Hub) Memory() *Memory { return h.mem }

// Pending returns how many connections are not peers yet: upgraded ones
// in their handshake, and HTTP connections of Listen's server not
// upgraded yet.
func (h *Hub) Pending() (handshakes, http int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pending, int(h.preUpgrade.Load())
}

// ID returns the local node id the hub announces in handshakes.
func (h *Hub) ID() string { return h.id }

// Bus returns the bus the hub publishes on.
func (h *Hub) Bus() *bus.Bus { return h.bus }

// Conns returns the open connections.
func (h *Hub) Conns() []*Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*Conn, 0, len(h.conns))
	for c := range h.conns {
		out = append(out, c)
	}
	return out
}

// goTracked runs f in a goroutine the hub waits for on Close.
func (h *Hub) goTracked(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f()
	}()
}

// goTrackedWait runs f in the calling goroutine, counted as a hub
// goroutine; false if the hub is closing.
func (h *Hub) goTrackedWait(f func()) bool {
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		return false
	}
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()
	f()
	return true
}

// add registers c. reserved: c is an accepted upgrade whose place
// ServeHTTP reserved (see reserve); it moves from pending to conns.
func (h *Hub) add(c *Conn, reserved bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return peer.ErrClosed
	}
	if reserved {
		h.pending--
	} else if len(h.conns)+h.pending >= h.cfg.maxPeers {
		return fmt.Errorf("%w: limit %d", peer.ErrTooManyPeers, h.cfg.maxPeers)
	}
	h.conns[c] = struct{}{}
	return nil
}

// reserve takes a place for an upgrade about to start its handshake:
// upgrades in their handshake count against the peer limit, and against
// the bound on pending connections. It returns the HTTP status that
// refuses the upgrade, with the limit (as the refusals metric names it)
// and the message, or 0 when the place is taken.
func (h *Hub) reserve() (status int, limit, msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closing:
		return http.StatusServiceUnavailable, "stopping", "netron: node stopping"
	case len(h.conns)+h.pending >= h.cfg.maxPeers:
		return http.StatusServiceUnavailable, "peers", "netron: too many peers"
	case h.pending >= h.cfg.maxPending:
		return http.StatusServiceUnavailable, "pending", "netron: too many pending handshakes"
	}
	h.pending++
	return 0, "", ""
}

// unreserve gives back the place of an upgrade that did not become a
// connection.
func (h *Hub) unreserve() {
	h.mu.Lock()
	h.pending--
	h.mu.Unlock()
}

func (h *Hub) remove(c *Conn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

// outSeq numbers outbound topics process-wide: hubs may share a bus.
var outSeq atomic.Uint64

func (h *Hub) newConn(ws *websocket.Conn, id, remoteAddr string, serverSide bool, ident *peer.Identity, reserved, compressed bool) (*Conn, error) {
	ws.SetReadLimit(h.cfg.readLimit)
	c := &Conn{
		hub:        h,
		ws:         ws,
		id:         id,
		serverSide: serverSide,
		compressed: compressed,
		remoteAddr: remoteAddr,
		done:       make(chan struct{}),
		outTopic:   bus.NewTopic[Outbound](h.bus, "netron.peer.out."+strconv.FormatUint(outSeq.Add(1), 10)),
	}
	if ident == anonymousIdentity {
		c.anonymous, ident = true, nil
	}
	c.identity.Store(ident)
	c.ctx, c.cancel = context.WithCancel(context.WithValue(context.Background(), identctx.Key{}, c))
	c.relFrame = c.releaseFrame
	unsub, err := c.outTopic.SubscribeFunc(c.enqueue)
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.unsubOut = unsub
	if err := h.add(c, reserved); err != nil {
		unsub()
		c.cancel()
		return nil, err
	}
	h.cfg.obs.ConnOpened(serverSide)
	return c, nil
}

// handshakeMsg is the JSON both sides exchange before the first packet.
type handshakeMsg struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// maxPeerIDLen bounds the node id a peer may announce.
const maxPeerIDLen = 256

// parseHandshake decodes a handshake message ({"type":…,"id":…}) from a
// peer. It reports false for anything else, and for ids that are empty,
// longer than 256 bytes or hold control characters.
func parseHandshake(msg []byte) (handshakeMsg, bool) {
	var hs handshakeMsg
	if len(msg) == 0 || len(msg) > 4096 || msg[0] != '{' || json.Unmarshal(msg, &hs) != nil || hs.Type == "" {
		return handshakeMsg{}, false
	}
	if len(hs.ID) > maxPeerIDLen {
		return handshakeMsg{}, false
	}
	for _, r := range hs.ID {
		if r < 0x20 || r == 0x7f {
			return handshakeMsg{}, false
		}
	}
	return hs, true
}

// GoPeerHeader is the HTTP header with which a Go peer's Dial announces
// itself in the upgrade request: it gets its hello at once (see
// ServeHTTP). A plain Netron peer does not send it.
const GoPeerHeader = "X-Netron-Go"

// ServeHTTP accepts a WebSocket connection from a peer and runs Titan's
// handshake: the peer's id comes from the query (?id=) or the x-netron-id
// header, the server sends {"type":"id","id":<ours>}, and a client may
// answer {"type":"client-id","id":…} in a binary or text frame.
//
// When the hello goes out: a Go peer (GoPeerHeader) and a peer without
// an id (netron-browser, which names itself in its first message) get it
// right after the upgrade. A plain peer with an id (a Titan client) gets
// it once it has answered a WebSocket ping sent right after the upgrade
// (or after a second, if it does not answer): Titan's client attaches its
// handler for the hello only after its connect has resolved, so it loses
// a hello that arrives in the same read as the 101 response, and Titan's
// own server only waits 10 ms for it. A client answers the ping while it
// processes that read; whatever comes after the pong comes in a later
// read, once its handler is attached. It costs such a peer one round trip.
//
// A refused request (401, 400, 426, 503) closes its HTTP connection.
// Upgrades whose handshake has not completed count against the peer
// limit (WithMaxPeers) and WithMaxPending.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A refusal closes the connection; the upgrade replaces the header.
	w.Header().Set("Connection", "close")
	h.mu.Lock()
	closing, full := h.closing, len(h.conns)+h.pending >= h.cfg.maxPeers
	h.mu.Unlock()
	switch {
	case closing:
		h.cfg.obs.Refused(http.StatusServiceUnavailable, "stopping")
		http.Error(w, "netron: node stopping", http.StatusServiceUnavailable)
		return
	case full:
		// Refused before the upgrade; a peer that races past this check
		// is refused at reserve, still before it.
		h.cfg.obs.Refused(http.StatusServiceUnavailable, "peers")
		http.Error(w, "netron: too many peers", http.StatusServiceUnavailable)
		return
	}
	var ident *peer.Identity
	switch {
	case h.cfg.auth != nil:
		id, err := h.cfg.auth.Authenticate(r)
		if err != nil && h.cfg.anonymous && !hasCredentials(r) {
			id, err = anonymousIdentity, nil // see WithAnonymous
		}
		if err != nil {
			h.cfg.logger.Info("netron: rejected unauthenticated peer", "remote", r.RemoteAddr, "err", err)
			h.cfg.obs.AuthRefused()
			http.Error(w, "netron: unauthenticated", http.StatusUnauthorized)
			return
		}
		ident = id
	case r.TLS != nil && len(r.TLS.VerifiedChains) > 0:
		ident = &peer.Identity{Subject: r.TLS.VerifiedChains[0][0].Subject.CommonName, Method: "tls"}
	}
	// The id is checked before the upgrade: afterwards http.Error writes
	// nothing, and the upgraded connection would be left open.
	id := r.URL.Query().Get("id")
	if id == "" {
		id = r.Header.Get("x-netron-id")
	}
	if _, ok := parseHandshake([]byte(`{"type":"q","id":` + strconv.Quote(id) + `}`)); !ok && id != "" {
		http.Error(w, "netron: invalid node id", http.StatusBadRequest)
		return
	}
	if !isUpgrade(r) {
		// Answered here: coder/websocket's own 426 keeps the
		// connection open (net/http closes after a reply only when its
		// Connection header is exactly "close").
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "netron: a WebSocket upgrade is required", http.StatusUpgradeRequired)
		return
	}
	if status, limit, msg := h.reserve(); status != 0 {
		h.cfg.obs.Refused(status, limit)
		http.Error(w, msg, status)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		InsecureSkipVerify:   true,
		CompressionMode:      h.cfg.compression,
		CompressionThreshold: h.cfg.compressThreshold,
	})
	if err != nil {
		h.unreserve()
		h.cfg.logger.Debug("netron: websocket accept failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	when := helloNow
	if id != "" && r.Header.Get(GoPeerHeader) == "" {
		when = helloAfterPong
	}
	if err := h.accept(ws, id, r.RemoteAddr, ident, when, negotiatedDeflate(w.Header())); err != nil {
		h.cfg.obs.HandshakeFailed(true)
		h.cfg.logger.Info("netron: rejected peer", "remote", r.RemoteAddr, "err", err)
	}
}

// negotiatedDeflate reports whether the headers of a 101 response agree on
// permessage-deflate (coder/websocket has checked them by then).
func negotiatedDeflate(h http.Header) bool {
	return strings.HasPrefix(strings.TrimSpace(h.Get("Sec-WebSocket-Extensions")), "permessage-deflate")
}

// isUpgrade reports whether r asks for a WebSocket upgrade.
func isUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// When the server sends its hello (see ServeHTTP).
const (
	helloNow = iota
	helloAfterPong
)

// maxHello bounds the first message of a peer that dialled without an id
// that is taken for its client-id: a larger one is a packet.
const maxHello = 4 << 10

// readFirst reads the first message of a peer that dialled without an id,
// charged to the node's inbound memory: held is what it holds. One that
// does not fit closes the connection (1013).
func (h *Hub) readFirst(ctx context.Context, ws *websocket.Conn) (frame []byte, held int64, err error) {
	typ, r, err := ws.Reader(ctx)
	if err != nil {
		ws.CloseNow()
		return nil, 0, fmt.Errorf("%w: no first message: %w", peer.ErrHandshake, err)
	}
	m, err := readMessage(r, h.cfg.readLimit, h.mem, noFreeBytes, 0)
	switch {
	case err != nil:
		ws.CloseNow()
		return nil, 0, fmt.Errorf("%w: first message: %w", peer.ErrHandshake, err)
	case m.refused:
		ws.Close(websocket.StatusTryAgainLater, "node out of memory for inbound messages")
		return nil, 0, fmt.Errorf("%w: a first message of %d bytes does not fit the node's inbound memory", peer.ErrHandshake, m.size)
	case typ == websocket.MessageText && !utf8.Valid(m.frame):
		h.mem.Release(m.held)
		ws.Close(websocket.StatusInvalidFramePayloadData, "text frame is not valid UTF-8")
		return nil, 0, fmt.Errorf("%w: %w: a text frame that is not valid UTF-8", peer.ErrHandshake, peer.ErrProtocol)
	}
	return m.frame, m.held, nil
}

// noFreeBytes: every byte of the message is charged.
func noFreeBytes([]byte) int64 { return 0 }

// helloPongWait bounds the wait for the pong before the hello of a plain
// peer: a client that does not answer pings gets its hello anyway.
const helloPongWait = time.Second

// accept runs the server side of the handshake of an upgrade whose place
// reserve took.
func (h *Hub) accept(ws *websocket.Conn, id, remoteAddr string, ident *peer.Identity, when int, compressed bool) (err error) {
	reserved := true
	defer func() {
		if reserved {
			h.unreserve()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.handshakeTimeout)
	defer cancel()
	hello, _ := json.Marshal(handshakeMsg{Type: "id", ID: h.id})
	if when == helloNow {
		if err := ws.Write(ctx, websocket.MessageBinary, hello); err != nil {
			ws.CloseNow()
			return fmt.Errorf("%w: %w", peer.ErrHandshake, err)
		}
	}
	var first []byte
	var firstHeld int64
	if id == "" {
		// No id in the request: the client must name itself in its first
		// message (netron-browser does); if that message is a packet
		// instead (the old package), the peer gets a generated id. That
		// message may be as large as any other, and is charged to the
		// node's inbound memory the same way (the connection's share does
		// not exist yet); a client-id is at most maxHello.
		ws.SetReadLimit(h.cfg.readLimit)
		first, firstHeld, err = h.readFirst(ctx, ws)
		if err != nil {
			return err
		}
		if len(first) <= maxHello {
			if hs, ok := parseHandshake(first); ok && hs.Type == "client-id" && hs.ID != "" {
				id = hs.ID
				h.mem.Release(firstHeld)
				first, firstHeld = nil, 0
			}
		}
		if id == "" {
			id = uuid.NewString()
		}
	}
	c, err := h.newConn(ws, id, remoteAddr, true, ident, true, compressed)
	if err != nil {
		h.mem.Release(firstHeld)
		status := websocket.StatusTryAgainLater
		ws.Close(status, err.Error())
		return err
	}
	reserved = false
	if !c.start(first, firstHeld) {
		return c.Err()
	}
	if when == helloAfterPong && !c.helloAfterPong(hello) {
		return c.Err()
	}
	h.cfg.logger.Debug("netron: peer connected", "peer", id, "remote", remoteAddr)
	_ = h.connected.Publish(context.Background(), ConnEvent{Conn: c, PeerID: id})
	return nil
}

// DialOption configures one Dial.
type DialOption func(*dialOptions)

type dialOptions struct {
	init []func(*Conn)
}

// BeforeStart runs fn on the dialled connection before its reader starts
// and before it is announced on TopicConnected: the place to attach
// per-connection state (Conn.LoadOrStoreValue) that the handlers of that
// announcement, or of the first packets, rely on.
func BeforeStart(fn func(*Conn)) DialOption {
	return func(o *dialOptions) { o.init = append(o.init, fn) }
}

// Dial connects to a Netron node at a ws:// or wss:// URL and runs the
// handshake. ctx bounds the dial and the handshake only.
func (h *Hub) Dial(ctx context.Context, rawURL string, dialOpts ...DialOption) (*Conn, error) {
	var do dialOptions
	for _, o := range dialOpts {
		o(&do)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("peer: dial %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("peer: dial %q: unsupported scheme %q", rawURL, u.Scheme)
	}
	q := u.Query()
	q.Set("id", h.id)
	u.RawQuery = q.Encode()
	if u.Path == "" {
		u.Path = "/"
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.handshakeTimeout)
	defer cancel()
	hdr := http.Header{}
	hdr.Set("x-netron-id", h.id)
	hdr.Set(GoPeerHeader, "1")
	if h.cfg.token != "" {
		hdr.Set("Authorization", "Bearer "+h.cfg.token)
	}
	opts := &websocket.DialOptions{
		HTTPHeader:           hdr,
		HTTPClient:           h.dialClient,
		CompressionMode:      h.cfg.compression,
		CompressionThreshold: h.cfg.compressThreshold,
	}
	slot := &dialSlot{secure: u.Scheme == "wss"}
	ws, resp, err := websocket.Dial(context.WithValue(ctx, dialSlotKey{}, slot), u.String(), opts)
	if err != nil {
		if resp != nil {
			// The node answered and refused the upgrade: a failed
			// handshake, where a node that cannot be reached is not.
			h.cfg.obs.HandshakeFailed(false)
		}
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			return nil, fmt.Errorf("%w: dial %s: the server rejected our credentials", peer.ErrUnauthenticated, rawURL)
		}
		return nil, fmt.Errorf("peer: dial %s: %w", rawURL, err)
	}
	if slot.w != nil {
		slot.w.start() // frames from now on (see frameWriter)
	}
	ws.SetReadLimit(h.cfg.readLimit)
	c, err := h.dialHandshake(ctx, ws, u.Host, rawURL, negotiatedDeflate(resp.Header))
	if err != nil {
		h.cfg.obs.HandshakeFailed(false)
		return nil, err
	}
	for _, fn := range do.init {
		fn(c)
	}
	if !c.start(nil, 0) {
		return nil, c.Err()
	}
	h.cfg.logger.Debug("netron: connected to peer", "peer", c.ID(), "url", rawURL)
	_ = h.connected.Publish(context.Background(), ConnEvent{Conn: c, PeerID: c.ID()})
	return c, nil
}

// dialHandshake runs the dialling side's exchange of ids on ws
// (compressed: the upgrade agreed on permessage-deflate).
func (h *Hub) dialHandshake(ctx context.Context, ws *websocket.Conn, host, rawURL string, compressed bool) (*Conn, error) {
	typ, msg, err := ws.Read(ctx)
	if err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("%w: %s: %w", peer.ErrHandshake, rawURL, err)
	}
	if typ == websocket.MessageText && !utf8.Valid(msg) {
		ws.Close(websocket.StatusInvalidFramePayloadData, "text frame is not valid UTF-8")
		return nil, fmt.Errorf("%w: %s: %w: a text frame that is not valid UTF-8", peer.ErrHandshake, rawURL, peer.ErrProtocol)
	}
	hs, ok := parseHandshake(msg)
	if !ok || hs.Type != "id" || hs.ID == "" {
		ws.Close(websocket.StatusProtocolError, "expected id handshake")
		return nil, fmt.Errorf("%w: %s: expected {\"type\":\"id\"}, got %.64q", peer.ErrHandshake, rawURL, msg)
	}
	answer, _ := json.Marshal(handshakeMsg{Type: "client-id", ID: h.id})
	if err := ws.Write(ctx, websocket.MessageBinary, answer); err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("%w: %s: %w", peer.ErrHandshake, rawURL, err)
	}
	c, err := h.newConn(ws, hs.ID, host, false, nil, false, compressed)
	if err != nil {
		ws.Close(websocket.StatusNormalClosure, "")
		return nil, err
	}
	return c, nil
}

// Listen serves the hub on its own HTTP server at addr ("host:port"; port
// 0 picks a free port) and returns the bound address. It fails when it
// cannot bind.
func (h *Hub) Listen(addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("peer: listen %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: h.cfg.readHeaderTimeout,
		IdleTimeout:       h.cfg.idleTimeout,
		ConnState:         h.connState,
		ErrorLog:          slog.NewLogLogger(h.cfg.logger.Handler(), slog.LevelDebug),
	}
	h.mu.Lock()
	if h.closing || h.srv != nil {
		h.mu.Unlock()
		ln.Close()
		if h.closing {
			return nil, peer.ErrClosed
		}
		return nil, errors.New("peer: hub already listening")
	}
	h.srv, h.ln = srv, ln
	h.wg.Add(1)
	h.mu.Unlock()
	if h.cfg.tlsServer != nil {
		srv.TLSConfig = h.cfg.tlsServer
		ln = tls.NewListener(ln, h.cfg.tlsServer)
	}
	go func() {
		defer h.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.cfg.logger.Error("netron: server stopped", "err", err)
		}
	}()
	return ln.Addr(), nil
}

// connState counts the HTTP connections of Listen's server that are not
// upgraded yet, and closes one accepted beyond WithMaxPending: a flood of
// connections that never send a request, or stay idle after one, cannot
// hold more descriptors and goroutines than that (each for at most the
// read-header timeout, or the idle timeout after a request).
func (h *Hub) connState(c net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		if h.preUpgrade.Add(1) > int64(h.cfg.maxPending) {
			h.cfg.logger.Debug("netron: too many pending connections, closing one", "remote", c.RemoteAddr())
			c.Close()
		}
	case http.StateHijacked, http.StateClosed:
		h.preUpgrade.Add(-1)
	}
}

// Addr returns the address Listen bound, or nil.
func (h *Hub) Addr() net.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ln == nil {
		return nil
	}
	return h.ln.Addr()
}

// StopAccepting closes the listener; open connections stay.
func (h *Hub) StopAccepting(ctx context.Context) error {
	h.mu.Lock()
	srv := h.srv
	h.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}

// Close stops accepting, closes every connection (their pending operations
// fail with peer.ErrDisconnected) and waits for every goroutine the hub owns.
// It is idempotent.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		h.wg.Wait()
		return nil
	}
	h.closing = true
	srv := h.srv
	conns := make([]*Conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = srv.Shutdown(ctx)
		cancel()
		_ = srv.Close()
	}
	for _, c := range conns {
		c.shutdown(errors.New("node stopping"), websocket.StatusGoingAway, "node stopping")
	}
	h.wg.Wait()
	return nil
}
