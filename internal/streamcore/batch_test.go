package streamcore_test

import (
	"bytes"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/netron-go/netron/internal/streamcore"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
)

// batchFrame is an EXT batch message carrying frames, as a Go peer with
// transport.ExtensionBatch sends several packets in one WebSocket message.
func batchFrame(frames ...[]byte) []byte {
	b := wire.AppendHeader(nil, 0, uint8(wire.TypeExt))
	b = wire.AppendArrayHeader(b, 1+len(frames))
	b = wire.AppendString(b, "batch")
	for _, f := range frames {
		b = wire.AppendBin(b, f)
	}
	return b
}

// A small chunk left in its queue does not keep the batched message it
// came in alive: the large chunk of another stream in the same message is
// freed once its consumer drops it. The memory of a stream stays bounded
// by its window, however packets are batched.
func TestQueuedChunkDoesNotPinItsBatch(t *testing.T) {
	server, client := pair(t, true)
	// The client takes batches; the server does not make any itself (the
	// test hand-writes its batch, which must not end up in another one).
	client.conn.SetExtensions(&transport.Extensions{Version: 1, Names: []string{streamcore.Extension, transport.ExtensionBatch}})
	small, smallR := open[[]byte](t, server, client, true) // its consumer does not read
	big, bigR := open[[]byte](t, server, client, true)
	tiny := []byte("sixteen bytes!!!")
	large := bytes.Repeat([]byte{0xb1}, 200<<10)
	send(t, server.conn, batchFrame(
		chunkFrame(t, 1, 0x65, tiny, small.ID(), 0),
		chunkFrame(t, 2, 0x65, large, big.ID(), 0),
	))
	ctx := testCtx(t)
	v, err := bigR.Recv(ctx)
	if err != nil || !bytes.Equal(v, large) {
		t.Fatalf("the large chunk: %d bytes, %v", len(v), err)
	}
	waitFreed(t, v, "the batched message is still alive: the queued small chunk pins it")
	// The small chunk is intact.
	if got, err := smallR.Recv(ctx); err != nil || !bytes.Equal(got, tiny) {
		t.Fatalf("the small chunk: %q, %v", got, err)
	}
}

// Chunks of 64 KiB or more keep aliasing their message (no copy), batched
// or not: two such chunks of one batch come out exactly as far apart as
// they were in it.
func TestLargeBatchedChunksAreNotCopied(t *testing.T) {
	server, client := pair(t, true)
	client.conn.SetExtensions(&transport.Extensions{Version: 1, Names: []string{streamcore.Extension, transport.ExtensionBatch}})
	w, r := open[[]byte](t, server, client, true)
	data := bytes.Repeat([]byte{0x5a}, 70<<10)
	f0 := chunkFrame(t, 1, 0x65, data, w.ID(), 0)
	f1 := chunkFrame(t, 2, 0x65, data, w.ID(), 1)
	send(t, server.conn, batchFrame(f0, f1))
	ctx := testCtx(t)
	v0, err := r.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v1, err := r.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// f1 follows f0 in the batch behind its bin32 header (5 bytes).
	if d := uintptr(unsafe.Pointer(&v1[0])) - uintptr(unsafe.Pointer(&v0[0])); d != uintptr(len(f0)+5) {
		t.Fatalf("the chunks are %d bytes apart, want %d: a large chunk was copied", d, len(f0)+5)
	}
}

// A peer that packs a large chunk with a megabyte of other packets, or
// batches without having agreed to (transport.ExtensionBatch), cannot make a
// queued chunk hold the rest of its message: a chunk is copied out unless
// it is alone in its message, or large and in a batch of the size a Go
// sender makes.
func TestOversizedBatchDoesNotPin(t *testing.T) {
	server, client := pair(t, true)                      // no batch extension agreed
	slow, slowR := open[[]byte](t, server, client, true) // its consumer does not read yet
	big, bigR := open[[]byte](t, server, client, true)
	chunk := bytes.Repeat([]byte{0x5a}, 70<<10) // large enough to alias in a normal batch
	rest := bytes.Repeat([]byte{0xb1}, 1<<20)
	send(t, server.conn, batchFrame(
		chunkFrame(t, 1, 0x65, chunk, slow.ID(), 0),
		chunkFrame(t, 2, 0x65, rest, big.ID(), 0),
	))
	ctx := testCtx(t)
	v, err := bigR.Recv(ctx)
	if err != nil || !bytes.Equal(v, rest) {
		t.Fatalf("the other chunk: %d bytes, %v", len(v), err)
	}
	waitFreed(t, v, "the 1 MiB message is still alive: the queued 70 KiB chunk pins it")
	if got, err := slowR.Recv(ctx); err != nil || !bytes.Equal(got, chunk) {
		t.Fatalf("the queued chunk: %d bytes, %v", len(got), err)
	}
}

// waitFreed fails with msg unless the array v points into is collected
// within 30 s once the caller drops v (which it must do right after).
func waitFreed(t *testing.T, v []byte, msg string) {
	t.Helper()
	var freed atomic.Bool
	runtime.AddCleanup(&v[0], func(*atomic.Bool) { freed.Store(true) }, &freed)
	v = nil
	deadline := time.Now().Add(30 * time.Second)
	for !freed.Load() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}
