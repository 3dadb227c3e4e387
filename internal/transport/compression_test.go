package transport_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/peer"
)

// countingListener counts the bytes its connections read and write: the
// bytes on the wire, WebSocket framing included.
type countingListener struct {
	net.Listener
	read, written atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, l: l}, nil
}

type countingConn struct {
	net.Conn
	l *countingListener
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.l.read.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.l.written.Add(int64(n))
	return n, err
}

// serveCounting serves h on loopback through a countingListener.
func serveCounting(t *testing.T, h *transport.Hub) (string, *countingListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	ts := httptest.NewUnstartedServer(h)
	ts.Listener = cl
	ts.Start()
	t.Cleanup(ts.Close)
	return "ws://" + ln.Addr().String(), cl
}

// jsonRecords is a compressible payload: a JSON-like list of n records.
func jsonRecords(n int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"user-%d","email":"user%d@example.com","active":%t,"score":%d.%d,"tags":["alpha","beta"]}`,
			i, i, i, i%3 == 0, i*37%1000, i%10)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// callPacket is a CALL request holding payload as a msgpack bin.
func callPacket(id uint32, payload []byte) []byte {
	frame := wire.AppendHeader(nil, id, wire.Flags(wire.TypeCall, true, 0))
	frame = append(frame, 0xc6)
	frame = binary.BigEndian.AppendUint32(frame, uint32(len(payload)))
	return append(frame, payload...)
}

// Compression is negotiated per connection: only when both sides enable
// it are messages deflated; a side without it sees a plain connection
// either way. The bytes on the wire show which it was, in both directions.
func TestCompressionNegotiation(t *testing.T) {
	payload := jsonRecords(400) // ~40 KiB
	for _, tc := range []struct {
		name           string
		server, client bool
	}{
		{"both", true, true},
		{"server only", true, false},
		{"client only", false, true},
		{"neither", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sopts, copts []transport.Option
			if tc.server {
				sopts = append(sopts, transport.WithCompression(0))
			}
			if tc.client {
				copts = append(copts, transport.WithCompression(0))
			}
			server := newHub(t, "server", sopts...)
			client := newHub(t, "client", copts...)
			url, wireBytes := serveCounting(t, server)
			sConnected := events(t, server, transport.TopicConnected)
			sReqs := requests(t, server)
			cReqs := requests(t, client)
			ctx := context.Background()
			c, err := client.Dial(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			sc := next(t, sConnected.C()).Conn
			want := tc.server && tc.client
			if c.Compressed() != want || sc.Compressed() != want {
				t.Fatalf("compressed: client side %v, server side %v, want %v", c.Compressed(), sc.Compressed(), want)
			}

			// Client → server.
			before := wireBytes.read.Load()
			if err := c.Send(ctx, callPacket(1, payload), nil); err != nil {
				t.Fatal(err)
			}
			in := next(t, sReqs)
			if !bytes.Equal(in.Packet.Data[5:], payload) {
				t.Fatal("the server got other bytes than were sent")
			}
			up := wireBytes.read.Load() - before

			// Server → client.
			before = wireBytes.written.Load()
			if err := sc.Send(ctx, callPacket(2, payload), nil); err != nil {
				t.Fatal(err)
			}
			in = next(t, cReqs)
			if !bytes.Equal(in.Packet.Data[5:], payload) {
				t.Fatal("the client got other bytes than were sent")
			}
			down := wireBytes.written.Load() - before

			t.Logf("%d B payload: %d B on the wire up, %d B down", len(payload), up, down)
			for dir, n := range map[string]int64{"client → server": up, "server → client": down} {
				switch {
				case want && n > int64(len(payload))/4:
					t.Errorf("%s: %d B on the wire for %d B of JSON, want it deflated (< 1/4)", dir, n, len(payload))
				case !want && n < int64(len(payload)):
					t.Errorf("%s: %d B on the wire for %d B, want it sent as it is", dir, n, len(payload))
				}
			}
		})
	}
}

// Messages below the threshold are sent as they are on a compressed
// connection, larger ones deflated.
func TestCompressionThreshold(t *testing.T) {
	server := newHub(t, "server", transport.WithCompression(4096))
	client := newHub(t, "client", transport.WithCompression(4096))
	url, wireBytes := serveCounting(t, server)
	sReqs := requests(t, server)
	ctx := context.Background()
	c, err := client.Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{4000, 8000} {
		payload := bytes.Repeat([]byte("a"), size)
		before := wireBytes.read.Load()
		if err := c.Send(ctx, callPacket(uint32(size), payload), nil); err != nil {
			t.Fatal(err)
		}
		if in := next(t, sReqs); !bytes.Equal(in.Packet.Data[5:], payload) {
			t.Fatal("other bytes than were sent")
		}
		n := wireBytes.read.Load() - before
		if compressed := n < int64(size)/4; compressed != (size >= 4096) {
			t.Errorf("%d B: %d B on the wire (threshold 4096)", size, n)
		}
	}
}

// requests returns the Inbound requests a hub publishes.
func requests(t *testing.T, h *transport.Hub) <-chan transport.Inbound {
	t.Helper()
	s, err := bus.Subscribe[transport.Inbound](h.Bus(), transport.TopicRequests, bus.WithBuffer(16))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.C()
}

// A client that offers permessage-deflate as Node's ws library does
// ("permessage-deflate; client_max_window_bits", no context takeover
// parameters) gets it from a hub with compression and not from one
// without; its deflated frames (RSV1) are read, and the hub's answers are
// deflated only on the connection that negotiated it. A client that does
// not offer it gets plain frames from a hub with compression.
func TestCompressionWithWsLikeClient(t *testing.T) {
	for _, tc := range []struct {
		name          string
		hub, offer    bool
		wantNegotiate bool
	}{
		{"hub on, client offers", true, true, true},
		{"hub on, client does not offer", true, false, false},
		{"hub off, client offers", false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []transport.Option
			if tc.hub {
				opts = append(opts, transport.WithCompression(64))
			}
			url := serve(t, newHub(t, "server", opts...))
			addr := tcpAddr(url)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			req := "GET /?id=ws-like HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + transport.GoPeerHeader + ": 1\r\n"
			if tc.offer {
				req += "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
			}
			if _, err := io.WriteString(c, req+"\r\n"); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			ext := resp.Header.Get("Sec-WebSocket-Extensions")
			if resp.StatusCode != http.StatusSwitchingProtocols || strings.HasPrefix(ext, "permessage-deflate") != tc.wantNegotiate {
				t.Fatalf("response %d, extensions %q; want deflate negotiated: %v", resp.StatusCode, ext, tc.wantNegotiate)
			}
			if tc.wantNegotiate && !strings.Contains(ext, "server_no_context_takeover") {
				t.Fatalf("extensions %q: the hub deflates each message on its own and must say so", ext)
			}
			hello, deflated, err := readMessageFrame(br)
			if err != nil || !bytes.HasPrefix(hello, []byte(`{"type":"id","id":"server"}`)) || deflated {
				t.Fatalf("hello %q (deflated %v, below the threshold) %v", hello, deflated, err)
			}
			// A PING holding 2 KiB of text: above the threshold both ways.
			text := bytes.Repeat([]byte("netron "), 300)
			ping := wire.AppendHeader(nil, 7, wire.Flags(wire.TypePing, true, 0))
			ping = append(ping, 0xda, byte(len(text)>>8), byte(len(text)))
			ping = append(ping, text...)
			if err := writeMessageFrame(c, ping, tc.wantNegotiate); err != nil {
				t.Fatal(err)
			}
			pong, deflated, err := readMessageFrame(br)
			if err != nil {
				t.Fatal(err)
			}
			if deflated != tc.wantNegotiate {
				t.Fatalf("answer deflated %v, want %v", deflated, tc.wantNegotiate)
			}
			if want := append([]byte{0, 0, 0, 7, 0x00}, ping[5:]...); !bytes.Equal(pong, want) {
				t.Fatalf("answer %d B %.16x…, want the PING's data echoed", len(pong), pong)
			}
		})
	}
}

// readMessageFrame reads one unmasked final data frame, inflating it when
// its RSV1 bit says it is deflated (RFC 7692 §7.2.2).
func readMessageFrame(r io.Reader) (payload []byte, deflated bool, err error) {
	for {
		var h [2]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return nil, false, err
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(r, b[:]); err != nil {
				return nil, false, err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(r, b[:]); err != nil {
				return nil, false, err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		if h[0]&0x80 == 0 || n > 1<<20 {
			return nil, false, errors.New("fragmented or oversized frame")
		}
		payload = make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return nil, false, err
		}
		if op := h[0] & 0x0f; op >= 0x8 {
			continue // a ping or pong (none is expected to matter here)
		}
		if h[0]&0x40 == 0 {
			return payload, false, nil
		}
		fr := flate.NewReader(io.MultiReader(bytes.NewReader(payload), strings.NewReader("\x00\x00\xff\xff")))
		out, err := io.ReadAll(fr)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = nil // the message ends at the sync flush, without a final block
		}
		return out, true, err
	}
}

// writeMessageFrame writes one masked final binary frame, deflated (RSV1)
// when deflate is set, as a client without context takeover does.
func writeMessageFrame(w io.Writer, payload []byte, deflate bool) error {
	op := byte(0x82)
	if deflate {
		var b bytes.Buffer
		fw, _ := flate.NewWriter(&b, flate.BestSpeed)
		fw.Write(payload)
		fw.Flush()
		payload = bytes.TrimSuffix(b.Bytes(), []byte("\x00\x00\xff\xff"))
		op |= 0x40
	}
	var buf bytes.Buffer
	if err := writeFrame(&buf, 0, payload); err != nil {
		return err
	}
	frame := buf.Bytes()
	frame[0] = op
	_, err := w.Write(frame)
	return err
}

// The read limit applies to the inflated message: a few KiB that inflate
// past it close the connection with 1009, as the same message sent plain
// would.
func TestCompressedMessageOverLimit(t *testing.T) {
	server := newHub(t, "server", transport.WithReadLimit(64<<10), transport.WithCompression(0))
	url := serve(t, server)
	disc := events(t, server, transport.TopicDisconnected)
	ctx := context.Background()
	ws, resp, err := websocket.Dial(ctx, url+"/?id=bomb", &websocket.DialOptions{CompressionMode: websocket.CompressionNoContextTakeover})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if !strings.HasPrefix(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		t.Fatalf("extensions %q, want deflate", resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	if _, _, err := ws.Read(ctx); err != nil { // the hello
		t.Fatal(err)
	}
	bomb := wire.AppendBin(wire.AppendHeader(nil, 1, wire.Flags(wire.TypeCall, true, 0)), make([]byte, 4<<20))
	if err := ws.Write(ctx, websocket.MessageBinary, bomb); err != nil {
		t.Fatal(err)
	}
	ev := next(t, disc.C())
	if !errors.Is(ev.Err, peer.ErrProtocol) {
		t.Fatalf("disconnected with %v, want peer.ErrProtocol", ev.Err)
	}
	if _, _, err := ws.Read(ctx); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("peer saw %v, want close status 1009", err)
	}
	if used := server.Memory().Used(); used != 0 {
		t.Fatalf("%d B of inbound memory still held", used)
	}
}
