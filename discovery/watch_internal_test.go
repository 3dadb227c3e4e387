package discovery

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// A consumer more than the watch's buffer behind is resynchronised: it
// gets what was queued, then one event per node that differs from what it
// knows, the first with the count of the changes it did not get.
func TestWatchOverflowResyncs(t *testing.T) {
	v := NewView()
	g := v.NewWatchGroup()
	g.limit = 4
	defer g.Close()
	now := time.Now()
	rev := func(seq uint64) Revision { return Revision{Incarnation: 1, Seq: seq} }
	v.Put(NodeInfo{ID: "a", Address: "1"}, time.Minute, rev(1), now)
	ch, err := g.Watch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	held(t, v)
	// Not reading: 4 changes are queued, the next 5 are counted.
	for i := range 9 {
		v.Put(NodeInfo{ID: "a", Address: fmt.Sprint(i + 2)}, time.Minute, rev(uint64(i+2)), now)
	}
	v.Put(NodeInfo{ID: "b"}, time.Minute, rev(1), now) // missed: joins
	v.Put(NodeInfo{ID: "c"}, time.Minute, rev(1), now) // missed: joins and leaves
	v.Remove("c", rev(2), now)                         // missed
	w := g.v.watcherForTest(t)
	w.mu.Lock()
	queued, missed := len(w.queue), w.missed
	w.mu.Unlock()
	if queued != 4 || missed != 8 {
		t.Fatalf("queued %d, missed %d; want 4 and 8", queued, missed)
	}
	if ev := <-ch; ev.Kind != NodeJoined || ev.Node.ID != "a" {
		t.Fatalf("initial event %v %s", ev.Kind, ev.Node.ID)
	}
	for i := range 4 {
		ev := <-ch
		if ev.Kind != NodeUpdated || ev.Node.Address != fmt.Sprint(i+2) || ev.Missed != 0 {
			t.Fatalf("queued event %d: %v %+v missed %d", i, ev.Kind, ev.Node, ev.Missed)
		}
	}
	// The resync, in id order: a to its current address, b joined; c is
	// not mentioned (it came and went).
	ev := <-ch
	if ev.Kind != NodeUpdated || ev.Node.ID != "a" || ev.Node.Address != "10" || ev.Missed != 8 {
		t.Fatalf("first resync event: %v %+v missed %d", ev.Kind, ev.Node, ev.Missed)
	}
	ev = <-ch
	if ev.Kind != NodeJoined || ev.Node.ID != "b" || ev.Missed != 0 {
		t.Fatalf("second resync event: %v %+v missed %d", ev.Kind, ev.Node, ev.Missed)
	}
	// Back to one event per change.
	v.Remove("b", rev(2), now)
	if ev := <-ch; ev.Kind != NodeLeft || ev.Node.ID != "b" || ev.Missed != 0 {
		t.Fatalf("after the resync: %v %+v missed %d", ev.Kind, ev.Node, ev.Missed)
	}
}

// held waits until the goroutine of v's only watch has taken every queued
// event and waits to hand one to the consumer, which is not reading: from
// then on, changes queue up to the watch's limit, whatever the pace of
// that goroutine. The watch must have an event to hand over.
func held(t *testing.T, v *View) {
	t.Helper()
	w := v.watcherForTest(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		w.mu.Lock()
		n := len(w.queue)
		w.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the watch's goroutine has not taken its first event within 30 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// watcherForTest returns the only watcher of v.
func (v *View) watcherForTest(t *testing.T) *watcher {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.watchers) != 1 {
		t.Fatalf("%d watchers", len(v.watchers))
	}
	for w := range v.watchers {
		return w
	}
	return nil
}

// A consumer that fell behind while the changes cancelled out (a node
// joined and left) gets the count on a ChangesMissed event of its own,
// never on a later, unrelated change.
func TestWatchOverflowWithNothingChanged(t *testing.T) {
	v := NewView()
	g := v.NewWatchGroup()
	g.limit = 2
	defer g.Close()
	now := time.Now()
	rev := func(seq uint64) Revision { return Revision{Incarnation: 1, Seq: seq} }
	v.Put(NodeInfo{ID: "s"}, time.Minute, rev(1), now) // the event the watch holds
	ch, err := g.Watch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	held(t, v)
	for i := range 3 { // 2 queued, then 4 counted
		id := fmt.Sprint("n", i)
		v.Put(NodeInfo{ID: id}, time.Minute, rev(1), now)
		v.Remove(id, rev(2), now)
	}
	for _, want := range []string{"joined s 0", "joined n0 0", "left n0 0", "missed  4"} {
		ev := <-ch
		if got := fmt.Sprintf("%v %s %d", ev.Kind, ev.Node.ID, ev.Missed); got != want {
			t.Fatalf("event %q, want %q", got, want)
		}
	}
	v.Put(NodeInfo{ID: "later"}, time.Minute, rev(1), now)
	if ev := <-ch; ev.Kind != NodeJoined || ev.Node.ID != "later" || ev.Missed != 0 {
		t.Fatalf("the next change: %v %s missed %d", ev.Kind, ev.Node.ID, ev.Missed)
	}
}

// View.Resync: the first change it causes carries the count of the
// changes it replaces; with no change, a ChangesMissed event carries it;
// nodes drop says are gone leave; nothing else comes between.
func TestViewResync(t *testing.T) {
	v := NewView()
	g := v.NewWatchGroup()
	defer g.Close()
	now := time.Now()
	rev := func(seq uint64) Revision { return Revision{Incarnation: 1, Seq: seq} }
	v.Put(NodeInfo{ID: "a"}, time.Minute, rev(1), now)
	v.Put(NodeInfo{ID: "b"}, time.Minute, rev(1), now)
	v.Put(NodeInfo{ID: "own"}, time.Minute, rev(1), now)
	ch, err := g.Watch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		<-ch
	}
	next := func() string {
		ev := <-ch
		return fmt.Sprintf("%v %s %d", ev.Kind, ev.Node.ID, ev.Missed)
	}
	// a unchanged, b gone, c new; own is kept although absent.
	v.Resync([]Announcement{
		{Node: NodeInfo{ID: "a"}, TTL: time.Minute, Rev: rev(1), Seen: now},
		{Node: NodeInfo{ID: "c"}, TTL: time.Minute, Rev: rev(1), Seen: now},
	}, 7, func(id string) bool { return id != "own" }, now)
	for _, want := range []string{"joined c 7", "left b 0"} {
		if got := next(); got != want {
			t.Fatalf("event %q, want %q", got, want)
		}
	}
	// Nothing differs: the count on an event of its own.
	v.Resync([]Announcement{{Node: NodeInfo{ID: "a"}, TTL: time.Minute, Rev: rev(1), Seen: now}}, 3, nil, now)
	if got := next(); got != "missed  3" {
		t.Fatalf("event %q, want the count alone", got)
	}
	// Nothing missed, nothing differs: no event at all; the next change
	// carries no count.
	v.Resync(nil, 0, nil, now)
	v.Put(NodeInfo{ID: "d"}, time.Minute, rev(1), now)
	if got := next(); got != "joined d 0" {
		t.Fatalf("event %q", got)
	}
	if got := fmt.Sprint(ids(v.Nodes())); got != "[a c d own]" {
		t.Fatalf("nodes %s", got)
	}
}

// A resync that reaches a watcher in overflow adds its count to what the
// watcher counts; the watcher's own resync then carries both.
func TestViewResyncDuringOverflow(t *testing.T) {
	v := NewView()
	g := v.NewWatchGroup()
	g.limit = 1
	defer g.Close()
	now := time.Now()
	rev := func(seq uint64) Revision { return Revision{Incarnation: 1, Seq: seq} }
	v.Put(NodeInfo{ID: "s"}, time.Minute, rev(1), now) // the event the watch holds
	ch, err := g.Watch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	held(t, v)
	v.Put(NodeInfo{ID: "a"}, time.Minute, rev(1), now) // queued
	v.Put(NodeInfo{ID: "b"}, time.Minute, rev(1), now) // overflow: 1
	v.Resync([]Announcement{{Node: NodeInfo{ID: "c"}, TTL: time.Minute, Rev: rev(1), Seen: now}}, 5, nil, now)
	for _, want := range []string{"joined s 0", "joined a 0", "joined b 7", "joined c 0"} {
		ev := <-ch
		if got := fmt.Sprintf("%v %s %d", ev.Kind, ev.Node.ID, ev.Missed); got != want {
			t.Fatalf("event %q, want %q", got, want)
		}
	}
}

func ids(ns []NodeInfo) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.ID
	}
	return out
}
