package main

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The measuring harness every system goes through: the same loops, the
// same clocks and the same allocation counting, so that the only thing that
// differs between two columns of the table is the system under test.

// addFunc is one request/reply round trip: two int64 in, their sum out.
type addFunc func(ctx context.Context, a, b int64) (int64, error)

// seqResult is a sequential round-trip figure.
type seqResult struct {
	calls    int
	elapsed  time.Duration
	p50, p99 time.Duration
	allocs   float64 // heap allocations per round trip, every goroutine of the process
	bytes    float64 // heap bytes per round trip
	// quantiles are the latencies at latencyPPM (the latency chart).
	quantiles []time.Duration
}

// latencyPPM are the percentiles, in parts per million, at which a
// sequential run keeps its latencies for the chart: dense toward the tail,
// up to 99.99 %. 50 % and 99 % are among them, so that the chart's p50 and
// p99 are the table's.
var latencyPPM = []int64{
	0, 100000, 200000, 300000, 400000, 500000, 600000, 700000, 750000, 800000, 850000,
	900000, 920000, 940000, 950000, 960000, 970000, 980000, 985000,
	990000, 992000, 994000, 995000, 996000, 997000, 998000, 998500,
	999000, 999200, 999400, 999500, 999600, 999700, 999800, 999850, 999900,
}

// quantile is the latency at ppm parts per million of sorted: the same
// index as p50 (len/2) and p99 (len*99/100) for 500,000 and 990,000.
func quantile(sorted []time.Duration, ppm int64) time.Duration {
	return sorted[min(int64(len(sorted))*ppm/1e6, int64(len(sorted)-1))]
}

func (r seqResult) rate() float64 { return float64(r.calls) / r.elapsed.Seconds() }

// memSnap is a pair of allocation counters.
type memSnap struct{ mallocs, bytes uint64 }

func snapMem() memSnap {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memSnap{m.Mallocs, m.TotalAlloc}
}

// warmup runs call for a little while (a quarter of d, at most 500 ms) so
// that pools, buffers and the connection are warm before the measure.
func warmup(ctx context.Context, d time.Duration, call addFunc) error {
	end := time.Now().Add(min(d/4, 500*time.Millisecond))
	for i := int64(0); time.Now().Before(end); i++ {
		if _, err := call(ctx, i, 1); err != nil {
			return err
		}
	}
	return nil
}

// maxLatencies bounds the latencies a sequential run records (16 MiB).
const maxLatencies = 1 << 21

// measureSequential makes round trips one after the other for d and
// records the latency of each one. Allocations are counted over the whole
// process (client and server run in it), divided by the round trips.
func measureSequential(ctx context.Context, d time.Duration, call addFunc) (seqResult, error) {
	if err := warmup(ctx, d, call); err != nil {
		return seqResult{}, err
	}
	lat := make([]time.Duration, 0, maxLatencies)
	runtime.GC()
	m0 := snapMem()
	start := time.Now()
	deadline := start.Add(d)
	n := 0
	for {
		a := int64(n)
		t0 := time.Now()
		sum, err := call(ctx, a, 1)
		t1 := time.Now()
		if err != nil {
			return seqResult{}, err
		}
		if sum != a+1 {
			return seqResult{}, fmt.Errorf("add(%d, 1) = %d", a, sum)
		}
		if len(lat) < cap(lat) {
			lat = append(lat, t1.Sub(t0))
		}
		n++
		if t1.After(deadline) {
			break
		}
	}
	elapsed := time.Since(start)
	m1 := snapMem()
	slices.Sort(lat)
	q := make([]time.Duration, len(latencyPPM))
	for i, ppm := range latencyPPM {
		q[i] = quantile(lat, ppm)
	}
	return seqResult{
		calls:     n,
		elapsed:   elapsed,
		p50:       lat[len(lat)/2],
		p99:       lat[len(lat)*99/100],
		allocs:    float64(m1.mallocs-m0.mallocs) / float64(n),
		bytes:     float64(m1.bytes-m0.bytes) / float64(n),
		quantiles: q,
	}, nil
}

// rateResult is a throughput figure: operations (or bytes) per second.
type rateResult struct {
	count   int64
	elapsed time.Duration
	allocs  float64 // per operation, when measured
	note    string
}

func (r rateResult) rate() float64 { return float64(r.count) / r.elapsed.Seconds() }

// measureConcurrent runs callers goroutines making round trips on the same
// call (so the same connection) for d.
func measureConcurrent(ctx context.Context, d time.Duration, callers int, call addFunc) (rateResult, error) {
	if err := warmup(ctx, d, call); err != nil {
		return rateResult{}, err
	}
	var (
		stop  atomic.Bool
		total atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	runtime.GC()
	m0 := snapMem()
	start := time.Now()
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	for g := range callers {
		wg.Go(func() {
			n := int64(0)
			for i := int64(g) << 32; !stop.Load(); i++ {
				sum, err := call(ctx, i, 1)
				if err == nil && sum != i+1 {
					err = fmt.Errorf("add(%d, 1) = %d", i, sum)
				}
				if err != nil {
					errMu.Lock()
					if first == nil {
						first = err
					}
					errMu.Unlock()
					stop.Store(true)
					break
				}
				n++
			}
			total.Add(n)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	m1 := snapMem()
	if first != nil {
		return rateResult{}, first
	}
	n := total.Load()
	return rateResult{count: n, elapsed: elapsed, allocs: float64(m1.mallocs-m0.mallocs) / float64(n)}, nil
}

// window is the flow control of the one-way figures (events, bus): the
// sender takes a credit before each message and the receiver gives it back,
// so that at most size messages are in flight whatever the system. Without
// it a fast sender either fills memory (gochannel starts a goroutine per
// message) or makes the system drop (Netron's per-peer event queue and
// NATS's slow-consumer limit both drop rather than wait). Every system of a
// figure gets the same window, and so the same delivery guarantee: the
// receiver counts every message and checks its sequence number, a lost
// message fails the measure (its credit never comes back) and one out of
// order is counted.
type window struct {
	credit   chan struct{}
	stalled  chan struct{} // closed when the receiver stopped giving credits back
	received atomic.Int64
	disorder atomic.Int64 // messages that arrived out of order
	next     atomic.Int64 // next expected sequence number (one receiver)
}

func newWindow(size int) *window {
	return &window{credit: make(chan struct{}, size), stalled: make(chan struct{})}
}

// errLost is what a sender gets when messages in flight never arrive.
var errLost = fmt.Errorf("messages lost: the window stayed full for %v", stallTimeout)

// stallTimeout is how long a full window may stay without a delivery
// before the measure fails: a generous bound, not a guess at speed.
const stallTimeout = 10 * time.Second

// take waits for a credit before a send.
func (w *window) take() error {
	select {
	case w.credit <- struct{}{}:
		return nil
	case <-w.stalled:
		return errLost
	}
}

// watch closes w.stalled when the window stays full without a delivery for
// stallTimeout, so that a sender waiting for lost messages' credits fails
// instead of hanging; it returns when done is closed.
func (w *window) watch(done <-chan struct{}) {
	t := time.NewTicker(stallTimeout / 20)
	defer t.Stop()
	last, since := w.received.Load(), time.Now()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			if n := w.received.Load(); n != last || len(w.credit) < cap(w.credit) {
				last, since = n, now
			} else if now.Sub(since) >= stallTimeout {
				close(w.stalled)
				return
			}
		}
	}
}

// got is called by the receiver for each message, with its sequence
// number (or -1 when the system does not carry one).
func (w *window) got(seq int64) {
	if seq >= 0 {
		if seq != w.next.Load() {
			w.disorder.Add(1)
		}
		w.next.Store(seq + 1)
	}
	w.received.Add(1)
	<-w.credit
}

// wait waits until the receiver has seen sent messages, or timeout.
func (w *window) wait(sent int64, timeout time.Duration) error {
	end := time.Now().Add(timeout)
	for w.received.Load() < sent {
		if time.Now().After(end) {
			return fmt.Errorf("%d of %d messages arrived within %v", w.received.Load(), sent, timeout)
		}
		time.Sleep(50 * time.Microsecond)
	}
	return nil
}

// windowSize is the in-flight bound of the one-way figures: half of the
// per-peer event queue the Netron server is given (1024), as in the
// repository's own event benchmark.
const windowSize = 512

// measureOneWay sends with send(seq) for d under a window and returns the
// messages per second delivered, from the first send to the last delivery.
// send must arrange for w.got to be called on delivery.
func measureOneWay(d time.Duration, w *window, send func(seq int64) error) (rateResult, error) {
	done := make(chan struct{})
	defer close(done)
	go w.watch(done)
	// Warm up with the same loop.
	var seq int64
	warmEnd := time.Now().Add(min(d/4, 500*time.Millisecond))
	for time.Now().Before(warmEnd) {
		if err := w.take(); err != nil {
			return rateResult{}, fmt.Errorf("warm-up: %w", err)
		}
		if err := send(seq); err != nil {
			return rateResult{}, err
		}
		seq++
	}
	if err := w.wait(seq, stallTimeout); err != nil {
		return rateResult{}, fmt.Errorf("warm-up: %w", err)
	}
	runtime.GC()
	m0 := snapMem()
	base := w.received.Load()
	start := time.Now()
	deadline := start.Add(d)
	var sent int64
	for sent&63 != 0 || time.Now().Before(deadline) {
		if err := w.take(); err != nil {
			return rateResult{}, err
		}
		if err := send(seq); err != nil {
			return rateResult{}, err
		}
		seq++
		sent++
	}
	if err := w.wait(base+sent, stallTimeout); err != nil {
		return rateResult{}, err
	}
	elapsed := time.Since(start)
	m1 := snapMem()
	r := rateResult{count: sent, elapsed: elapsed, allocs: float64(m1.mallocs-m0.mallocs) / float64(sent)}
	if n := w.disorder.Load(); n > 0 {
		r.note = fmt.Sprintf("%d out of order", n)
	}
	return r, nil
}

// streamFunc moves 64 KiB chunks in one direction for about d and reports
// the payload bytes that reached the consumer and the time from the start
// to the consumer's end.
type streamFunc func(ctx context.Context, d time.Duration) (bytes int64, elapsed time.Duration, err error)

const chunkSize = 64 << 10

// measureStream runs a short warm-up and then the measure.
func measureStream(ctx context.Context, d time.Duration, f streamFunc) (rateResult, error) {
	if _, _, err := f(ctx, min(d/4, 500*time.Millisecond)); err != nil {
		return rateResult{}, fmt.Errorf("warm-up: %w", err)
	}
	runtime.GC()
	m0 := snapMem()
	n, elapsed, err := f(ctx, d)
	if err != nil {
		return rateResult{}, err
	}
	m1 := snapMem()
	chunks := max(n/chunkSize, 1)
	return rateResult{count: n, elapsed: elapsed, allocs: float64(m1.mallocs-m0.mallocs) / float64(chunks)}, nil
}
