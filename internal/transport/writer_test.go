package transport_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/peer"
)

// callFrame is a CALL request whose data is [sender, seq].
func callFrame(c *transport.Conn, sender, seq int) []byte {
	b := wire.AppendHeader(nil, c.NextID(), wire.Flags(wire.TypeCall, true, 0))
	b, err := wire.AppendMarshal(b, []int{sender, seq})
	if err != nil {
		panic(err)
	}
	return b
}

// Concurrent senders on one connection: every packet arrives once, each
// sender's in the order it sent them, and every frame is released once,
// with and without batching.
func TestConcurrentSendersKeepOrder(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(map[bool]string{false: "one packet per message", true: "batched"}[batch], func(t *testing.T) {
			server := newHub(t, "server")
			url := serve(t, server)
			const senders, each = 16, 2000
			var mu sync.Mutex
			want := make(map[int64]int64)
			got := make(chan struct{}, senders*each)
			var bad atomic.Value
			unsub, err := bus.NewTopic[transport.Inbound](server.Bus(), transport.TopicRequests).SubscribeFunc(func(_ context.Context, in transport.Inbound) {
				dec := wire.NewDecoder(in.Packet.Data)
				defer wire.ReleaseDecoder(dec)
				_, _ = dec.DecodeArrayLen()
				s, _ := dec.DecodeInt64()
				seq, _ := dec.DecodeInt64()
				mu.Lock()
				if want[s] != seq {
					bad.Store(errors.New("out of order"))
				}
				want[s] = seq + 1
				mu.Unlock()
				got <- struct{}{}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer unsub()

			c, err := newHub(t, "client").Dial(context.Background(), url)
			if err != nil {
				t.Fatal(err)
			}
			if batch {
				c.SetExtensions(&transport.Extensions{Version: 1, Names: []string{transport.ExtensionBatch}})
			}
			var released atomic.Int64
			release := func([]byte) { released.Add(1) }
			var wg sync.WaitGroup
			for s := range senders {
				wg.Go(func() {
					for i := range each {
						if err := c.Send(context.Background(), callFrame(c, s, i), release); err != nil {
							bad.Store(err)
							return
						}
					}
				})
			}
			wg.Wait()
			for range senders * each {
				next(t, got)
			}
			if err, _ := bad.Load().(error); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return released.Load() == senders*each })
		})
	}
}

// A packet published on the outbound topic by someone other than Send is
// written too (by a goroutine of the hub).
func TestOutboundTopicPublisher(t *testing.T) {
	client, c, reqs := dialRequests(t)
	released := make(chan struct{}, 1)
	out := bus.NewTopic[transport.Outbound](client.Bus(), c.OutboundTopic())
	if err := out.Publish(context.Background(), transport.Outbound{Frame: callFrame(c, 7, 0), Release: func([]byte) { released <- struct{}{} }}); err != nil {
		t.Fatal(err)
	}
	if in := next(t, reqs.C()); in.Packet.Type() != wire.TypeCall {
		t.Fatalf("got %v", in.Packet.Type())
	}
	next(t, released)
}

// stalledServer accepts one WebSocket, sends the Titan handshake and then
// reads nothing, so the client's writes fill the socket buffers.
func stalledServer(t *testing.T) (url string, stop func()) {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		_ = ws.Write(r.Context(), websocket.MessageText, []byte(`{"type":"id","id":"stalled"}`))
		<-release
	}))
	var once sync.Once
	stop = func() {
		once.Do(func() {
			close(release)
			srv.CloseClientConnections()
			srv.Close()
		})
	}
	t.Cleanup(stop)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), stop
}

// A peer that stops reading: the sender writing blocks, others fill the
// queue, then Send waits and honours its context. Closing the connection
// releases every waiting sender and every queued frame.
func TestSendBackpressure(t *testing.T) {
	url, stop := stalledServer(t)
	client := newHub(t, "client", transport.WithOutboundQueue(4), transport.WithKeepAlive(0, 0))
	c, err := client.Dial(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	var accepted, released atomic.Int64
	release := func([]byte) { released.Add(1) }
	big := make([]byte, 1<<20)
	// Senders in the background until one of them is told to wait: the
	// socket buffers and the queue are full.
	full := make(chan struct{})
	var fullOnce sync.Once
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				frame := append(wire.AppendHeader(nil, c.NextID(), wire.Flags(wire.TypeCall, true, 0)), big...)
				err := c.Send(ctx, frame, release)
				cancel()
				switch {
				case err == nil:
					accepted.Add(1)
				case errors.Is(err, context.DeadlineExceeded):
					fullOnce.Do(func() { close(full) })
					return
				default:
					return
				}
			}
		})
	}
	select {
	case <-full:
	case <-time.After(10 * time.Second):
		t.Fatal("Send never blocked on a peer that reads nothing")
	}
	if c.Err() != nil {
		t.Fatalf("connection closed: %v", c.Err())
	}
	// Close: the writer's write fails, waiting senders return.
	c.Close()
	stop()
	wg.Wait()
	if err := c.Send(context.Background(), []byte{0, 0, 0, 1, 0x43, 0xc0}, release); !errors.Is(err, peer.ErrDisconnected) {
		t.Fatalf("Send after close: %v", err)
	}
	waitFor(t, func() bool { return released.Load() == accepted.Load() })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// A peer that stops reading blocks the write in progress; once it has made
// no progress for the write timeout, the connection closes with
// peer.ErrWriteTimeout and the blocked senders return. Keep-alive is off: it
// would not catch a peer that goes on sending anyway.
func TestWriteTimeoutClosesStalledConnection(t *testing.T) {
	url, _ := stalledServer(t)
	client := newHub(t, "client", transport.WithWriteTimeout(300*time.Millisecond), transport.WithKeepAlive(0, 0))
	c, err := client.Dial(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 64<<10) // small: a large write gets more time (see the next test)
	errs := make(chan error, 1)
	start := time.Now()
	go func() {
		for {
			frame := append(wire.AppendHeader(nil, c.NextID(), wire.Flags(wire.TypeCall, true, 0)), big...)
			if err := c.Send(context.Background(), frame, nil); err != nil {
				errs <- err
				return
			}
		}
	}()
	select {
	case err := <-errs:
		if !errors.Is(err, peer.ErrWriteTimeout) || !errors.Is(err, peer.ErrDisconnected) {
			t.Fatalf("Send: %v; want peer.ErrWriteTimeout and peer.ErrDisconnected", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a sender blocked on a peer that reads nothing was not released")
	}
	t.Logf("closed %v after the first send", time.Since(start).Round(time.Millisecond))
	if !errors.Is(c.Err(), peer.ErrWriteTimeout) {
		t.Fatalf("connection error %v", c.Err())
	}
}

// A connection that writes a lot, slowly read but read, stays open: the
// watchdog only closes a write that makes no progress at all.
func TestWriteTimeoutSparesSlowReader(t *testing.T) {
	server := newHub(t, "server")
	url := serve(t, server)
	reqs, err := bus.NewTopic[transport.Inbound](server.Bus(), transport.TopicRequests).Subscribe(bus.WithBuffer(1))
	if err != nil {
		t.Fatal(err)
	}
	client := newHub(t, "client", transport.WithWriteTimeout(time.Second), transport.WithKeepAlive(0, 0))
	c, err := client.Dial(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	// The server takes a 1 MiB request every 20 ms: the client's writes
	// block on full buffers again and again but always move on.
	const n = 40
	go func() {
		for range n {
			select {
			case <-reqs.C():
				time.Sleep(20 * time.Millisecond)
			case <-time.After(10 * time.Second):
				return
			}
		}
	}()
	big := make([]byte, 1<<20)
	for i := range n {
		frame := wire.AppendBin(wire.AppendHeader(nil, c.NextID(), wire.Flags(wire.TypeCall, true, 0)), big)
		if err := c.Send(context.Background(), frame, nil); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if err := c.Err(); err != nil {
		t.Fatalf("connection closed: %v", err)
	}
}

// A large message to a peer that reads, however slowly, is not a stall:
// the write gets its size at 64 KiB/s beyond the write timeout. Here one
// 8 MiB message takes seconds to drain through a reader that takes 16 KiB
// every 5 ms, against a write timeout of 300 ms.
func TestWriteTimeoutSparesLargeMessage(t *testing.T) {
	got := make(chan int, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ws.SetReadLimit(-1)
		_ = ws.Write(r.Context(), websocket.MessageText, []byte(`{"type":"id","id":"slow"}`))
		if _, _, err := ws.Read(r.Context()); err != nil { // the client-id
			return
		}
		_, rd, err := ws.Reader(r.Context())
		if err != nil {
			return
		}
		n := 0
		buf := make([]byte, 16<<10)
		for {
			m, err := rd.Read(buf)
			n += m
			if err != nil { // io.EOF at the end of the message
				got <- n
				for { // until the client closes (answering its close frame)
					if _, _, err := ws.Read(context.Background()); err != nil {
						return
					}
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}))
	t.Cleanup(srv.Close)
	client := newHub(t, "client", transport.WithWriteTimeout(300*time.Millisecond), transport.WithKeepAlive(0, 0))
	c, err := client.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"))
	if err != nil {
		t.Fatal(err)
	}
	frame := wire.AppendBin(wire.AppendHeader(nil, c.NextID(), wire.Flags(wire.TypeCall, true, 0)), make([]byte, 8<<20))
	start := time.Now()
	if err := c.Send(context.Background(), frame, nil); err != nil {
		t.Fatalf("Send: %v", err)
	}
	t.Logf("the 8 MiB write took %v", time.Since(start).Round(time.Millisecond))
	select {
	case n := <-got:
		if n != len(frame) {
			t.Fatalf("the peer read %d bytes of %d", n, len(frame))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the peer did not get the message")
	}
	if err := c.Err(); err != nil {
		t.Fatalf("connection closed: %v", err)
	}
}

// SendBefore's wait for room ends at its deadline, with
// context.DeadlineExceeded, even without a deadline on its context.
func TestSendBefore(t *testing.T) {
	server := newHub(t, "server")
	url := serve(t, server)
	client := newHub(t, "client", transport.WithOutboundQueue(2), transport.WithWriteTimeout(0), transport.WithKeepAlive(0, 0))
	c, err := client.Dial(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer holdWriter(t, c, 2)()
	start := time.Now()
	err = c.SendBefore(context.Background(), start.Add(100*time.Millisecond), []byte{0, 0, 0, 1, 0x43, 0xc0}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SendBefore: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("SendBefore returned after %v, before its deadline, 100ms", d)
	}
	if n := c.Waiting(); n != 0 {
		t.Fatalf("%d senders still counted as waiting", n)
	}
}

// holdWriter makes c's outbound queue full, of size queue, for as long as
// the test likes, without guessing from the clock: the writer is held in
// the release callback of a packet it wrote (the connection calls it in
// the goroutine writing, which writes nothing else meanwhile), and queue
// packets wait behind it. It returns the function that lets the writer go.
func holdWriter(t *testing.T, c *transport.Conn, queue int) (let func()) {
	t.Helper()
	entered, gate := make(chan struct{}), make(chan struct{})
	var once sync.Once
	let = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(let)
	hold := func([]byte) {
		close(entered)
		<-gate
	}
	sent := make(chan error, 1)
	go func() { sent <- c.Send(context.Background(), []byte{0, 0, 0, 1, 0x43, 0xc0}, hold) }()
	select {
	case <-entered:
	case err := <-sent:
		t.Fatalf("Send: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the first packet was never written")
	}
	for range queue { // the queue has room: Queue returns at once
		if err := c.Queue(context.Background(), []byte{0, 0, 0, 1, 0x43, 0xc0}, nil); err != nil {
			t.Fatal(err)
		}
	}
	return let
}

// ClosePolicyAfterWrites closes only once what was queued before it has
// been written: a peer gets the answer that made the node close before
// the close frame.
func TestClosePolicyAfterWrites(t *testing.T) {
	_, c, reqs := dialRequests(t)
	let := holdWriter(t, c, 3)
	c.ClosePolicyAfterWrites("enough")
	if err := c.Err(); err != nil {
		t.Fatalf("closed while its writer still had packets: %v", err)
	}
	let()
	for i := range 4 { // the held packet and the three queued behind it
		select {
		case <-reqs.C():
		case <-time.After(30 * time.Second):
			t.Fatalf("packet %d of 4 never arrived", i+1)
		}
	}
	select {
	case <-c.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("not closed after its queue was written")
	}
	if err := c.Err(); !errors.Is(err, peer.ErrPolicy) {
		t.Fatalf("closed with %v, want peer.ErrPolicy", err)
	}
}
