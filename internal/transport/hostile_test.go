package transport_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/peer"
)

// waitFor polls cond until it holds, failing after a generous 30 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// openFDs counts the process's open file descriptors (Linux), -1
// elsewhere.
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// tcpAddr is the host:port of a ws:// URL.
func tcpAddr(url string) string { return strings.TrimPrefix(url, "ws://") }

// A connection whose HTTP request was refused (426 for a plain GET, 401
// when the hub authenticates) is closed by the server at once, however
// the client asks to keep it alive: 200 such connections give back their
// descriptors and goroutines, before any timeout.
func TestRefusedRequestsCloseTheirConnection(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   []transport.Option
		status int
	}{
		{"plain GET", nil, http.StatusUpgradeRequired},
		{"unauthenticated", []transport.Option{transport.WithAuthenticator(peer.SharedToken("secret"))}, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Timeouts far longer than the test: only the refusal may
			// close the connections.
			opts := append([]transport.Option{transport.WithReadHeaderTimeout(time.Minute), transport.WithIdleTimeout(time.Minute)}, tc.opts...)
			h := newHub(t, "server", opts...)
			addr := tcpAddr(serve(t, h))
			runtime.GC()
			fds, goroutines := openFDs(), runtime.NumGoroutine()
			const n = 200
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- refusedRequest(addr, tc.status)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			waitUntil(t, "no HTTP connection left on the server", func() bool {
				_, pre := h.Pending()
				return pre == 0
			})
			waitUntil(t, "descriptors and goroutines back to their baseline", func() bool {
				return openFDs() <= fds+5 && runtime.NumGoroutine() <= goroutines+5
			})
		})
	}
}

// refusedRequest sends a GET that asks to keep the connection alive and
// checks that the response has the status and that the server closes the
// connection after it (the read ends with EOF, not the 30 s deadline).
func refusedRequest(addr string, status int) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "GET /?id=x HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"); err != nil {
		return err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != status {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, status)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return fmt.Errorf("after the refusal: %v, want EOF (connection closed by the server)", err)
	}
	return nil
}

// Connections that never send a request are closed after the read-header
// timeout, and no more than WithMaxPending of them are held at once: the
// others are closed as they are accepted.
func TestSilentConnectionsBounded(t *testing.T) {
	h := newHub(t, "server", transport.WithMaxPending(20), transport.WithReadHeaderTimeout(time.Minute))
	addr := tcpAddr(serve(t, h))
	const n = 100
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns[i] = c
	}
	closed := make(chan int, n)
	for i, c := range conns {
		go func() {
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, err := c.Read(make([]byte, 1)); err == io.EOF {
				closed <- i
			}
		}()
	}
	for range n - 20 {
		select {
		case <-closed:
		case <-time.After(30 * time.Second):
			t.Fatal("the server did not close the connections beyond the bound")
		}
	}
	// The closed ones are counted until their server goroutine has seen
	// the close.
	waitUntil(t, "20 connections held", func() bool {
		_, pre := h.Pending()
		return pre == 20
	})
	for _, c := range conns {
		c.Close()
	}
	waitUntil(t, "the held connections released", func() bool {
		_, pre := h.Pending()
		return pre == 0
	})

	// With a short read-header timeout, a silent connection is dropped.
	h2 := newHub(t, "server2", transport.WithReadHeaderTimeout(100*time.Millisecond))
	c, err := net.Dial("tcp", tcpAddr(serve(t, h2)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("silent connection: %v, want EOF", err)
	}
}

// Upgrades whose handshake has not completed count against the peer
// limit: with MaxPeers 100, of 500 upgrades without ?id= that never say
// anything, 100 get their 101 and the others HTTP 503, and a peer can
// connect again once they are gone.
func TestPendingHandshakesCountAgainstMaxPeers(t *testing.T) {
	h := newHub(t, "server", transport.WithMaxPeers(100), transport.WithHandshakeTimeout(time.Minute))
	url := serve(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 500
	var (
		mu       sync.Mutex
		upgraded []*websocket.Conn
		refused  int
		other    []error
		wg       sync.WaitGroup
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws, resp, err := websocket.Dial(ctx, url, nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				upgraded = append(upgraded, ws)
			case resp != nil && resp.StatusCode == http.StatusServiceUnavailable:
				refused++
			default:
				other = append(other, err)
			}
		}()
	}
	wg.Wait()
	defer func() {
		for _, ws := range upgraded {
			ws.CloseNow()
		}
	}()
	if len(other) > 0 {
		t.Fatalf("%d dials failed otherwise, first: %v", len(other), other[0])
	}
	if len(upgraded) != 100 || refused != 400 {
		t.Fatalf("%d upgraded and %d refused with 503, want 100 and 400", len(upgraded), refused)
	}
	if hs, _ := h.Pending(); hs != 100 {
		t.Fatalf("%d pending handshakes, want 100", hs)
	}
	// A Go peer is refused too while they hold every place.
	client := newHub(t, "client")
	if _, err := client.Dial(ctx, url); err == nil {
		t.Fatal("a peer was admitted beyond the limit")
	}
	for _, ws := range upgraded {
		ws.CloseNow()
	}
	waitUntil(t, "the pending handshakes released", func() bool {
		hs, _ := h.Pending()
		return hs == 0
	})
	if _, err := client.Dial(ctx, url); err != nil {
		t.Fatalf("a peer after the silent upgrades left: %v", err)
	}
}

// A text frame that is not valid UTF-8 closes the connection with 1007
// (RFC 6455 §8.1); a packet in a text frame that is UTF-8 is answered, as
// Titan sends some (c2 #311).
func TestTextFrameNotUTF8(t *testing.T) {
	h := newHub(t, "server")
	ws := rawDial(t, serve(t, h))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ping := []byte{0, 0, 0, 5, 0x40, 0x07}
	if err := ws.Write(ctx, websocket.MessageText, ping); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.Read(ctx); err != nil || !bytes.Equal(msg, []byte{0, 0, 0, 5, 0x00, 0x07}) {
		t.Fatalf("PING in a UTF-8 text frame: %x %v", msg, err)
	}
	bad := []byte{0, 0, 0, 6, 0x40, 0xcc, 0xff} // PING holding 255: cc ff is not UTF-8
	if err := ws.Write(ctx, websocket.MessageText, bad); err != nil {
		t.Fatal(err)
	}
	_, _, err := ws.Read(ctx)
	if got := websocket.CloseStatus(err); got != websocket.StatusInvalidFramePayloadData {
		t.Fatalf("after a text frame that is not UTF-8: %v (status %d), want close 1007", err, got)
	}
	// The same bytes in a binary frame are a packet like any other.
	ws2 := rawDial(t, serve(t, newHub(t, "server2")))
	if err := ws2.Write(ctx, websocket.MessageBinary, bad); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws2.Read(ctx); err != nil || !bytes.Equal(msg, []byte{0, 0, 0, 6, 0x00, 0xcc, 0xff}) {
		t.Fatalf("the same PING in a binary frame: %x %v", msg, err)
	}
}

// Titan's client attaches its handler for the hello only once its
// connect has resolved: a message that arrives in the same read as the
// 101 response is lost (issue 15). titanClient does the same: it reads the
// response only after a few milliseconds (so that whatever the server sent
// right behind the 101 arrives in that read), answers the pings of that
// read as Titan's ws library does, and drops its data messages. Every one
// of 100 handshakes completes: the server sends a plain peer's hello only
// once it has answered a ping.
func TestHandshakeWithLateHelloHandler(t *testing.T) {
	h := newHub(t, "server")
	addr := tcpAddr(serve(t, h))
	for i := range 100 {
		if err := titanHandshake(addr, fmt.Sprintf("titan-%d", i), 3*time.Millisecond); err != nil {
			t.Fatalf("handshake %d: %v", i, err)
		}
	}
}

// titanHandshake connects like Titan's client (see
// TestHandshakeWithLateHelloHandler), answers the hello with its
// client-id and checks the connection with a Netron PING.
func titanHandshake(addr, id string, lateBy time.Duration) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	req := "GET /?id=" + id + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nx-netron-id: " + id + "\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		return err
	}
	time.Sleep(lateBy) // what the server sends behind the 101 arrives meanwhile
	buf := make([]byte, 64<<10)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	end := bytes.Index(buf[:n], []byte("\r\n\r\n"))
	if end < 0 || !bytes.HasPrefix(buf, []byte("HTTP/1.1 101")) {
		return fmt.Errorf("response %q", buf[:n])
	}
	// The rest of this read: pings are answered, messages are lost.
	head := bytes.NewReader(buf[end+4 : n])
	for head.Len() > 0 {
		op, payload, err := readFrame(head)
		if err != nil {
			return fmt.Errorf("frame behind the 101: %w", err)
		}
		if op == 0x9 {
			if err := writeFrame(c, 0xA, payload); err != nil {
				return err
			}
		}
	}
	br := bufio.NewReader(c)
	next := func() ([]byte, error) { // the next data message, answering pings
		for {
			op, payload, err := readFrame(br)
			switch {
			case err != nil:
				return nil, err
			case op == 0x9:
				if err := writeFrame(c, 0xA, payload); err != nil {
					return nil, err
				}
			case op == 0x8:
				return nil, fmt.Errorf("closed by the server: %x", payload)
			case op == 0x1 || op == 0x2:
				return payload, nil
			}
		}
	}
	hello, err := next()
	if err != nil {
		return fmt.Errorf("waiting for the hello: %w", err)
	}
	if !bytes.HasPrefix(hello, []byte(`{"type":"id"`)) {
		return fmt.Errorf("first message %q, want the hello", hello)
	}
	if err := writeFrame(c, 0x2, []byte(`{"type":"client-id","id":"`+id+`"}`)); err != nil {
		return err
	}
	if err := writeFrame(c, 0x2, []byte{0, 0, 0, 1, 0x40, 0xc0}); err != nil {
		return err
	}
	pong, err := next()
	if err != nil {
		return fmt.Errorf("waiting for the PING's answer: %w", err)
	}
	if !bytes.Equal(pong, []byte{0, 0, 0, 1, 0x00, 0xc0}) {
		return fmt.Errorf("answer %x, want the PING response", pong)
	}
	return nil
}

// readFrame reads one unmasked WebSocket frame (server to client).
func readFrame(r io.Reader) (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if h[0]&0x80 == 0 || n > 1<<20 {
		return 0, nil, errors.New("fragmented or oversized frame")
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(r, payload)
	return h[0] & 0x0f, payload, err
}

// writeFrame writes one masked, final WebSocket frame (client to server).
func writeFrame(w io.Writer, op byte, payload []byte) error {
	b := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	mask := [4]byte{1, 2, 3, 4}
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i%4])
	}
	_, err := w.Write(b)
	return err
}

// A peer that sends large PINGs and reads nothing cannot make the node
// queue their answers without bound (the outbound queue counts packets,
// not bytes): the answers waiting to be written count against the
// inbound memory, and those that do not fit are not sent.
func TestPingAnswersCountAgainstInboundMemory(t *testing.T) {
	const limit = 64 << 10
	h := newHub(t, "server", transport.WithReadLimit(limit), transport.WithInboundMemory(1), transport.WithWriteTimeout(0))
	reqs, err := bus.Subscribe[transport.Inbound](h.Bus(), transport.TopicRequests, bus.WithBuffer(4))
	if err != nil {
		t.Fatal(err)
	}
	defer reqs.Close()
	ws := rawDial(t, serve(t, h))
	ws.SetReadLimit(1 << 20)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mem := h.Memory()
	data := wire.AppendBin(nil, make([]byte, limit-64))
	const pings = 400 // 25 MB of PINGs: more than the socket buffers take
	for i := range pings {
		ping := append(wire.AppendHeader(nil, uint32(i+1), wire.Flags(wire.TypePing, true, 0)), data...)
		if err := ws.Write(ctx, websocket.MessageBinary, ping); err != nil {
			t.Fatal(err)
		}
		if mem.Used() > mem.Limit() {
			t.Fatalf("%d bytes held, limit %d", mem.Used(), mem.Limit())
		}
	}
	// A request behind them: once the node has read it, it has read
	// every PING.
	if err := ws.Write(ctx, websocket.MessageBinary, []byte{0, 0, 0x27, 0x0f, 0x44, 0x90}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reqs.C():
	case <-ctx.Done():
		t.Fatal("the request behind the PINGs never came")
	}
	if mem.Used() == 0 {
		t.Fatal("no answer waiting: the test did not fill the socket buffers")
	}
	// Read everything; a last PING, sent until it is answered, says when
	// all that was queued has come.
	answers := make(chan uint32, pings+64)
	go func() {
		for {
			_, msg, err := ws.Read(ctx)
			if err != nil || len(msg) < 4 {
				close(answers)
				return
			}
			answers <- binary.BigEndian.Uint32(msg)
		}
	}()
	got := 0
	last := []byte{0, 0, 0x27, 0x10, 0x40, 0xc0} // PING 10000
	for done := false; !done; {
		if err := ws.Write(ctx, websocket.MessageBinary, last); err != nil {
			t.Fatal(err)
		}
		for more := true; more && !done; {
			select {
			case id, ok := <-answers:
				switch {
				case !ok:
					t.Fatal("connection lost")
				case id == 10000:
					done = true
				default:
					got++
				}
			case <-time.After(50 * time.Millisecond): // then ask again
				more = false
			}
		}
	}
	if got == 0 || got >= pings {
		t.Fatalf("%d of %d PINGs answered; want some, not all", got, pings)
	}
	waitUntil(t, "the inbound memory given back", func() bool { return mem.Used() == 0 })
	t.Logf("%d of %d PINGs of %d KiB answered; at most %d KiB held for them", got, pings, limit>>10, mem.Peak()>>10)
}

// Peers that send what the node charges to its inbound memory — large
// PINGs whose answers wait to be written, requests, stream chunks,
// messages cut off in the middle — and then reset their connection: once
// every connection is gone, every byte is given back. The memory is small
// enough that some messages are refused along the way. (The review of
// issue 16 found PING answers queued in the window of a shutdown leaking
// for good.)
func TestInboundMemoryGivenBackAfterResets(t *testing.T) {
	const readLimit = 256 << 10
	h := newHub(t, "server", transport.WithWriteTimeout(0), transport.WithReadLimit(readLimit), transport.WithMaxDecodeMemory(1), transport.WithInboundMemory(1))
	addr := tcpAddr(serve(t, h))
	mem := h.Memory()
	pingData := wire.AppendBin(nil, make([]byte, 30<<10))
	request := append(wire.AppendHeader(nil, 1, wire.Flags(wire.TypeCall, true, 0)), wire.AppendBin(nil, make([]byte, 100<<10))...)
	chunk := append(append(wire.AppendHeader(nil, 2, wire.Flags(wire.TypeStream, true, 0)), wire.AppendBin(nil, make([]byte, 50<<10))...), 0, 0, 0, 9, 0, 0, 0, 0)
	conns := 1000
	if testing.Short() {
		conns = 200
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			id := fmt.Sprintf("reset-%d", i)
			req := "GET /?id=" + id + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + transport.GoPeerHeader + ": 1\r\n\r\n"
			if _, err := io.WriteString(c, req); err != nil {
				return
			}
			c.Read(make([]byte, 4096)) // the 101, maybe the hello
			var out bytes.Buffer
			for k := range 20 {
				writeFrame(&out, 0x2, append(wire.AppendHeader(nil, uint32(k+10), wire.Flags(wire.TypePing, true, 0)), pingData...))
			}
			writeFrame(&out, 0x2, request)
			writeFrame(&out, 0x2, chunk)
			// A message announced at 200 KiB, cut off after 64 KiB.
			var cut bytes.Buffer
			writeFrame(&cut, 0x2, make([]byte, 200<<10))
			out.Write(cut.Bytes()[:64<<10])
			c.Write(out.Bytes())
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0) // RST
			}
		}()
	}
	wg.Wait()
	waitUntil(t, "no peers left", func() bool { return len(h.Conns()) == 0 })
	waitUntil(t, "the inbound memory given back", func() bool { return mem.Used() == 0 })
	if mem.Peak() == 0 || mem.Refusals() == 0 {
		t.Fatalf("peak %d, %d refusals: the test did not fill the inbound memory", mem.Peak(), mem.Refusals())
	}
	t.Logf("%d connections; inbound memory peak %d KiB of %d, %d refusals", conns, mem.Peak()>>10, mem.Limit()>>10, mem.Refusals())
}

// holdRequests adopts the inbound memory of every request published on
// h's TopicRequests and keeps it until the returned function is called;
// refused requests go to refused.
func holdRequests(t *testing.T, h *transport.Hub) (held <-chan int64, refused <-chan transport.Inbound, release func()) {
	t.Helper()
	heldC := make(chan int64, 64)
	refusedC := make(chan transport.Inbound, 64)
	var mu sync.Mutex
	var charges []struct {
		c *transport.Conn
		n int64
	}
	unsub, err := bus.NewTopic[transport.Inbound](h.Bus(), transport.TopicRequests).SubscribeFunc(func(_ context.Context, in transport.Inbound) {
		if in.Refused {
			refusedC <- in
			return
		}
		n := in.Conn.Adopt(&in)
		mu.Lock()
		charges = append(charges, struct {
			c *transport.Conn
			n int64
		}{in.Conn, n})
		mu.Unlock()
		heldC <- n
	})
	if err != nil {
		t.Fatal(err)
	}
	release = func() {
		mu.Lock()
		defer mu.Unlock()
		for _, ch := range charges {
			ch.c.Release(ch.n)
		}
		charges = nil
	}
	t.Cleanup(func() { unsub(); release() })
	return heldC, refusedC, release
}

// What does not fit the inbound memory is read and dropped, not the
// connection: a request is published with Refused set (for the RPC server
// to answer 503), a STREAM chunk with its stream's id and index (for its
// stream to fail); a reply to a call of this node is read whatever the
// memory holds, while a reply nobody waits for is charged like the rest
// and dropped. The connection serves on once memory is back.
func TestRefusedMessagesKeepTheConnection(t *testing.T) {
	const readLimit = 256 << 10
	h := newHub(t, "server", transport.WithReadLimit(readLimit), transport.WithMaxDecodeMemory(1), transport.WithInboundMemory(1))
	held, refused, release := holdRequests(t, h)
	responses, err := bus.Subscribe[transport.Inbound](h.Bus(), transport.TopicResponses, bus.WithBuffer(16))
	if err != nil {
		t.Fatal(err)
	}
	defer responses.Close()
	streams, err := bus.Subscribe[transport.Inbound](h.Bus(), transport.TopicStreams, bus.WithBuffer(16))
	if err != nil {
		t.Fatal(err)
	}
	defer streams.Close()
	connected := events(t, h, transport.TopicConnected)
	ws := rawDial(t, serve(t, h))
	conn := next(t, connected.C()).Conn
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mem := h.Memory()
	request := func(id uint32) []byte {
		return append(wire.AppendHeader(nil, id, wire.Flags(wire.TypeCall, true, 0)), wire.AppendBin(nil, make([]byte, 100<<10))...)
	}
	// Requests held until one is refused.
	var id uint32
	for id = 1; ; id++ {
		if err := ws.Write(ctx, websocket.MessageBinary, request(id)); err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-held:
			if n < 100<<10 {
				t.Fatalf("request %d adopted %d bytes", id, n)
			}
			continue
		case in := <-refused:
			if in.Packet.ID != id || in.Packet.Type() != wire.TypeCall || in.Packet.Data != nil || in.Message < 100<<10 {
				t.Fatalf("refused %+v, want request %d without data", in, id)
			}
		case <-ctx.Done():
			t.Fatal("request neither held nor refused")
		}
		break
	}
	if id < 2 || mem.Used() > mem.Limit() || conn.MemoryUsed() > mem.Share() {
		t.Fatalf("refused at request %d; %d of %d bytes used", id, mem.Used(), mem.Limit())
	}
	// A STREAM chunk that does not fit: its stream id and index.
	chunk := append(append(wire.AppendHeader(nil, 77, wire.Flags(wire.TypeStream, true, 0)), wire.AppendBin(nil, make([]byte, 100<<10))...), 0, 0, 0, 9, 0, 0, 0, 4)
	if err := ws.Write(ctx, websocket.MessageBinary, chunk); err != nil {
		t.Fatal(err)
	}
	if in := next(t, streams.C()); !in.Refused || in.Packet.StreamID != 9 || in.Packet.StreamIndex != 4 || in.Packet.Data != nil {
		t.Fatalf("chunk: %+v", in)
	}
	// A reply nobody waits for is charged and dropped; the same reply
	// while a call waits is read.
	reply := append(wire.AppendHeader(nil, 5, wire.Flags(wire.TypeCall, false, 0)), wire.AppendBin(nil, make([]byte, 200<<10))...)
	if err := ws.Write(ctx, websocket.MessageBinary, reply); err != nil {
		t.Fatal(err)
	}
	// A small request behind it: once it is handled, so is the reply.
	if err := ws.Write(ctx, websocket.MessageBinary, append(wire.AppendHeader(nil, 999, wire.Flags(wire.TypeTask, true, 0)), 0x90)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-refused:
	case <-ctx.Done():
		t.Fatal("the small request never came")
	}
	select {
	case in := <-responses.C():
		t.Fatalf("a reply nobody waits for was read while memory is full: %d", in.Packet.ID)
	default:
	}
	conn.AwaitReplies(1)
	if err := ws.Write(ctx, websocket.MessageBinary, reply); err != nil {
		t.Fatal(err)
	}
	if in := next(t, responses.C()); in.Refused || len(in.Packet.Data) != len(reply)-wire.HeaderSize {
		t.Fatalf("reply: refused %v, %d bytes", in.Refused, len(in.Packet.Data))
	}
	conn.AwaitReplies(-1)
	// Memory back: the connection serves on.
	release()
	if err := ws.Write(ctx, websocket.MessageBinary, request(1000)); err != nil {
		t.Fatal(err)
	}
	if n := next(t, held); n < 100<<10 {
		t.Fatalf("after the release: %d", n)
	}
	release()
	if conn.Err() != nil {
		t.Fatal(conn.Err())
	}
	waitUntil(t, "the inbound memory given back", func() bool { return mem.Used() == 0 })
}

// A peer that dialled without an id may send a packet as its first
// message, as large as any other (the old netron package sends no
// client-id): it is charged like any message, not cut at 64 KiB.
func TestFirstMessageMayBeALargePacket(t *testing.T) {
	h := newHub(t, "server")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, serve(t, h), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	if _, _, err := ws.Read(ctx); err != nil { // the hello
		t.Fatal(err)
	}
	ping := append(wire.AppendHeader(nil, 3, wire.Flags(wire.TypePing, true, 0)), wire.AppendBin(nil, make([]byte, 200<<10))...)
	if err := ws.Write(ctx, websocket.MessageBinary, ping); err != nil {
		t.Fatal(err)
	}
	_, msg, err := ws.Read(ctx)
	if err != nil || len(msg) != len(ping) || msg[4] != 0 {
		t.Fatalf("answer to a first PING of %d bytes: %d bytes, %v", len(ping), len(msg), err)
	}
	waitUntil(t, "the inbound memory given back", func() bool { return h.Memory().Used() == 0 })
}

// A connection that sends its request headers too slowly is closed after
// the read-header timeout, which is its own (and shorter by default than
// the handshake's): slow-header connections hold a pending place for that
// long at most.
func TestReadHeaderTimeout(t *testing.T) {
	if transport.DefaultReadHeaderTimeout >= transport.DefaultHandshakeTimeout {
		t.Fatalf("read-header timeout %s, handshake %s", transport.DefaultReadHeaderTimeout, transport.DefaultHandshakeTimeout)
	}
	h := newHub(t, "server", transport.WithHandshakeTimeout(time.Minute), transport.WithReadHeaderTimeout(100*time.Millisecond))
	c, err := net.Dial("tcp", tcpAddr(serve(t, h)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /?id=slow HTTP/1.1\r\nHost: x\r\n") // and nothing more
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("slow headers: %v, want the server to close the connection", err)
	}
	waitUntil(t, "no pending connection", func() bool {
		_, pre := h.Pending()
		return pre == 0
	})
}

// A request batched with others (ExtensionBatch) shares its message: the
// subscriber that keeps it (Conn.Keep) gets a share of the batch's charge,
// so the message is charged once, however many of its requests are kept,
// and stays charged while one of them is (it stays alive as long). A
// request alone in its message takes the message's charge over
// (Conn.Adopt), not charged twice.
func TestKeepChargesWhatEachRequestHolds(t *testing.T) {
	h := newHub(t, "server")
	connected := events(t, h, transport.TopicConnected)
	var mu sync.Mutex
	var kept []transport.Kept
	unsub, err := bus.NewTopic[transport.Inbound](h.Bus(), transport.TopicRequests).SubscribeFunc(func(_ context.Context, in transport.Inbound) {
		k, ok := in.Conn.Keep(&in)
		if !ok {
			t.Error("Keep refused")
		}
		mu.Lock()
		kept = append(kept, k)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	ws := rawDial(t, serve(t, h))
	ws.SetReadLimit(1 << 20)
	conn := next(t, connected.C()).Conn
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	request := func(id uint32, size int) []byte {
		return append(wire.AppendHeader(nil, id, wire.Flags(wire.TypeCall, true, 0)), wire.AppendBin(nil, make([]byte, size))...)
	}
	// Ten requests of 1 KiB batched with a PING of 200 KiB.
	frames := [][]byte{append(wire.AppendHeader(nil, 99, wire.Flags(wire.TypePing, true, 0)), wire.AppendBin(nil, make([]byte, 200<<10))...)}
	for i := range uint32(10) {
		frames = append(frames, request(i+1, 1<<10))
	}
	batch := batchPacket(frames...)
	if err := ws.Write(ctx, websocket.MessageBinary, batch); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.Read(ctx); err != nil { // the PING's answer: the batch was handled
		t.Fatal(err)
	}
	waitUntil(t, "ten requests kept", func() bool { mu.Lock(); defer mu.Unlock(); return len(kept) == 10 })
	for _, k := range kept {
		if !k.Shared() || k.Bytes() != 0 {
			t.Fatalf("a batched request holds %d bytes of its own, shared %v", k.Bytes(), k.Shared())
		}
	}
	// Once the PING's answer is written, what is left is the batch's
	// message, charged once.
	waitUntil(t, "the PING's answer given back", func() bool {
		return conn.MemoryUsed() <= int64(len(batch))+int64(len(batch))/8
	})
	if u := conn.MemoryUsed(); u < int64(len(batch)) {
		t.Fatalf("ten kept requests of a batch of %d bytes: %d charged", len(batch), u)
	}
	for _, k := range kept[:9] {
		k.Release()
	}
	if u := conn.MemoryUsed(); u < int64(len(batch)) {
		t.Fatalf("one request of the batch still kept: %d charged", u)
	}
	kept[9].Release()
	if u := conn.MemoryUsed(); u != 0 {
		t.Fatalf("every request let go: %d still charged", u)
	}
	// Alone in its message, a request of 100 KiB takes its message's
	// charge: nothing more is charged for it.
	if err := ws.Write(ctx, websocket.MessageBinary, request(11, 100<<10)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the large request kept", func() bool { mu.Lock(); defer mu.Unlock(); return len(kept) == 11 })
	mu.Lock()
	big := kept[10]
	mu.Unlock()
	if big.Shared() || big.Bytes() < 100<<10 || big.Bytes() > 112<<10 || conn.MemoryUsed() != big.Bytes() {
		t.Fatalf("a request of 100 KiB alone holds %d; the connection %d", big.Bytes(), conn.MemoryUsed())
	}
	big.Release()
	if u := h.Memory().Used(); u != 0 {
		t.Fatalf("%d bytes left", u)
	}
}
