package discovery_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/netron-go/netron/discovery"
)

func rev(inc int64, seq uint64) discovery.Revision {
	return discovery.Revision{Incarnation: inc, Seq: seq}
}

func TestViewRevisions(t *testing.T) {
	v := discovery.NewView()
	now := time.Now()
	n := discovery.NodeInfo{ID: "n", Address: "a"}
	if k := v.Put(n, time.Second, rev(1, 2), now); k != discovery.NodeJoined {
		t.Fatalf("first Put = %v", k)
	}
	old := n
	old.Address = "stale"
	if k := v.Put(old, time.Second, rev(1, 1), now); k != 0 {
		t.Fatalf("older revision applied: %v", k)
	}
	if got, _ := v.Get("n"); got.Address != "a" {
		t.Fatalf("stale Put overwrote: %+v", got)
	}
	if v.Remove("n", rev(1, 1), now) {
		t.Fatal("Remove with an older revision removed the node")
	}
	if !v.Remove("n", rev(1, 3), now) {
		t.Fatal("Remove failed")
	}
	// A late copy of the join must not resurrect it...
	if k := v.Put(n, time.Second, rev(1, 2), now); k != 0 {
		t.Fatalf("replayed join after leave applied: %v", k)
	}
	// ...but a newer registration does.
	if k := v.Put(n, time.Second, rev(1, 4), now); k != discovery.NodeJoined {
		t.Fatalf("re-registration after leave: %v", k)
	}
	// A leave seen before the join it follows keeps the join out.
	if v.Remove("m", rev(5, 2), now) {
		t.Fatal("Remove of an unknown node reported true")
	}
	if k := v.Put(discovery.NodeInfo{ID: "m"}, time.Second, rev(5, 1), now); k != 0 {
		t.Fatalf("join older than a seen leave applied: %v", k)
	}
}

func TestViewExpiry(t *testing.T) {
	v := discovery.NewView()
	t0 := time.Now()
	v.Put(discovery.NodeInfo{ID: "a"}, 100*time.Millisecond, rev(1, 1), t0)
	v.Put(discovery.NodeInfo{ID: "b"}, 300*time.Millisecond, rev(1, 1), t0)
	if next, ok := v.NextExpiry(); !ok || !next.Equal(t0.Add(100*time.Millisecond)) {
		t.Fatalf("NextExpiry = %v, %v", next, ok)
	}
	if gone := v.Expire(t0.Add(100 * time.Millisecond)); len(gone) != 0 {
		t.Fatalf("expired at exactly the TTL: %v", gone)
	}
	gone := v.Expire(t0.Add(150 * time.Millisecond))
	if len(gone) != 1 || gone[0].ID != "a" {
		t.Fatalf("Expire = %v, want [a]", gone)
	}
	v.Touch("b", t0.Add(250*time.Millisecond))
	v.Touch("b", t0) // never moves back
	if gone := v.Expire(t0.Add(500 * time.Millisecond)); len(gone) != 0 {
		t.Fatalf("touched node expired: %v", gone)
	}
	// Expiry leaves no tombstone: the same revision comes back.
	if k := v.Put(discovery.NodeInfo{ID: "a"}, time.Second, rev(1, 1), t0.Add(time.Second)); k != discovery.NodeJoined {
		t.Fatalf("silent node's return: %v", k)
	}
}

func TestWatchGroupDeliversEveryChangeToSlowConsumer(t *testing.T) {
	v := discovery.NewView()
	g := v.NewWatchGroup()
	defer g.Close()
	now := time.Now()
	v.Put(discovery.NodeInfo{ID: "known", Address: "1"}, time.Minute, rev(1, 1), now)
	ch, err := g.Watch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-ch; ev.Kind != discovery.NodeJoined || ev.Node.ID != "known" {
		t.Fatalf("initial event %v %s", ev.Kind, ev.Node.ID)
	}
	// While the consumer is not reading:
	v.Put(discovery.NodeInfo{ID: "known", Address: "2"}, time.Minute, rev(1, 2), now)
	v.Put(discovery.NodeInfo{ID: "known", Address: "3"}, time.Minute, rev(1, 3), now)
	v.Put(discovery.NodeInfo{ID: "flash"}, time.Minute, rev(1, 1), now)
	v.Remove("flash", rev(1, 2), now)
	v.Remove("known", rev(1, 4), now)
	v.Put(discovery.NodeInfo{ID: "known", Address: "3"}, time.Minute, rev(2, 1), now)
	want := []string{
		"updated known 2", "updated known 3", "joined flash ", "left flash ",
		"left known 3", "joined known 3",
	}
	for i, w := range want {
		ev := <-ch
		if got := fmt.Sprintf("%v %s %s", ev.Kind, ev.Node.ID, ev.Node.Address); got != w || ev.Missed != 0 {
			t.Fatalf("event %d = %q (missed %d), want %q", i, got, ev.Missed, w)
		}
	}
	g.Close()
	if _, ok := <-ch; ok {
		t.Fatal("channel open after Close")
	}
	if _, err := g.Watch(context.Background()); err == nil {
		t.Fatal("Watch after Close succeeded")
	}
}
