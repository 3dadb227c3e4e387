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
	if ev := <-ch; ev.Kind != NodeJoined || ev.Node.ID != "a" {
		t.Fatalf("initial event %v %s", ev.Kind, ev.Node.ID)
	}
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
