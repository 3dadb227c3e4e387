package bus_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testCtx returns a context that ends with the test, or after 30 s.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// recv receives one value from ch, failing the test if none comes within
// 10 s or ch is closed.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatal("channel closed, want a value")
		}
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a value")
	}
	panic("unreachable")
}

// recvClosed fails the test unless ch is closed (after draining nothing)
// within 10 s.
func recvClosed[T any](t *testing.T, ch <-chan T) {
	t.Helper()
	select {
	case v, ok := <-ch:
		if ok {
			t.Fatalf("got %v, want closed channel", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the channel to close")
	}
}

// recorder is a slog.Handler that keeps every record.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, rec.Clone())
	r.mu.Unlock()
	return nil
}

func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// count returns how many records at level have a message containing sub.
func (r *recorder) count(level slog.Level, sub string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.recs {
		if rec.Level == level && strings.Contains(rec.Message, sub) {
			n++
		}
	}
	return n
}

// attr returns the value of attribute key of the last record whose message
// contains sub.
func (r *recorder) attr(sub, key string) (slog.Value, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.recs) - 1; i >= 0; i-- {
		if !strings.Contains(r.recs[i].Message, sub) {
			continue
		}
		var v slog.Value
		found := false
		r.recs[i].Attrs(func(a slog.Attr) bool {
			if a.Key == key {
				v, found = a.Value, true
				return false
			}
			return true
		})
		return v, found
	}
	return slog.Value{}, false
}
