package peer

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
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/netron-go/netron/bus"
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

	mu      sync.Mutex
	conns   map[*Conn]struct{}
	closing bool
	srv     *http.Server
	ln      net.Listener
	wg      sync.WaitGroup
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
		conns:        make(map[*Conn]struct{}),
	}
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

func (h *Hub) add(c *Conn) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return ErrClosed
	}
	if len(h.conns) >= h.cfg.maxPeers {
		return fmt.Errorf("%w: limit %d", ErrTooManyPeers, h.cfg.maxPeers)
	}
	h.conns[c] = struct{}{}
	return nil
}

func (h *Hub) remove(c *Conn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

// outSeq numbers outbound topics process-wide: hubs may share a bus.
var outSeq atomic.Uint64

func (h *Hub) newConn(ws *websocket.Conn, id, remoteAddr string, serverSide bool, ident *Identity) (*Conn, error) {
	ws.SetReadLimit(h.cfg.readLimit)
	c := &Conn{
		hub:        h,
		ws:         ws,
		id:         id,
		serverSide: serverSide,
		remoteAddr: remoteAddr,
		done:       make(chan struct{}),
		outTopic:   bus.NewTopic[Outbound](h.bus, "netron.peer.out."+strconv.FormatUint(outSeq.Add(1), 10)),
	}
	ctx := context.Background()
	if ident != nil {
		ctx = context.WithValue(ctx, identityKey{}, ident)
		c.identity = ident
	}
	c.ctx, c.cancel = context.WithCancel(ctx)
	unsub, err := c.outTopic.SubscribeFunc(c.enqueue)
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.unsubOut = unsub
	if err := h.add(c); err != nil {
		unsub()
		c.cancel()
		return nil, err
	}
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

// ServeHTTP accepts a WebSocket connection from a peer and runs Titan's
// handshake: the peer's id comes from the query (?id=) or the x-netron-id
// header, the server sends {"type":"id","id":<ours>}, and a client may
// answer {"type":"client-id","id":…} in a binary or text frame.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	closing, full := h.closing, len(h.conns) >= h.cfg.maxPeers
	h.mu.Unlock()
	switch {
	case closing:
		http.Error(w, "netron: node stopping", http.StatusServiceUnavailable)
		return
	case full:
		// Refused before the upgrade; a peer that races past this check
		// is refused after the hello (close status 1013).
		http.Error(w, "netron: too many peers", http.StatusServiceUnavailable)
		return
	}
	var ident *Identity
	switch {
	case h.cfg.auth != nil:
		id, err := h.cfg.auth.Authenticate(r)
		if err != nil {
			h.cfg.logger.Info("netron: rejected unauthenticated peer", "remote", r.RemoteAddr, "err", err)
			http.Error(w, "netron: unauthenticated", http.StatusUnauthorized)
			return
		}
		ident = id
	case r.TLS != nil && len(r.TLS.VerifiedChains) > 0:
		ident = &Identity{Subject: r.TLS.VerifiedChains[0][0].Subject.CommonName, Method: "tls"}
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
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		h.cfg.logger.Debug("netron: websocket accept failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	if err := h.accept(ws, id, r.RemoteAddr, ident); err != nil {
		h.cfg.logger.Info("netron: rejected peer", "remote", r.RemoteAddr, "err", err)
	}
}

func (h *Hub) accept(ws *websocket.Conn, id, remoteAddr string, ident *Identity) error {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.handshakeTimeout)
	defer cancel()
	hello, _ := json.Marshal(handshakeMsg{Type: "id", ID: h.id})
	if err := ws.Write(ctx, websocket.MessageBinary, hello); err != nil {
		ws.CloseNow()
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	var first []byte
	if id == "" {
		// No id in the request: the client must name itself in its first
		// message (netron-browser does); if that message is a packet
		// instead, the peer gets a generated id.
		ws.SetReadLimit(h.cfg.readLimit)
		_, msg, err := ws.Read(ctx)
		if err != nil {
			ws.CloseNow()
			return fmt.Errorf("%w: no first message: %w", ErrHandshake, err)
		}
		if hs, ok := parseHandshake(msg); ok && hs.Type == "client-id" && hs.ID != "" {
			id = hs.ID
		} else {
			id = uuid.NewString()
			first = msg
		}
	}
	c, err := h.newConn(ws, id, remoteAddr, true, ident)
	if err != nil {
		status := websocket.StatusTryAgainLater
		ws.Close(status, err.Error())
		return err
	}
	if !c.start(first) {
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
	if h.cfg.token != "" {
		hdr.Set("Authorization", "Bearer "+h.cfg.token)
	}
	opts := &websocket.DialOptions{HTTPHeader: hdr}
	if h.cfg.tlsClient != nil {
		opts.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: h.cfg.tlsClient}}
	}
	ws, resp, err := websocket.Dial(ctx, u.String(), opts)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			return nil, fmt.Errorf("%w: dial %s: the server rejected our credentials", ErrUnauthenticated, rawURL)
		}
		return nil, fmt.Errorf("peer: dial %s: %w", rawURL, err)
	}
	ws.SetReadLimit(h.cfg.readLimit)
	_, msg, err := ws.Read(ctx)
	if err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("%w: %s: %w", ErrHandshake, rawURL, err)
	}
	hs, ok := parseHandshake(msg)
	if !ok || hs.Type != "id" || hs.ID == "" {
		ws.Close(websocket.StatusProtocolError, "expected id handshake")
		return nil, fmt.Errorf("%w: %s: expected {\"type\":\"id\"}, got %.64q", ErrHandshake, rawURL, msg)
	}
	answer, _ := json.Marshal(handshakeMsg{Type: "client-id", ID: h.id})
	if err := ws.Write(ctx, websocket.MessageBinary, answer); err != nil {
		ws.CloseNow()
		return nil, fmt.Errorf("%w: %s: %w", ErrHandshake, rawURL, err)
	}
	c, err := h.newConn(ws, hs.ID, u.Host, false, nil)
	if err != nil {
		ws.Close(websocket.StatusNormalClosure, "")
		return nil, err
	}
	for _, fn := range do.init {
		fn(c)
	}
	if !c.start(nil) {
		return nil, c.Err()
	}
	h.cfg.logger.Debug("netron: connected to peer", "peer", hs.ID, "url", rawURL)
	_ = h.connected.Publish(context.Background(), ConnEvent{Conn: c, PeerID: hs.ID})
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
		ReadHeaderTimeout: h.cfg.handshakeTimeout,
		ErrorLog:          slog.NewLogLogger(h.cfg.logger.Handler(), slog.LevelDebug),
	}
	h.mu.Lock()
	if h.closing || h.srv != nil {
		h.mu.Unlock()
		ln.Close()
		if h.closing {
			return nil, ErrClosed
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
// fail with ErrDisconnected) and waits for every goroutine the hub owns.
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
