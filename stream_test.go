package netron_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
	"github.com/netron-go/netron/stream"
)

// Streamer is the streaming service of the tests.
type Streamer struct {
	// stopped receives the time each endless producer stops.
	stopped chan time.Time
	// running counts endless producers.
	running atomic.Int32

	mu   sync.Mutex
	sent map[uint64][32]byte // seed → SHA-256 of what Bytes produced
}

func newStreamer() *Streamer {
	return &Streamer{stopped: make(chan time.Time, 16), sent: make(map[uint64][32]byte)}
}

// Count streams 0 … n-1.
func (*Streamer) Count(n int) iter.Seq2[int, error] {
	return func(yield func(int, error) bool) {
		for i := range n {
			if !yield(i, nil) {
				return
			}
		}
	}
}

// FailAfter streams 0 … n-1 and then fails.
func (*Streamer) FailAfter(n int, msg string) iter.Seq2[int, error] {
	return func(yield func(int, error) bool) {
		for i := range n {
			if !yield(i, nil) {
				return
			}
		}
		yield(0, errors.New(msg))
	}
}

// noise is 1 MiB of pseudo-random bytes that test data is cut from.
var noise = func() []byte {
	b := make([]byte, 1<<20+64<<10)
	x := uint64(0x9e3779b97f4a7c15)
	for i := 0; i+8 <= len(b); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b[i:], x)
	}
	return b
}()

// fill fills b (at most 64 KiB) with the deterministic bytes of seed at
// offset off: a window of noise that depends on both, so that chunks out
// of order or repeated change the digest.
func fill(b []byte, seed uint64, off int64) {
	h := (seed*0x9e3779b97f4a7c15 ^ uint64(off)*0xbf58476d1ce4e5b9) >> 11
	copy(b, noise[h%(1<<20):])
}

// Bytes streams total bytes in chunks of size chunk, and records their
// digest.
func (s *Streamer) Bytes(total int64, chunk int, seed uint64) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		h := sha256.New()
		buf := make([]byte, chunk) // reused: Send encodes before it returns
		for off := int64(0); off < total; off += int64(chunk) {
			b := buf[:min(int64(chunk), total-off)]
			fill(b, seed, off)
			h.Write(b)
			if !yield(b, nil) {
				return
			}
		}
		s.mu.Lock()
		s.sent[seed] = [32]byte(h.Sum(nil))
		s.mu.Unlock()
	}
}

// Forever streams until its consumer stops: a channel producer.
func (s *Streamer) Forever(ctx context.Context) <-chan int {
	ch := make(chan int)
	s.running.Add(1)
	go func() {
		defer func() {
			s.running.Add(-1)
			s.stopped <- time.Now()
		}()
		for i := 0; ; i++ {
			select {
			case ch <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// ForeverWriter streams until its consumer stops: a writer producer.
func (s *Streamer) ForeverWriter(ctx context.Context, w *stream.Writer[int]) error {
	s.running.Add(1)
	defer func() {
		s.running.Add(-1)
		s.stopped <- time.Now()
	}()
	for i := 0; ; i++ {
		if err := w.Send(ctx, i); err != nil {
			return err
		}
	}
}

// Sum reads a stream of ints: an upload.
func (*Streamer) Sum(r *stream.Reader[int]) (int, error) {
	sum := 0
	for v, err := range r.All() {
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// Digest reads a stream of bytes and returns its SHA-256 and length.
func (*Streamer) Digest(r *stream.Reader[[]byte]) (string, error) {
	h := sha256.New()
	n := 0
	for b, err := range r.All() {
		if err != nil {
			return "", err
		}
		h.Write(b)
		n += len(b)
	}
	return fmt.Sprintf("%x/%d", h.Sum(nil), n), nil
}

// Upper streams back what it reads, in upper case: a stream in, a stream
// out.
func (*Streamer) Upper(r *stream.Reader[string]) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for s, err := range r.All() {
			if err != nil {
				yield("", err)
				return
			}
			if !yield(strings.ToUpper(s), nil) {
				return
			}
		}
	}
}

// Stall sends one value and then nothing, as a finite stream.
func (*Streamer) Stall(ctx context.Context) stream.Source {
	return stream.Finite(stream.FromFunc(func(ctx context.Context, w *stream.Writer[int]) error {
		if err := w.Send(ctx, 1); err != nil {
			return err
		}
		<-ctx.Done()
		return context.Cause(ctx)
	}))
}

// streamPair starts a server exposing a Streamer and a client connected to
// it.
func streamPair(t testing.TB, cfg netron.Config) (*Streamer, *netron.Node, *netron.Node, *rpc.Service) {
	t.Helper()
	ctx := context.Background()
	scfg := cfg
	scfg.ID, scfg.Host, scfg.Server = "server", "127.0.0.1", true
	server := startNode(t, scfg)
	s := newStreamer()
	if err := server.Expose("streamer@1.0.0", s); err != nil {
		t.Fatal(err)
	}
	ccfg := cfg
	ccfg.ID = "client"
	client := startNode(t, ccfg)
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := p.Service(ctx, "streamer@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	return s, server, client, svc
}

func streamCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // an upper bound: a loaded machine is slow
	t.Cleanup(cancel)
	return ctx
}

// 100,000 chunks arrive complete and in order, both ways.
func TestStream100kChunks(t *testing.T) {
	_, _, _, svc := streamPair(t, netron.Config{})
	ctx := streamCtx(t)
	const n = 100_000
	want := 0
	for v, err := range rpc.Stream[int](ctx, svc, "count", n) {
		if err != nil {
			t.Fatalf("after %d values: %v", want, err)
		}
		if v != want {
			t.Fatalf("value %d is %d", want, v)
		}
		want++
	}
	if want != n {
		t.Fatalf("%d values, want %d", want, n)
	}
	// Upload: a channel as the argument.
	ch := make(chan int)
	go func() {
		defer close(ch)
		for i := range n {
			ch <- i
		}
	}()
	sum, err := rpc.Call[int](ctx, svc, "sum", (<-chan int)(ch))
	if err != nil {
		t.Fatal(err)
	}
	if sum != n*(n-1)/2 {
		t.Fatalf("sum %d", sum)
	}
}

// 1 GiB through one stream to a consumer slower than its producer: the
// heap stays within a bound set by the window, and the bytes arrive whole.
func TestStream1GiBBoundedMemory(t *testing.T) {
	const (
		total = 1 << 30
		chunk = 64 << 10
		limit = 64 << 20
		seed  = 42
	)
	s, _, _, svc := streamPair(t, netron.Config{})
	ctx := streamCtx(t)

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}()

	start := time.Now()
	r, err := rpc.OpenStream[[]byte](ctx, svc, "bytes", int64(total), chunk, uint64(seed))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, chunks := 0, 0
	for b, err := range r.All() {
		if err != nil {
			t.Fatalf("after %d bytes: %v", n, err)
		}
		h.Write(b)
		n += len(b)
		if chunks++; chunks%16 == 0 {
			time.Sleep(time.Millisecond) // slower than the producer
		}
	}
	elapsed := time.Since(start)
	close(stop)
	<-sampled
	if n != total {
		t.Fatalf("received %d bytes, want %d", n, total)
	}
	s.mu.Lock()
	sent, ok := s.sent[seed]
	s.mu.Unlock()
	if !ok || sent != [32]byte(h.Sum(nil)) {
		t.Fatalf("digest mismatch: sent %x, received %x", sent, h.Sum(nil))
	}
	growth := int64(peak.Load()) - int64(base)
	t.Logf("1 GiB in %v (%.0f MB/s with a throttled consumer); heap in use: base %d MiB, peak %d MiB, growth %d MiB",
		elapsed, float64(total)/1e6/elapsed.Seconds(), base>>20, peak.Load()>>20, growth>>20)
	if growth > limit {
		t.Fatalf("peak heap growth %d MiB, want under %d MiB", growth>>20, limit>>20)
	}
}

// A consumer that stops early stops a producer that would otherwise run
// forever: break, cancel, Close; channel and writer producers.
func TestStreamBreakStopsProducer(t *testing.T) {
	s, _, _, svc := streamPair(t, netron.Config{})
	for _, method := range []string{"forever", "foreverWriter"} {
		for _, how := range []string{"break", "cancel", "close"} {
			t.Run(method+"/"+how, func(t *testing.T) {
				ctx, cancel := context.WithCancel(streamCtx(t))
				defer cancel()
				var stop time.Time
				switch how {
				case "break":
					n := 0
					for _, err := range rpc.Stream[int](ctx, svc, method) {
						if err != nil {
							t.Fatal(err)
						}
						if n++; n == 100 {
							stop = time.Now()
							break
						}
					}
				case "cancel", "close":
					r, err := rpc.OpenStream[int](ctx, svc, method)
					if err != nil {
						t.Fatal(err)
					}
					n := 0
					for range r.C() {
						if n++; n == 100 {
							break
						}
					}
					stop = time.Now()
					if how == "cancel" {
						cancel()
					}
					r.Close()
					if how == "cancel" && !errors.Is(r.Err(), context.Canceled) {
						t.Errorf("Err after cancel: %v", r.Err())
					}
					if how == "close" && !errors.Is(r.Err(), stream.ErrClosed) {
						t.Errorf("Err after Close: %v", r.Err())
					}
				}
				select {
				case at := <-s.stopped:
					d := at.Sub(stop)
					t.Logf("producer stopped %v after the consumer", d)
				case <-time.After(30 * time.Second): // nothing but the consumer's end stops it
					t.Fatal("producer still running 30 s after its consumer stopped")
				}
			})
		}
	}
	if n := s.running.Load(); n != 0 {
		t.Fatalf("%d producers still running", n)
	}
}

// A producer's error arrives after the chunks before it, and is not a
// clean end.
func TestStreamErrorMidStream(t *testing.T) {
	_, _, _, svc := streamPair(t, netron.Config{})
	ctx := streamCtx(t)
	var got []int
	var end error
	for v, err := range rpc.Stream[int](ctx, svc, "failAfter", 5, "disk on fire") {
		if err != nil {
			end = err
			break
		}
		got = append(got, v)
	}
	if fmt.Sprint(got) != "[0 1 2 3 4]" {
		t.Fatalf("values %v", got)
	}
	var re *stream.RemoteError
	if !errors.Is(end, stream.ErrRemote) || !errors.As(end, &re) || re.Message != "disk on fire" {
		t.Fatalf("end: %v", end)
	}
	// The same with a Reader: C closes, Err tells.
	r, err := rpc.OpenStream[int](ctx, svc, "failAfter", 3, "boom")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range r.C() {
		n++
	}
	if n != 3 || !errors.Is(r.Err(), stream.ErrRemote) {
		t.Fatalf("%d values, Err %v", n, r.Err())
	}
}

// 100 concurrent streams on one connection all complete correctly.
func TestStream100Concurrent(t *testing.T) {
	s, _, _, svc := streamPair(t, netron.Config{})
	ctx := streamCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seed := uint64(1000 + i)
			total := int64(256<<10 + i*1000)
			h := sha256.New()
			var n int64
			for b, err := range rpc.Stream[[]byte](ctx, svc, "bytes", total, 4096, seed) {
				if err != nil {
					errs <- fmt.Errorf("stream %d: %w", i, err)
					return
				}
				h.Write(b)
				n += int64(len(b))
			}
			s.mu.Lock()
			sent := s.sent[seed]
			s.mu.Unlock()
			if n != total || sent != [32]byte(h.Sum(nil)) {
				errs <- fmt.Errorf("stream %d: %d of %d bytes, digest mismatch", i, n, total)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// Streams go from caller to server too (Titan cannot do this), and a
// method can read one stream while it produces another.
func TestStreamUpload(t *testing.T) {
	_, _, _, svc := streamPair(t, netron.Config{})
	ctx := streamCtx(t)
	// An iterator as the argument, 8 MiB of bytes.
	data := func(yield func([]byte, error) bool) {
		b := make([]byte, 32<<10)
		for off := int64(0); off < 8<<20; off += int64(len(b)) {
			fill(b, 7, off)
			if !yield(b, nil) {
				return
			}
		}
	}
	h := sha256.New()
	for off := int64(0); off < 8<<20; off += 32 << 10 {
		b := make([]byte, 32<<10)
		fill(b, 7, off)
		h.Write(b)
	}
	got, err := rpc.Call[string](ctx, svc, "digest", iter.Seq2[[]byte, error](data))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%x/%d", h.Sum(nil), 8<<20); got != want {
		t.Fatalf("digest %s, want %s", got, want)
	}
	// A failing upload reaches the method as an error.
	failing := stream.FromSeq(func(yield func(int, error) bool) {
		yield(1, nil)
		yield(0, errors.New("upload broke"))
	})
	if _, err := rpc.Call[int](ctx, svc, "sum", failing); err == nil || !strings.Contains(err.Error(), "upload broke") {
		t.Fatalf("sum of a failing upload: %v", err)
	}
	// Stream in, stream out.
	words := stream.FromChan(func() <-chan string {
		ch := make(chan string)
		go func() {
			defer close(ch)
			for _, w := range []string{"alpha", "beta", "gamma"} {
				ch <- w
			}
		}()
		return ch
	}())
	var out []string
	for w, err := range rpc.Stream[string](ctx, svc, "upper", words) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, w)
	}
	if fmt.Sprint(out) != "[ALPHA BETA GAMMA]" {
		t.Fatalf("upper: %v", out)
	}
}

// Local calls stream through in-process pipes with the same API.
func TestStreamLocal(t *testing.T) {
	_, server, _, _ := streamPair(t, netron.Config{})
	ctx := streamCtx(t)
	svc, err := server.Service(ctx, "streamer@^1")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for v, err := range rpc.Stream[int](ctx, svc, "count", 1000) {
		if err != nil || v != n {
			t.Fatal(v, err)
		}
		n++
	}
	ch := make(chan int)
	go func() {
		defer close(ch)
		for i := range 100 {
			ch <- i
		}
	}()
	if sum, err := rpc.Call[int](ctx, svc, "sum", (<-chan int)(ch)); err != nil || sum != 4950 {
		t.Fatal(sum, err)
	}
	empty := make(chan int)
	close(empty)
	if _, err := rpc.OpenStream[int](ctx, svc, "sum", stream.FromChan(empty)); !errors.Is(err, stream.ErrNotStream) {
		t.Fatalf("OpenStream of a method that returns no stream: %v", err)
	}
}

// The inactivity timeout of finite streams and the stream limit come from
// the node's configuration.
func TestStreamConfig(t *testing.T) {
	_, server, _, svc := streamPair(t, netron.Config{StreamTimeout: 100 * time.Millisecond, MaxStreamsPerPeer: 2})
	ctx := streamCtx(t)
	var got []int
	var end error
	for v, err := range rpc.Stream[int](ctx, svc, "stall") {
		if err != nil {
			end = err
			break
		}
		got = append(got, v)
	}
	if !errors.Is(end, stream.ErrInactive) || len(got) != 1 {
		t.Fatalf("stalled finite stream: %v, %v", got, end)
	}
	// The server learns of the consumer's end asynchronously: wait until
	// the stalled stream no longer counts against the limit.
	waitFor(t, "the stalled stream released", func() bool {
		for _, p := range server.Peers() {
			if _, out := netron.StreamCounts(server, p); out != 0 {
				return false
			}
		}
		return true
	})
	var open []*stream.Reader[int]
	for range 2 {
		r, err := rpc.OpenStream[int](ctx, svc, "forever")
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, r)
	}
	_, err := rpc.OpenStream[int](ctx, svc, "forever")
	if !errors.Is(err, rpc.ErrTooManyRequests) || !strings.Contains(err.Error(), "too many streams") {
		t.Fatalf("third stream: %v", err)
	}
	for _, r := range open {
		r.Close()
	}
}

// A producer killed mid-stream ends the stream with the disconnect error
// on the consumer: not a clean end, not a timeout (which would be
// ErrInactive or the context's deadline).
func TestStreamProducerKilled(t *testing.T) {
	cmd, url, _ := startChild(t)
	client := startNode(t, netron.Config{ID: "client"})
	ctx := streamCtx(t)
	p, err := client.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := p.Service(ctx, "streamer")
	if err != nil {
		t.Fatal(err)
	}
	r, err := rpc.OpenStream[int](ctx, svc, "forever")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for range 1000 {
		if _, err := r.Recv(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var end error
	for end == nil {
		_, end = r.Recv(ctx)
	}
	t.Logf("stream ended %v after the kill: %v", time.Since(killed), end)
	if !errors.Is(end, netron.ErrPeerDisconnected) || !errors.Is(r.Err(), netron.ErrPeerDisconnected) {
		t.Fatalf("end %v, Err %v", end, r.Err())
	}
}

// A consumer that disappears mid-stream (its TCP connection dropped, no
// close frame) cancels its producer.
func TestStreamConsumerKilled(t *testing.T) {
	s, server, _, _ := streamPair(t, netron.Config{})
	raw := dialRaw(t, server.URL(), "raw-client", false)
	call := append([]byte{0, 0, 0, 1, 0x43}, mustMarshal(t, []any{"streamer@1.0.0", "forever"})...)
	raw.send(call)
	if p := raw.recv(); p.ID != 1 || p.Flags != 0x03 {
		t.Fatalf("reply %+v", p)
	}
	for range 10 {
		if p := raw.recv(); p.Type() != 5 {
			t.Fatalf("chunk %+v", p)
		}
	}
	raw.ws.CloseNow()
	select {
	case <-s.stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("the producer of a dead consumer is still running")
	}
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := wire.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
