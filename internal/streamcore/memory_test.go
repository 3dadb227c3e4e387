package streamcore_test

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/netron-go/netron/internal/streamcore"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/stream"
)

// liveHeap returns the bytes of live heap objects after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// The chunks a plain peer (no flow control) makes a stream buffer are
// charged to the node's inbound memory at what they cost, not at their
// size on the wire: 9,000 one-byte chunks take a frame of their own each
// (16 bytes at least) and an entry in the queue (twice its 40 bytes at
// most, the queue growing by doubling), about 4 times their 14 bytes of
// packet. The live heap they hold (measured) stays under what they are
// charged. (The review of issue 16 found them charged their wire size:
// about a fourth of it.)
func TestPlainChunksChargedWhatTheyCost(t *testing.T) {
	server, client := pair(t, false)
	r := accept[int](t, client, 903)
	mem := client.hub.Memory()
	frames := make([][]byte, 9000)
	for i := range frames {
		frames[i] = chunkFrame(t, uint32(i+1), 0x65, 1, 903, uint32(i))
	}
	other := accept[int](t, client, 904) // read: says when the reader has read every chunk before it
	before := liveHeap()
	for _, f := range frames {
		send(t, server.conn, f)
	}
	send(t, server.conn, chunkFrame(t, 99999, 0x65, 7, 904, 0))
	if v, err := other.Recv(testCtx(t)); err != nil || v != 7 {
		t.Fatalf("marker: %v, %v", v, err)
	}
	grown := int64(liveHeap()) - int64(before)
	charged := mem.Used()
	wire14 := int64(len(frames[0]))
	if grown > charged+32<<10 {
		t.Errorf("9,000 buffered chunks hold %d bytes of heap, charged %d", grown, charged)
	}
	if charged < 9000*2*wire14 {
		t.Errorf("charged %d for 9,000 chunks of %d bytes", charged, wire14)
	}
	t.Logf("9,000 chunks of %d bytes: live heap +%d, charged %d (%.1f× the packets)", wire14, grown, charged, float64(charged)/float64(9000*wire14))
	runtime.KeepAlive(frames)
	got, err := collectN(t, r, 9000)
	if err != nil || len(got) != 9000 {
		t.Fatalf("read %d, %v", len(got), err)
	}
	if u := mem.Used(); u != 0 {
		t.Errorf("%d bytes still charged once every chunk was read", u)
	}
}

// collectN reads n values.
func collectN[T any](t testing.TB, r *stream.Reader[T], n int) ([]T, error) {
	t.Helper()
	var out []T
	for range n {
		v, err := r.Recv(testCtx(t))
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}

// A chunk whose message does not fit the node's inbound memory is dropped
// unread by the connection (transport.Inbound.Refused), and its stream fails
// with ErrBufferOverflow after the chunks before it, while the connection
// and its other streams go on; the memory its chunks held is given back.
func TestRefusedChunkFailsItsStream(t *testing.T) {
	const readLimit = 256 << 10
	server, client := pairHubs(t, false, []transport.Option{transport.WithReadLimit(readLimit), transport.WithMaxDecodeMemory(1), transport.WithInboundMemory(1)}, nil, nil)
	mem := client.hub.Memory()
	r := accept[[]byte](t, client, 905)
	other := accept[int](t, client, 906)
	big := make([]byte, 100<<10)
	for i := range uint32(8) { // 800 KiB for a share of 344 KiB
		send(t, server.conn, chunkFrame(t, i+1, 0x65, big, 905, i))
	}
	send(t, server.conn, chunkFrame(t, 100, 0x65, 7, 906, 0))
	if v, err := other.Recv(testCtx(t)); err != nil || v != 7 {
		t.Fatalf("the other stream: %v, %v", v, err)
	}
	if mem.Used() > mem.Limit() || mem.Refusals() == 0 {
		t.Fatalf("%d of %d bytes, %d refusals", mem.Used(), mem.Limit(), mem.Refusals())
	}
	got, err := collect(t, r)
	if !errors.Is(err, streamcore.ErrBufferOverflow) || !strings.Contains(err.Error(), "did not fit the node's inbound memory") || len(got) == 0 || len(got) >= 8 {
		t.Fatalf("%d chunks, then %v", len(got), err)
	}
	t.Logf("%d chunks of 100 KiB buffered, then: %v", len(got), err)
	r.Close()
	other.Close()
	deadline := time.Now().Add(30 * time.Second)
	for mem.Used() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still held", mem.Used())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if server.conn.Err() != nil || client.conn.Err() != nil {
		t.Fatal("a connection closed")
	}
}
