package netron_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
	"github.com/netron-go/netron/stream"
)

// Bomb is the target of decoding bombs: one method per kind of parameter.
type Bomb struct{}

type withSlices struct {
	A []int `json:"a"`
	B []any `json:"b"`
}

func (Bomb) Any(v any) int                 { return 1 }
func (Bomb) Slice(v []any) int             { return len(v) }
func (Bomb) Map(v map[string]any) int      { return len(v) }
func (Bomb) Ints(v []int) int              { return len(v) }
func (Bomb) Struct(v withSlices) int       { return len(v.A) + len(v.B) }
func (Bomb) Hold(ctx context.Context) bool { <-ctx.Done(); return true }

// nilBomb is a CALL of method of bomb@1.0.0 whose one argument is an
// array of nils filling the packet up to size bytes.
func nilBomb(id uint32, method string, size int) []byte {
	return bomb(id, method, size, nil, 0xdd, []byte{0xc0})
}

// bomb is a CALL of method of bomb@1.0.0 whose one argument is prefix,
// then a container (marker: array32 0xdd or map32 0xdf) of as many items
// as fill the packet up to size bytes.
func bomb(id uint32, method string, size int, prefix []byte, marker byte, item []byte) []byte {
	b := wire.AppendHeader(nil, id, wire.Flags(wire.TypeCall, true, 0))
	b = wire.AppendArrayHeader(b, 3)
	b = wire.AppendString(b, "bomb@1.0.0")
	b = wire.AppendString(b, method)
	b = append(b, prefix...)
	n := (size - len(b) - 5) / len(item)
	b = append(b, marker)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	return append(b, bytes.Repeat(item, n)...)
}

// The bombs of the tests, one per target type, each made of what that
// type's decoding takes: nils into any, []any and []int; "" → nil entries
// into map[string]any (its size comes from the announced count); a struct
// {"b": [nils]}, whose []any field takes them.
var bombs = []struct {
	method string
	make   func(id uint32, size int) []byte
	cost   func(size int) int64 // what decoding would allocate
}{
	{"any", func(id uint32, size int) []byte { return nilBomb(id, "any", size) }, func(n int) int64 { return 16 * int64(n) }},
	{"slice", func(id uint32, size int) []byte { return nilBomb(id, "slice", size) }, func(n int) int64 { return 16 * int64(n) }},
	{"map", func(id uint32, size int) []byte { return bomb(id, "map", size, nil, 0xdf, []byte{0xa0, 0xc0}) }, func(n int) int64 { return 40 * int64(n) }}, // n/2 entries of 80 bytes
	{"ints", func(id uint32, size int) []byte { return nilBomb(id, "ints", size) }, func(n int) int64 { return 8 * int64(n) }},
	{"struct", func(id uint32, size int) []byte {
		return bomb(id, "struct", size, []byte{0x81, 0xa1, 'b'}, 0xdd, []byte{0xc0})
	}, func(n int) int64 { return 16 * int64(n) }},
}

// heapPeak samples the heap (objects, live or not yet swept) every few
// hundred microseconds until stop is closed and returns the largest
// value seen.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

func heapNow() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// callRaw sends frame on raw and returns the reply, waiting for it for a
// minute at most (a 16 MiB bomb decodes slowly with the race detector).
func callRaw(t *testing.T, raw *rawClient, frame []byte) wire.Packet {
	t.Helper()
	raw.send(frame)
	p, close := raw.recvOrClose()
	if close != 0 {
		t.Fatalf("no reply: %v", close)
	}
	return p
}

// bombSize is the size of the bombs: 16 MiB, or 2 MiB with the race
// detector, which makes decoding 16.7 million elements take minutes.
var bombSize = map[bool]int{false: 16<<20 - 64, true: 2<<20 - 64}[raceEnabled]

// replyError decodes an error reply into an *rpc.Error.
func replyError(t *testing.T, p wire.Packet) *rpc.Error {
	t.Helper()
	if !p.IsError() {
		t.Fatalf("reply %x is not an error", p.Data)
	}
	var e wire.TitanError
	if err := wire.Unmarshal(p.Data, &e); err != nil {
		t.Fatalf("error reply %x: %v", p.Data, err)
	}
	return &rpc.Error{Code: e.Code, Name: e.Name, Message: e.Message, Details: e.Details}
}

// The bound the tests hold decoding to: per packet of n bytes, the
// message as it is read (up to 3n allocated: the doubling buffer and a
// copy at its size) plus its decode budget (docs/reliability.md, "Hostile
// peers"); plus 16 MiB for the test's own bookkeeping and the runtime.
func packetBound(n int) uint64 { return uint64(3*n) + uint64(wire.Budget(n, 0)) + 16<<20 }

// gcFactor is how far the heap, garbage not yet collected included, may
// grow past what is live before the collector runs: 1 + GOGC/100.
func gcFactor() uint64 {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return 1 + uint64(max(p, 0))/100
}

// One 16 MiB CALL whose argument is a bomb of its target's kind (16.7
// million nils, 8.4 million map entries), to methods taking any, []any,
// map[string]any, []int and a struct with slices: the node answers each
// (400 when decoding would go over the budget, before allocating it; a
// result when it fits) and its heap grows by less than the documented
// bound, instead of the 335 MB it took before (issue 16).
func TestDecodeBombOnePacket(t *testing.T) {
	server := startNode(t, netron.Config{ID: "bombed", Host: "127.0.0.1", Server: true})
	if err := server.Expose("bomb@1.0.0", Bomb{}); err != nil {
		t.Fatal(err)
	}
	// And one that fits its budget: 6 MiB of nils into []int (48 MiB).
	cases := append(slices.Clone(bombs), bombs[3])
	cases[len(cases)-1].method = "ints, within budget"
	for i, b := range cases {
		size := bombSize
		if i == len(cases)-1 {
			size = min(bombSize, 6<<20)
		}
		t.Run(cases[i].method, func(t *testing.T) {
			raw := dialRaw(t, server.URL(), "bomber", false)
			frame := b.make(1, size)
			refused := b.cost(size) > wire.Budget(size, 0)
			runtime.GC()
			base := heapNow() // the client's frame, made before, is not counted
			stop := make(chan struct{})
			peak := heapPeak(stop)
			p := callRaw(t, raw, frame)
			close(stop)
			grown := int64(<-peak) - int64(base)
			switch {
			case !refused && p.IsError():
				t.Fatalf("error %+v", replyError(t, p))
			case refused:
				if e := replyError(t, p); e.Code != 400 || e.Reason() != "DecodeBudget" {
					t.Fatalf("reply %d %q: %s, want 400 DecodeBudget", e.Code, e.Reason(), e.Message)
				}
			}
			if bound := packetBound(size); grown > int64(bound) {
				t.Errorf("heap grew by %d MiB, bound %d MiB", grown>>20, bound>>20)
			}
			t.Logf("%s, %d KiB: refused %v; heap grew by at most %d MiB (bound %d MiB)", cases[i].method, size>>10, refused, grown>>20, packetBound(size)>>20)
		})
	}
}

// Eight such packets on eight connections at once, with the node's
// packet size that of the bombs and its inbound memory at its least (one
// packet and its budget, alone): the inbound memory takes what fits as the
// messages are read and decoded; what does not fit is refused with 503
// (its message read and dropped, or its decoding stopped), never by
// closing the connection. At least one of them is decoded (or refused for
// its budget), so the decoding is exercised. The heap, garbage included,
// grows by less than what the collector allows past that bound (twice it
// with GOGC=100), instead of the 2.7 GB it took before.
func TestDecodeBombEightConnections(t *testing.T) {
	size := bombSize
	server := startNode(t, netron.Config{ID: "bombed", Host: "127.0.0.1", Server: true,
		MaxPacketSize: int64(size), MaxInboundMemory: 1})
	if err := server.Expose("bomb@1.0.0", Bomb{}); err != nil {
		t.Fatal(err)
	}
	mem := server.Handler().(*transport.Hub).Memory()
	if least := transport.MinInboundMemory(int64(size), 0); mem.Limit() != least {
		t.Fatalf("inbound memory %d, want its least, %d", mem.Limit(), least)
	}
	for _, b := range bombs {
		if b.method == "slice" || b.method == "map" {
			continue // as any, as struct: one of each kind of refusal is enough
		}
		t.Run(b.method, func(t *testing.T) {
			raws := make([]*rawClient, 8)
			for i := range raws {
				raws[i] = dialRaw(t, server.URL(), fmt.Sprintf("bomber-%d", i), false)
			}
			frame := b.make(1, size)
			runtime.GC()
			base := heapNow()
			stop := make(chan struct{})
			peak := heapPeak(stop)
			var wg sync.WaitGroup
			replies := make([]wire.Packet, len(raws))
			closes := make([]websocket.StatusCode, len(raws))
			for i, raw := range raws {
				wg.Add(1)
				go func() {
					defer wg.Done()
					raw.send(frame)
					replies[i], closes[i] = raw.recvOrClose()
				}()
			}
			wg.Wait()
			close(stop)
			grown := int64(<-peak) - int64(base)
			outcomes := map[string]int{}
			decoded := 0
			for i, p := range replies {
				switch {
				case closes[i] != 0:
					t.Errorf("connection %d closed with %d", i, closes[i])
				case !p.IsError():
					outcomes["200"]++
					decoded++
				default:
					e := replyError(t, p)
					outcomes[fmt.Sprint(e.Code, " ", e.Reason())]++
					switch {
					case e.Code == 400 && e.Reason() == "DecodeBudget":
						decoded++
					case e.Code == 503 && e.Reason() == "InboundMemory":
					default:
						t.Errorf("reply %d %q: %s", e.Code, e.Reason(), e.Message)
					}
				}
			}
			if decoded == 0 {
				t.Errorf("no request was decoded: %v", outcomes)
			}
			// What the node holds (its inbound memory, the small
			// buffers, the test's own frame and the runtime), and the
			// garbage the collector lets the heap grow by past it.
			bound := gcFactor() * (uint64(mem.Limit()) + 8*32<<10 + 32<<20)
			if grown > int64(bound) {
				t.Errorf("heap grew by %d MiB, bound %d MiB", grown>>20, bound>>20)
			}
			t.Logf("%s: %v; heap grew by at most %d MiB (bound %d MiB); inbound memory peak %d MiB of %d",
				b.method, outcomes, grown>>20, bound>>20, mem.Peak()>>20, mem.Limit()>>20)
			eventually(t, "the inbound memory given back", func() bool { return mem.Used() == 0 })
		})
	}
}

// recvOrClose receives the next packet, or the close status of a
// connection the server closed (-1 when it did not come within a minute).
func (c *rawClient) recvOrClose() (wire.Packet, websocket.StatusCode) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, msg, err := c.ws.Read(ctx)
	if err != nil {
		return wire.Packet{}, websocket.CloseStatus(err)
	}
	p, _ := wire.Decode(msg)
	return p, 0
}

// recvNoFail is recv for other goroutines than the test's: it returns a
// zero packet on failure, which the test then reports.
func (c *rawClient) recvNoFail() wire.Packet {
	p, _ := c.tryRecv()
	return p
}

// tryRecv receives the next packet within 30 s; false on failure.
func (c *rawClient) tryRecv() (wire.Packet, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, msg, err := c.ws.Read(ctx)
	if err != nil {
		return wire.Packet{}, false
	}
	p, err := wire.Decode(msg)
	return p, err == nil
}

// emptyMapsBomb is a CALL of any whose argument is an array of empty maps
// (64 bytes each into an interface, from one byte: over the budget).
func emptyMapsBomb(id uint32, size int) []byte { return bomb(id, "any", size, nil, 0xdd, []byte{0x80}) }

// A peer whose requests keep going over their decode budget is closed
// with 1008 at the third in a row; every one of them got its 400 first.
// A successful request in between clears the count.
func TestDecodeBudgetStrikesClose(t *testing.T) {
	server := startNode(t, netron.Config{ID: "bombed", Host: "127.0.0.1", Server: true})
	if err := server.Expose("bomb@1.0.0", Bomb{}); err != nil {
		t.Fatal(err)
	}
	raw := dialRaw(t, server.URL(), "bomber", false)
	over := func(id uint32) {
		t.Helper()
		p := callRaw(t, raw, emptyMapsBomb(id, 1<<20))
		if e := replyError(t, p); e.Code != 400 || e.Reason() != "DecodeBudget" {
			t.Fatalf("request %d: %d %q %s", id, e.Code, e.Reason(), e.Message)
		}
	}
	over(1)
	over(2)
	if p := callRaw(t, raw, nilBomb(3, "ints", 1000)); p.IsError() {
		t.Fatalf("a good call: %+v", replyError(t, p))
	}
	over(4)
	over(5)
	if p := callRaw(t, raw, nilBomb(6, "ints", 1000)); p.IsError() {
		t.Fatalf("a good call after two strikes: %+v", replyError(t, p))
	}
	over(7)
	over(8)
	over(9)
	if status, reason := raw.closed(); status != websocket.StatusPolicyViolation {
		t.Fatalf("closed with %d %q, want 1008", status, reason)
	}
	// Another peer is not affected.
	ok := dialRaw(t, server.URL(), "other", false)
	if p := callRaw(t, ok, nilBomb(1, "ints", 1000)); p.IsError() {
		t.Fatalf("another peer's call: %+v", replyError(t, p))
	}
}

// Relay returns the error of a call of its own that went over its
// budget, as a handler relaying a remote error does.
func (Bomb) Relay() error {
	return &rpc.Error{Code: 400, Name: "TitanError", Message: "a call of its own went over its budget",
		Details: map[string]any{"reason": "DecodeBudget"}}
}

// Strikes count the request's own data only: a handler that returns an
// error matching rpc.ErrDecodeBudget (one it got from a call of its own)
// is not the peer's doing, and does not close its connection.
func TestDecodeBudgetStrikesOwnDataOnly(t *testing.T) {
	server := startNode(t, netron.Config{ID: "bombed", Host: "127.0.0.1", Server: true})
	if err := server.Expose("bomb@1.0.0", Bomb{}); err != nil {
		t.Fatal(err)
	}
	raw := dialRaw(t, server.URL(), "caller", false)
	for i := range uint32(5) {
		call := wire.AppendHeader(nil, i+1, wire.Flags(wire.TypeCall, true, 0))
		call = wire.AppendArrayHeader(call, 2)
		call = wire.AppendString(call, "bomb@1.0.0")
		call = wire.AppendString(call, "relay")
		if e := replyError(t, callRaw(t, raw, call)); !errors.Is(e, rpc.ErrDecodeBudget) {
			t.Fatalf("reply %+v", e)
		}
	}
	if p := callRaw(t, raw, nilBomb(10, "ints", 1000)); p.IsError() {
		t.Fatalf("after five relayed errors: %+v", replyError(t, p))
	}
}

// The node's inbound memory bounds what its peers' requests hold, and one
// connection holds a share of it at most: one peer that keeps requests
// waiting is refused with 503 once its share is full while others still
// get in; peers together are refused once the node's memory is full (a
// fresh connection's first request then too). Nothing closes a
// connection; the node serves again once the requests are done, and every
// byte is given back.
func TestInboundMemoryRefusesAndRecovers(t *testing.T) {
	const packet = 64 << 10
	server := startNode(t, netron.Config{ID: "full", Host: "127.0.0.1", Server: true,
		MaxPacketSize: packet, MaxDecodeMemory: 128 << 10, MaxInboundMemory: 4 << 20})
	hold := &Holder{entered: make(chan struct{}, 256), release: make(chan struct{})}
	if err := server.Expose("holder@1.0.0", hold); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() { once.Do(func() { close(hold.release) }) }
	t.Cleanup(release) // before the node stops
	mem := server.Handler().(*transport.Hub).Memory()
	if mem.Share() != mem.Limit()/4 {
		t.Fatalf("share %d of %d", mem.Share(), mem.Limit())
	}
	arg := bytes.Repeat([]byte{'x'}, packet-200)
	call := func(id uint32) []byte {
		b := wire.AppendHeader(nil, id, wire.Flags(wire.TypeCall, true, 0))
		b = wire.AppendArrayHeader(b, 3)
		b = wire.AppendString(b, "holder@1.0.0")
		b = wire.AppendString(b, "hold")
		return wire.AppendBin(b, arg)
	}
	type client struct {
		raw     *rawClient
		replies chan wire.Packet
		held    int
	}
	var clients []*client
	// fill sends requests on a new connection, one at a time, until one is
	// refused, and returns the connection.
	fill := func(i int) *client {
		c := &client{raw: dialRaw(t, server.URL(), fmt.Sprintf("filler-%d", i), false), replies: make(chan wire.Packet, 256)}
		clients = append(clients, c)
		go func() {
			for {
				p, ok := c.raw.tryRecv()
				if !ok {
					close(c.replies)
					return
				}
				c.replies <- p
			}
		}()
		for id := uint32(1); ; id++ {
			c.raw.send(call(id))
			select {
			case <-hold.entered:
				c.held++
				continue
			case p := <-c.replies:
				e := replyError(t, p)
				if e.Code != 503 || e.Reason() != "InboundMemory" || p.ID != id {
					t.Fatalf("reply to %d: %d %d %q: %s", id, p.ID, e.Code, e.Reason(), e.Message)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("request neither held nor refused")
			}
			if mem.Used() > mem.Limit() {
				t.Fatalf("%d of %d bytes used", mem.Used(), mem.Limit())
			}
			return c
		}
	}
	first := fill(0)
	if first.held < 1 || mem.Used() > mem.Share() || mem.Used() > mem.Limit()/2 {
		t.Fatalf("one connection: %d held, %d of %d bytes used (share %d)", first.held, mem.Used(), mem.Limit(), mem.Share())
	}
	t.Logf("one connection: %d requests of %d KiB held, the next refused; %d of %d KiB in use", first.held, packet>>10, mem.Used()>>10, mem.Limit()>>10)
	for i := 1; ; i++ {
		if i > 8 {
			t.Fatalf("8 more connections and the node is not full: %d of %d bytes used", mem.Used(), mem.Limit())
		}
		if c := fill(i); c.held == 0 {
			break // its first request was refused: the node is full
		}
	}
	held := 0
	for _, c := range clients {
		held += c.held
	}
	t.Logf("%d connections: %d requests held; %d of %d KiB in use", len(clients), held, mem.Used()>>10, mem.Limit()>>10)
	release()
	for _, c := range clients {
		for range c.held {
			if p := <-c.replies; p.IsError() {
				t.Fatalf("held request: %+v", replyError(t, p))
			}
		}
	}
	eventually(t, "the inbound memory given back", func() bool { return mem.Used() == 0 })
	last := clients[len(clients)-1]
	last.raw.send(call(1000))
	<-hold.entered
	if p := <-last.replies; p.IsError() || p.ID != 1000 {
		t.Fatalf("after the others were done: %x", p.Data)
	}
	eventually(t, "the inbound memory given back", func() bool { return mem.Used() == 0 })
}

// Holder holds each call until release is closed.
type Holder struct {
	entered chan struct{}
	release chan struct{}
}

func (h *Holder) Hold(b []byte) int {
	h.entered <- struct{}{}
	<-h.release
	return len(b)
}

// Summer adds up a stream of numbers passed as an argument.
type Summer struct{}

func (Summer) Sum(r *stream.Reader[int]) (int, error) {
	n := 0
	for v := range r.C() {
		n += v
	}
	return n, r.Err()
}

// A Titan client that passes a stream as an argument sends the CALL and
// its chunks back to back, without waiting for credit (issue 15): the
// node registers the stream as it reads the CALL, so no chunk is lost,
// whether they come at once or with delays between the packets. The
// bytes are the issue's; the node's inbound memory is all given back.
func TestStreamArgumentChunksBehindTheCall(t *testing.T) {
	server := startNode(t, netron.Config{ID: "go-server", Host: "127.0.0.1", Server: true})
	if err := server.Expose("summer@1.0.0", Summer{}); err != nil {
		t.Fatal(err)
	}
	mem := server.Handler().(*transport.Hub).Memory()
	for _, gap := range []time.Duration{0, 0, 0, time.Millisecond, 20 * time.Millisecond} {
		for i := range 10 {
			raw := dialRaw(t, server.URL(), "ts-client", false)
			// query_interface for the defId, as Titan's client does.
			raw.send(unhex(t, "00000001 44 92 af71756572795f696e74657266616365 ac73756d6d657240312e302e30"))
			q := raw.recv()
			var def wire.Definition
			if err := wire.Unmarshal(q.Data, &def); err != nil || q.IsError() {
				t.Fatalf("query_interface: %x %v", q.Data, err)
			}
			call := wire.AppendHeader(nil, 0x2a, 0x43)
			call = wire.AppendArrayHeader(call, 3)
			call = wire.AppendString(call, def.ID)
			call = append(call, unhex(t, "a373756d c70e6b a139 01 00 a9676f2d736572766572")...)
			frames := [][]byte{
				call,
				unhex(t, "0000002b 45 01 00000009 00000000"),
				unhex(t, "0000002c 45 02 00000009 00000001"),
				unhex(t, "0000002d 45 03 00000009 00000002"),
				unhex(t, "0000002e 55 c0 00000009 00000003"),
			}
			for j, f := range frames {
				if j > 0 && gap > 0 {
					time.Sleep(gap) // latency between the packets, not a check
				}
				raw.send(f)
			}
			p := raw.recv()
			if got, want := p.Append(nil), unhex(t, "0000002a 03 06"); !bytes.Equal(got, want) {
				t.Fatalf("gap %s, run %d: reply %x, want %x", gap, i, got, want)
			}
			raw.ws.CloseNow()
		}
	}
	eventually(t, "the inbound memory given back", func() bool { return mem.Used() == 0 })
}

// A stream argument of a call that fails before its method runs is not
// kept: its chunks do not wait for the claim timeout.
func TestStreamArgumentOfAFailedCall(t *testing.T) {
	server := startNode(t, netron.Config{ID: "go-server", Host: "127.0.0.1", Server: true})
	if err := server.Expose("summer@1.0.0", Summer{}); err != nil {
		t.Fatal(err)
	}
	raw := dialRaw(t, server.URL(), "ts-client", false)
	// sum with two arguments: 400 ArgumentCount; the stream is let go.
	call := wire.AppendHeader(nil, 7, 0x43)
	call = wire.AppendArrayHeader(call, 4)
	call = wire.AppendString(call, "summer@1.0.0")
	call = append(call, unhex(t, "a373756d c70e6b a139 01 00 a9676f2d736572766572 01")...)
	raw.send(call)
	// The reply, and the producer told to stop (STREAM_CLOSE, as to any
	// plain peer), in either order: the worker that answers and the
	// release of the stream write independently.
	p, end := raw.recv(), raw.recv()
	if p.Type() == wire.TypeStreamClose {
		p, end = end, p
	}
	if e := replyError(t, p); !errors.Is(e, rpc.ErrArgumentCount) {
		t.Fatalf("reply %+v", e)
	}
	if end.Type() != wire.TypeStreamClose {
		t.Fatalf("besides the refusal: %s %x", end.Type(), end.Data)
	}
}

// The limits of this file are configured through Config and checked by
// Validate.
func TestHostileConfig(t *testing.T) {
	for _, cfg := range []netron.Config{
		{MaxInboundMemory: -1}, {MaxPendingConnections: -1}, {IdleTimeout: -time.Second},
		{MaxDecodeMemory: -1}, {ReadHeaderTimeout: -time.Second},
	} {
		if err := cfg.Validate(); !errors.Is(err, netron.ErrInvalidConfig) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	n := startNode(t, netron.Config{ID: "cfg", Host: "127.0.0.1", Server: true, MaxInboundMemory: 512 << 20})
	if got := n.Handler().(*transport.Hub).Memory().Limit(); got != 512<<20 {
		t.Errorf("inbound memory %d, want 512 MiB", got)
	}
	// Raised to one request of the largest packet and its budget: its
	// message, its budget (here capped by MaxDecodeMemory) and the step in
	// which decoding takes memory.
	n = startNode(t, netron.Config{ID: "cfg2", Host: "127.0.0.1", Server: true, MaxPacketSize: 1 << 20, MaxDecodeMemory: 8 << 20, MaxInboundMemory: 1})
	want := int64(1<<20+8<<10) + 8<<20 + wire.AccountStep
	if got := n.Handler().(*transport.Hub).Memory().Limit(); got != want || transport.MinInboundMemory(1<<20, 8<<20) != want {
		t.Errorf("inbound memory %d, want %d", got, want)
	}
	if got := n.Handler().(*transport.Hub).Memory().Share(); got != want {
		t.Errorf("a connection's share %d, want all of it (%d): one request of the largest packet fits", got, want)
	}
}

// The arguments of events from a peer this node subscribed to count
// against its inbound memory until their handler has run (or they were
// dropped): a handler that does not keep up holds its queue's events
// (bus.WithBuffer) and the one in hand, no more, and the memory is given
// back once it has run them and unsubscribed.
func TestRemoteEventsChargedUntilHandled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	server, client, p := connectPair(t, netron.Config{ID: "emitter"}, netron.Config{ID: "subscriber"})
	mem := client.Handler().(*transport.Hub).Memory()
	for _, policy := range []bus.Policy{bus.DropOldest, bus.DropNewest} {
		t.Run(policy.String(), func(t *testing.T) {
			gate := make(chan struct{})
			entered := make(chan struct{}, 64)
			var handled atomic.Int32
			unsub, err := p.On(ctx, "big", func(netron.Event) {
				entered <- struct{}{}
				<-gate
				handled.Add(1)
			}, bus.WithBuffer(4), bus.WithPolicy(policy))
			if err != nil {
				t.Fatal(err)
			}
			marked := make(chan struct{}, 1)
			unmark, err := p.On(ctx, "mark", func(netron.Event) { marked <- struct{}{} })
			if err != nil {
				t.Fatal(err)
			}
			const arg = 100 << 10
			big := strings.Repeat("x", arg)
			if err := server.Emit(ctx, "big", big); err != nil {
				t.Fatal(err)
			}
			<-entered // one in hand
			for range 20 {
				if err := server.Emit(ctx, "big", big); err != nil {
					t.Fatal(err)
				}
			}
			// The mark comes behind them on the same connection: once it
			// is handled, every big one was read.
			if err := server.Emit(ctx, "mark"); err != nil {
				t.Fatal(err)
			}
			select {
			case <-marked:
			case <-ctx.Done():
				t.Fatal("no mark")
			}
			// The mark may have come in one message with the last big
			// ones (a Go peer batches what it queues): that message stays
			// charged until the reader has published all of it, which it
			// finishes after the mark's handler ran.
			upper := int64(5*(arg+arg/8+4<<10) + 64<<10)
			eventually(t, "the reader done with its last message", func() bool { return mem.Used() <= upper })
			used := mem.Used()
			if used < 5*arg || used > upper {
				t.Errorf("%d KiB of inbound memory held for 5 events of %d KiB (one in hand, four queued)", used>>10, arg>>10)
			}
			t.Logf("%s: %d KiB held with 5 events of %d KiB waiting", policy, used>>10, arg>>10)
			close(gate)
			eventually(t, "the queue run", func() bool { return handled.Load() == 5 })
			unsub.Unsubscribe(ctx)
			unmark.Unsubscribe(ctx)
			eventually(t, "the inbound memory given back", func() bool { return mem.Used() == 0 })
		})
	}
}

// tcpPeer is a plain peer on a raw TCP connection, which it can reset.
type tcpPeer struct{ c net.Conn }

// dialTCPPeer upgrades a TCP connection to addr as the plain peer id and
// reads the 101 (and the hello, if it came with it).
func dialTCPPeer(addr, id string) (*tcpPeer, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	req := "GET /?id=" + id + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + transport.GoPeerHeader + ": 1\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, err
	}
	c.Read(make([]byte, 4096))
	return &tcpPeer{c}, nil
}

// frame appends one masked, final binary WebSocket frame of payload, or
// its first cut bytes when cut > 0.
func wsFrame(dst, payload []byte) []byte {
	dst = append(dst, 0x82)
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n < 1<<16:
		dst = append(dst, 0x80|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = append(dst, 0, 0, 0, 0) // mask 0: the payload as it is
	return append(dst, payload...)
}

// awaitReply reads the server's frames until the reply to request id.
func (p *tcpPeer) awaitReply(id uint32) {
	r := bufio.NewReader(p.c)
	for {
		var h [2]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(r, b[:]); err != nil {
				return
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(r, b[:]); err != nil {
				return
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return
		}
		if p, err := wire.Decode(payload); err == nil && p.ID == id && p.Type() == wire.TypeCall && !p.IsRequest() {
			return
		}
	}
}

// reset closes the connection with a TCP reset.
func (p *tcpPeer) reset() {
	if tc, ok := p.c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	p.c.Close()
}

// Peers do every kind of work the node charges to its inbound memory —
// requests held by their handler, arguments decoded (and one over its
// budget), PINGs whose answers wait to be written, a stream argument whose
// chunks a method has not read, messages cut off in the middle, events
// queued for a handler that does not keep up — and then reset their
// connections (or, Go peers, close them): once they are gone, every byte is
// given back. The memory is small enough that some of it is refused along
// the way. (The review of issue 16 found PING answers leaking for good.)
func TestInboundMemoryGivenBackAfterPeersReset(t *testing.T) {
	const packet = 256 << 10
	server := startNode(t, netron.Config{ID: "server", Host: "127.0.0.1", Server: true,
		MaxPacketSize: packet, MaxDecodeMemory: 1 << 20, MaxInboundMemory: 4 << 20, WriteTimeout: -1})
	if err := server.Expose("bomb@1.0.0", Bomb{}); err != nil {
		t.Fatal(err)
	}
	if err := server.Expose("summer@1.0.0", Summer{}); err != nil {
		t.Fatal(err)
	}
	mem := server.Handler().(*transport.Hub).Memory()
	addr := strings.TrimSuffix(strings.TrimPrefix(server.URL(), "ws://"), "/")

	// Go peers whose events the server subscribes to, with a handler held
	// until the end.
	gate := make(chan struct{})
	var gateOnce sync.Once
	open := func() { gateOnce.Do(func() { close(gate) }) }
	t.Cleanup(open)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var clients []*netron.Peer
	for i := range 4 {
		client := startNode(t, netron.Config{ID: fmt.Sprintf("emitter-%d", i)})
		cp, err := client.Connect(ctx, server.URL())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, cp)
		sp := serverPeer(t, server, client.ID())
		if _, err := sp.On(ctx, "big", func(netron.Event) { <-gate }, bus.WithBuffer(8)); err != nil {
			t.Fatal(err)
		}
		for range 10 {
			if err := client.Emit(ctx, "big", strings.Repeat("e", 50<<10)); err != nil {
				t.Fatal(err)
			}
		}
	}

	call := func(id uint32, method string, args ...[]byte) []byte {
		b := wire.AppendHeader(nil, id, wire.Flags(wire.TypeCall, true, 0))
		b = wire.AppendArrayHeader(b, 2+len(args))
		b = wire.AppendString(b, "bomb@1.0.0")
		b = wire.AppendString(b, method)
		for _, a := range args {
			b = append(b, a...)
		}
		return b
	}
	binArg := wire.AppendBin(nil, make([]byte, 100<<10))
	pingData := wire.AppendBin(nil, make([]byte, 20<<10))
	var msgs []byte
	msgs = wsFrame(msgs, call(1, "hold"))
	msgs = wsFrame(msgs, call(2, "any", binArg))
	msgs = wsFrame(msgs, emptyMapsBomb(3, 8<<10)) // over its budget
	for k := range 10 {
		msgs = wsFrame(msgs, append(wire.AppendHeader(nil, uint32(10+k), wire.Flags(wire.TypePing, true, 0)), pingData...))
	}
	// sum with a stream argument, then chunks, no end: Sum waits.
	sum := wire.AppendHeader(nil, 30, 0x43)
	sum = wire.AppendArrayHeader(sum, 3)
	sum = wire.AppendString(sum, "summer@1.0.0")
	sum = append(sum, unhex(t, "a373756d c70e6b a139 01 00 a9676f2d736572766572")...)
	msgs = wsFrame(msgs, sum)
	for k := range uint32(5) {
		chunk := append(wire.AppendHeader(nil, 31+k, 0x45), wire.AppendBin(nil, make([]byte, 10<<10))...)
		msgs = wsFrame(msgs, binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(chunk, 9), k))
	}
	cut := wsFrame(nil, make([]byte, 200<<10))
	msgs = append(msgs, cut[:64<<10]...) // a message cut off
	conns := 300
	if testing.Short() {
		conns = 60
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p, err := dialTCPPeer(addr, fmt.Sprintf("reset-%d", i))
			if err != nil {
				return
			}
			p.c.Write(msgs)
			// The answer to the request over its budget before the
			// reset: the node has read that far.
			p.awaitReply(3)
			p.reset()
		}()
	}
	wg.Wait()
	for _, cp := range clients {
		cp.Close()
	}
	eventually(t, "no peers left", func() bool { return len(server.Peers()) == 0 })
	open()
	eventually(t, "the inbound memory given back", func() bool { return mem.Used() == 0 })
	if mem.Refusals() == 0 {
		t.Fatalf("peak %d of %d, no refusal: the test did not fill the inbound memory", mem.Peak(), mem.Limit())
	}
	t.Logf("%d connections; inbound memory peak %d KiB of %d, %d refusals", conns, mem.Peak()>>10, mem.Limit()>>10, mem.Refusals())
}

// eventually polls cond until it holds, failing after a generous 30 s
// (the node gives memory back as its goroutines finish: under the race
// detector and a loaded machine that can take seconds).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
