package stream_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netron-go/netron/stream"
)

// buffered runs a producer of 8 KiB chunks as fast as credit allows and
// a consumer that first takes keep chunks as they come, then takes
// nothing: it returns how many chunks the producer got ahead once it is
// blocked, i.e. how much the (possibly grown) window let it queue.
func buffered(t *testing.T, keep int, slow bool, opts ...stream.Option) int64 {
	t.Helper()
	server, client := pair(t, true, opts...)
	w, r := open[[]byte](t, server, client, true)
	var sent atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		chunk := make([]byte, 8<<10)
		for ctx.Err() == nil {
			if err := w.Send(ctx, chunk); err != nil {
				return
			}
			sent.Add(1)
		}
	}()
	stalled := func() {
		t.Helper()
		last, since := sent.Load(), time.Now()
		for time.Since(since) < 100*time.Millisecond {
			time.Sleep(5 * time.Millisecond)
			if n := sent.Load(); n != last {
				last, since = n, time.Now()
			}
		}
	}
	if slow {
		stalled() // the queue is full before the consumer takes anything
	}
	for range keep {
		if _, err := r.Recv(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	stalled()
	ahead := sent.Load() - int64(keep)
	cancel()
	r.Close()
	<-done
	return ahead
}

// A consumer that keeps up lets the window grow, up to its bound; one that
// is behind when it grants (or a bound at the window) keeps it where it
// started. Either way what the producer gets ahead is bounded.
func TestWindowGrowsOnlyWhileConsumerKeepsUp(t *testing.T) {
	const window, chunk = 64 << 10, 8<<10 + 13
	perWindow := int64(window / chunk)
	t.Run("keeps up", func(t *testing.T) {
		ahead := buffered(t, 400, false, stream.WithWindow(window), stream.WithMaxWindow(8*window))
		t.Logf("%d chunks ahead (window %d chunks)", ahead, perWindow)
		// A chunk may be sent while credit is positive: n bytes of credit
		// let n/chunk chunks go, plus one.
		if most := int64(8*window/chunk) + 1; ahead <= perWindow+1 || ahead > most {
			t.Fatalf("producer %d chunks ahead; want more than the window (%d) and at most 8 windows (%d)", ahead, perWindow+1, most)
		}
	})
	t.Run("growth off", func(t *testing.T) {
		if ahead := buffered(t, 400, false, stream.WithWindow(window), stream.WithMaxWindow(window)); ahead > perWindow+1 {
			t.Fatalf("producer %d chunks ahead; want at most the window (%d)", ahead, perWindow+1)
		}
	})
	t.Run("behind", func(t *testing.T) {
		// Takes half a window from a full queue: every grant is made
		// with chunks still queued.
		if ahead := buffered(t, int(perWindow/2), true, stream.WithWindow(window)); ahead > perWindow+1 {
			t.Fatalf("producer %d chunks ahead; want at most the window (%d)", ahead, perWindow+1)
		}
	})
}
