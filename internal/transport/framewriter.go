package transport

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// frameWriter is the net.Conn a dialled connection hands coder/websocket.
// A client masks what it sends, and coder/websocket masks through the
// 4 KiB buffer of its bufio.Writer, flushing it whenever it is full: a
// 64 KiB message left in sixteen write system calls. Once the handshake
// is over (start), frameWriter follows the WebSocket frames in what is
// written and holds the bytes of a frame until the frame is complete (or
// maxHeld bytes are held), then writes them in one call. A write that
// brings only whole frames and finds nothing held goes straight through,
// without a copy: small messages cost what they did.
//
// coder/websocket writes each frame with all of its payload before it
// writes another (under its own lock), so a frame that is begun is always
// finished by later writes: nothing is held for longer than that.
type frameWriter struct {
	net.Conn
	framing atomic.Bool // set once the handshake is done (start)

	// Under coder/websocket's write lock: one writer at a time.
	held  []byte // bytes of frames not yet complete (in *heldp, from heldPool)
	heldp *[]byte
	hdr   [14]byte // the header of the frame being parsed, as it arrives
	hdrN  int      // bytes of hdr received; 0 between frames
	rest  uint64   // payload bytes of the current frame still to come
}

// maxHeld bounds what a frameWriter holds: a larger frame, or a batch of
// frames, is written in parts of about this size.
const maxHeld = 256 << 10

var heldPool = sync.Pool{New: func() any { b := make([]byte, 0, maxHeld); return &b }}

// start turns frame tracking on: what is written from now on is frames.
func (w *frameWriter) start() { w.framing.Store(true) }

func (w *frameWriter) Write(p []byte) (int, error) {
	if !w.framing.Load() {
		return w.Conn.Write(p)
	}
	n := len(p)
	if end := w.scan(p); end > 0 {
		// Whole frames end at end: out with what was held before them.
		var err error
		switch {
		case w.held == nil:
			_, err = w.Conn.Write(p[:end])
		case len(w.held)+end <= cap(w.held):
			w.held = append(w.held, p[:end]...)
			err = w.flush()
		default:
			if err = w.flush(); err == nil {
				_, err = w.Conn.Write(p[:end])
			}
		}
		if err != nil {
			return 0, err
		}
		p = p[end:]
	}
	if len(p) == 0 {
		return n, nil
	}
	// p begins a frame that later writes complete.
	if w.held != nil && len(w.held)+len(p) > cap(w.held) {
		if err := w.flush(); err != nil {
			return 0, err
		}
	}
	if w.held == nil {
		if len(p) >= maxHeld {
			if _, err := w.Conn.Write(p); err != nil {
				return 0, err
			}
			return n, nil
		}
		w.heldp = heldPool.Get().(*[]byte)
		w.held = (*w.heldp)[:0]
	}
	w.held = append(w.held, p...)
	return n, nil
}

// flush writes what is held and gives the buffer back.
func (w *frameWriter) flush() error {
	_, err := w.Conn.Write(w.held)
	*w.heldp = w.held[:0]
	heldPool.Put(w.heldp)
	w.held, w.heldp = nil, nil
	return err
}

// scan follows the frames in p and returns how many bytes of p there are
// up to the end of the last frame that ends in p (0: none does).
func (w *frameWriter) scan(p []byte) (end int) {
	off := 0
	for off < len(p) {
		if w.hdrN > 0 || w.rest == 0 {
			// In a header: take what is needed of it.
			need := 2
			if w.hdrN >= 2 {
				need = frameHeaderLen(w.hdr[1])
			}
			k := copy(w.hdr[w.hdrN:need], p[off:])
			w.hdrN += k
			off += k
			if w.hdrN < need || need == 2 && frameHeaderLen(w.hdr[1]) > 2 {
				continue // more of the header to come
			}
			w.rest = framePayloadLen(w.hdr[:w.hdrN])
			w.hdrN = 0
		} else {
			k := min(uint64(len(p)-off), w.rest)
			w.rest -= k
			off += int(k)
		}
		if w.rest == 0 {
			end = off // a frame ends here
		}
	}
	return end
}

// frameHeaderLen is the length of a frame header whose second byte is b1
// (RFC 6455 §5.2).
func frameHeaderLen(b1 byte) int {
	n := 2
	switch b1 & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4 // the masking key
	}
	return n
}

// framePayloadLen is the payload length of the complete header h.
func framePayloadLen(h []byte) uint64 {
	switch n := h[1] & 0x7f; n {
	case 126:
		return uint64(binary.BigEndian.Uint16(h[2:4]))
	case 127:
		return binary.BigEndian.Uint64(h[2:10])
	default:
		return uint64(n)
	}
}

// dialSlot carries the frameWriter of a Dial from the HTTP transport's
// dial back to Dial, which starts it once the handshake is over. secure:
// the URL is wss://, so a connection from DialContext is a proxy's tunnel
// that TLS runs over, not frames, and is not wrapped.
type dialSlot struct {
	w      *frameWriter
	secure bool
}

type dialSlotKey struct{}

// dialTransport returns the HTTP transport Dial upgrades through: its
// connections are frameWriters (over TLS for wss://, with tlsCfg), handed
// back through the dialSlot in the request's context. Keep-alive is off:
// a refused upgrade closes its connection instead of leaving it idle.
func dialTransport(tlsCfg *tls.Config) *http.Transport {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	wrap := func(ctx context.Context, c net.Conn, tunnel bool) net.Conn {
		s, ok := ctx.Value(dialSlotKey{}).(*dialSlot)
		if !ok || tunnel && s.secure {
			return c
		}
		s.w = &frameWriter{Conn: c}
		return s.w
	}
	t := &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return wrap(ctx, c, true), nil
		},
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			cfg := &tls.Config{}
			if tlsCfg != nil {
				cfg = tlsCfg.Clone()
			}
			if cfg.ServerName == "" {
				host, _, err := net.SplitHostPort(addr)
				if err != nil {
					host = addr
				}
				cfg.ServerName = host
			}
			if len(cfg.NextProtos) == 0 {
				cfg.NextProtos = []string{"http/1.1"}
			}
			tc := tls.Client(c, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, err
			}
			return wrap(ctx, tc, false), nil
		},
	}
	if tlsCfg == nil {
		// As before this transport: the default client's proxy from
		// the environment; with WithDialTLS, none.
		t.Proxy = http.ProxyFromEnvironment
	}
	return t
}
