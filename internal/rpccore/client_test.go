package rpccore

import (
	"testing"
	"testing/synctest"
	"time"
)

// Packet ids wrap after 2³²: a request still pending when its id comes
// round again keeps it, and the new request takes the next free id. A
// request that gives up removes only its own entry.
func TestPendingIDsAfterWrap(t *testing.T) {
	ps := &pendingSet{calls: make(map[uint32]pending)}
	ids := []uint32{7, 8, 7, 8, 9}
	next := func() uint32 { id := ids[0]; ids = ids[1:]; return id }
	old1, old2, fresh := make(chan response, 1), make(chan response, 1), make(chan response, 1)
	if id, ok := ps.reserve(next, old1, time.Time{}); !ok || id != 7 {
		t.Fatalf("first: %d %v", id, ok)
	}
	if id, ok := ps.reserve(next, old2, time.Time{}); !ok || id != 8 {
		t.Fatalf("second: %d %v", id, ok)
	}
	// The counter wrapped: 7 and 8 again, both still pending.
	id, ok := ps.reserve(next, fresh, time.Time{})
	if !ok || id != 9 {
		t.Fatalf("after the wrap: id %d (%v), want 9, the first free one", id, ok)
	}
	if ps.calls[7].ch != old1 || ps.calls[8].ch != old2 || ps.calls[9].ch != fresh {
		t.Fatal("a pending request lost its entry")
	}
	c := &Client{}
	c.forget(ps, 9, old1) // a stale channel removes nothing
	if ps.calls[9].ch != fresh {
		t.Fatal("forget with another request's channel removed its entry")
	}
	c.forget(ps, 7, old1)
	if _, ok := ps.calls[7]; ok {
		t.Fatal("forget did not remove its own entry")
	}
	ps.closed = true
	if _, ok := ps.reserve(func() uint32 { return 1 }, fresh, time.Time{}); ok {
		t.Fatal("reserve on a closed connection")
	}
}

// One timer per connection times out its calls: each call gets
// errNoResponse once its deadline has passed, not before, and calls
// without a deadline are left alone. It runs in a synctest bubble: the
// deadlines are on the bubble's clock, so a loaded machine cannot make
// the earlier and the later one pass together.
func TestPendingSweep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := &pendingSet{calls: make(map[uint32]pending)}
		id := uint32(0)
		next := func() uint32 { id++; return id }
		start := time.Now()
		late, early, never := make(chan response, 1), make(chan response, 1), make(chan response, 1)
		// The later deadline first: the sweep must be moved earlier.
		lateID, _ := ps.reserve(next, late, start.Add(200*time.Millisecond))
		ps.reserve(next, early, start.Add(50*time.Millisecond))
		ps.reserve(next, never, time.Time{})
		wait := func(ch chan response, at time.Duration) {
			t.Helper()
			select {
			case r := <-ch:
				if r.err != errNoResponse {
					t.Fatalf("got %+v, want errNoResponse", r)
				}
				if d := time.Since(start); d < at {
					t.Fatalf("timed out after %v, before its deadline %v", d, at)
				}
			case <-time.After(at + 5*time.Second):
				t.Fatalf("not timed out %v after its deadline", 5*time.Second)
			}
		}
		wait(early, 50*time.Millisecond)
		select {
		case r := <-late:
			t.Fatalf("the later call timed out with the earlier one: %+v", r)
		default:
		}
		wait(late, 200*time.Millisecond)
		if _, ok := ps.calls[lateID]; ok {
			t.Fatal("a timed-out call stayed in the set")
		}

		// A deadline taken away (uploads running) and given back.
		start = time.Now()
		ps.setDeadline(3, never, start.Add(time.Hour))
		ps.setDeadline(3, never, time.Time{})
		ps.setDeadline(3, never, start.Add(30*time.Millisecond))
		wait(never, 30*time.Millisecond)

		select {
		case r := <-never:
			t.Fatalf("a second response: %+v", r)
		case <-time.After(100 * time.Millisecond):
		}
	})
}

// With slack, one pass of the sweep fails every call due within the
// slack: calls that keep timing out do not cost a pass each.
func TestPendingSweepBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { // the bubble's clock: reserving 1000 calls takes no time
		ps := &pendingSet{calls: make(map[uint32]pending), slack: 100 * time.Millisecond}
		id := uint32(0)
		next := func() uint32 { id++; return id }
		start := time.Now()
		const n = 1000
		chs := make([]chan response, n)
		deadlines := make([]time.Time, n)
		for i := range n {
			chs[i] = make(chan response, 1)
			deadlines[i] = start.Add(50*time.Millisecond + time.Duration(i)*50*time.Microsecond) // over 50 ms
			ps.reserve(next, chs[i], deadlines[i])
		}
		for i, ch := range chs {
			select {
			case r := <-ch:
				if r.err != errNoResponse {
					t.Fatalf("call %d: got %+v, want errNoResponse", i, r)
				}
				if time.Now().Before(deadlines[i]) {
					t.Fatalf("call %d timed out before its deadline", i)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("call %d not timed out", i)
			}
		}
		ps.mu.Lock()
		sweeps := ps.sweeps
		ps.mu.Unlock()
		if sweeps != 1 {
			t.Fatalf("%d passes of the sweep for %d calls due within its slack, want 1", sweeps, n)
		}
	})
}
