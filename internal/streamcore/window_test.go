package streamcore_test

import (
	"context"
	"testing"

	"github.com/netron-go/netron/internal/streamcore"
)

// buffered runs a producer of 8 KiB chunks and a consumer that first takes
// keep chunks, then takes nothing: it returns how many chunks the
// producer got ahead once it is blocked, i.e. how much the (possibly
// grown) window let it queue. Without slow the consumer keeps up: the
// producer sends each of the first keep chunks once the consumer has
// taken the one before (in lock step, so the consumer keeps up however
// the goroutines are scheduled), then as fast as credit allows. With
// slow, the producer always sends as fast as credit allows and the
// consumer waits until it is blocked before taking anything. Blocked is
// the consumer's view (streamcore.Stalled): every byte granted was used and
// has arrived, not a producer quiet for a while.
func buffered(t *testing.T, keep int, slow bool, opts ...streamcore.Option) int64 {
	t.Helper()
	server, client := pair(t, true, opts...)
	o, err := server.m.NewOutbound(server.conn, true)
	if err != nil {
		t.Fatal(err)
	}
	in, err := client.m.Accept(client.conn, o.Reference())
	if err != nil {
		t.Fatal(err)
	}
	w, r := newWriter[[]byte](o), newReader[[]byte](context.Background(), in)
	t.Cleanup(func() { r.Close(); o.Close(nil) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	taken := make(chan struct{})
	lockStep := keep
	if slow {
		lockStep = 0
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		chunk := make([]byte, 8<<10)
		for i := 0; ctx.Err() == nil; i++ {
			if i > 0 && i <= lockStep {
				select {
				case <-taken:
				case <-ctx.Done():
					return
				}
			}
			if err := w.Send(ctx, chunk); err != nil {
				return
			}
		}
	}()
	stalled := func() {
		t.Helper()
		waitFor(t, "the producer to use up its credit", func() bool {
			return streamcore.Stalled(client.m, client.conn, o.Reference())
		})
	}
	if slow {
		stalled() // the queue is full before the consumer takes anything
	}
	for range keep {
		if _, err := r.Recv(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if !slow {
			taken <- struct{}{}
		}
	}
	stalled()
	ahead := int64(streamcore.Queued(client.m, client.conn, o.Reference()))
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
		ahead := buffered(t, 400, false, streamcore.WithWindow(window), streamcore.WithMaxWindow(8*window))
		t.Logf("%d chunks ahead (window %d chunks)", ahead, perWindow)
		// A chunk may be sent while credit is positive: n bytes of credit
		// let n/chunk chunks go, plus one.
		if most := int64(8*window/chunk) + 1; ahead <= perWindow+1 || ahead > most {
			t.Fatalf("producer %d chunks ahead; want more than the window (%d) and at most 8 windows (%d)", ahead, perWindow+1, most)
		}
	})
	t.Run("growth off", func(t *testing.T) {
		if ahead := buffered(t, 400, false, streamcore.WithWindow(window), streamcore.WithMaxWindow(window)); ahead > perWindow+1 {
			t.Fatalf("producer %d chunks ahead; want at most the window (%d)", ahead, perWindow+1)
		}
	})
	t.Run("behind", func(t *testing.T) {
		// Takes half a window from a full queue: every grant is made
		// with chunks still queued.
		if ahead := buffered(t, int(perWindow/2), true, streamcore.WithWindow(window)); ahead > perWindow+1 {
			t.Fatalf("producer %d chunks ahead; want at most the window (%d)", ahead, perWindow+1)
		}
	})
}
