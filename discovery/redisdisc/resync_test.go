package redisdisc_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/redisdisc"
	"github.com/netron-go/netron/internal/testredis"
)

// A reader that missed a change (here a leave that was never appended,
// as if trimmed before it was read) sees the next change's number jump,
// re-reads the membership, and drops the node Redis no longer has.
func TestReaderGapResyncs(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	prefix := uniquePrefix(t)
	a, b := newDisc(t, client, prefix), newDisc(t, client, prefix)
	c := newDisc(t, client, prefix, redisdisc.WithTTL(600*time.Millisecond))
	register(t, a, "n1")
	register(t, c, "n2")
	waitListed(t, b, "n1", "n2")
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	// n2 leaves Redis without an entry on the stream; its number is used.
	_, nodes, alive, meta := a.Keys()
	ctx := ctxT(t)
	if err := client.ZRem(ctx, alive, "n2").Err(); err != nil {
		t.Fatal(err)
	}
	client.HDel(ctx, nodes, "n2")
	client.HIncrBy(ctx, meta, "gen", 1)
	before := b.Resyncs()
	register(t, a, "n3")
	waitListed(t, b, "n1", "n3")
	if b.Resyncs() == before {
		t.Fatal("b dropped n2 without a resync")
	}
}

// FLUSHALL under running instances: they notice (the change numbers went
// back), re-read, and announce their nodes again; nobody is reported left.
func TestRedisFlushed(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	prefix := uniquePrefix(t)
	a, b := newDisc(t, client, prefix, noStall...), newDisc(t, client, prefix, noStall...)
	register(t, a, "n1")
	register(t, b, "n2")
	register(t, b, "n3")
	waitListed(t, a, "n1", "n2", "n3")
	ra, rb := record(t, a), record(t, b)
	if err := client.FlushAll(ctxT(t)).Err(); err != nil {
		t.Fatal(err)
	}
	late := func() []string { return listed(t, newDisc(t, client, prefix)) }
	eventually(t, settle, "the nodes announced again", func() string {
		if got := late(); len(got) != 3 {
			return "a new instance lists " + strings.Join(got, " ")
		}
		return ""
	})
	noneLeft(t, client, []*redisdisc.Discovery{a, b}, ra, rb)
	register(t, a, "n4")
	waitListed(t, b, "n1", "n2", "n3", "n4")
}

// take returns the recorder's next n events as "kind id missed" strings
// joined by ", ", waiting up to 30 s for each (a bound, not a guess: they
// pass through the watch's goroutine and the recorder's), then " + more"
// for each event already waiting after them, which the callers' wants
// never have.
func (r *recorder) take(t testing.TB, n int) string {
	t.Helper()
	var out []string
	for len(out) < n {
		select {
		case ev := <-r.evs:
			out = append(out, fmt.Sprintf("%v %s %d", ev.Kind, ev.Node.ID, ev.Missed))
		case <-time.After(30 * time.Second):
			return strings.Join(out, ", ") + " (no more within 30 s)"
		}
	}
	got := strings.Join(out, ", ")
	for {
		select {
		case ev := <-r.evs:
			got += fmt.Sprintf(" + more: %v %s %d", ev.Kind, ev.Node.ID, ev.Missed)
		default:
			return got
		}
	}
}

// cutOff returns a client whose commands all fail while the hook's remain
// is positive, as for an instance that lost its network.
func cutOff(t *testing.T, srv *testredis.Server) (*redis.Client, *failHook) {
	h := &failHook{match: func(redis.Cmder) bool { return true }}
	c := newClient(t, srv)
	c.AddHook(h)
	return c, h
}

func waitHealthy(t *testing.T, d *redisdisc.Discovery, healthy bool) {
	t.Helper()
	eventually(t, settle, fmt.Sprintf("healthy %v", healthy), func() string {
		if d.Healthy() != healthy {
			return "not yet"
		}
		return ""
	})
}

// A watcher whose instance lost Redis for a while (the others did not)
// gets the changes made meanwhile one by one, a node that joined and left
// included: its reader resumes where it was, since the change numbers
// follow on. Before, the recovery always resynced, and the pair was lost
// without being counted.
func TestWatcherGetsTheChurnOfItsOutage(t *testing.T) {
	srv := testredis.Start(t)
	prefix := uniquePrefix(t)
	wc, cut := cutOff(t, srv)
	w := newDisc(t, wc, prefix)
	a := newDisc(t, newClient(t, srv), prefix)
	register(t, a, "n1")
	waitListed(t, w, "n1")
	r := record(t, w)
	if got := <-r.evs; got.Kind != discovery.NodeJoined || got.Node.ID != "n1" {
		t.Fatalf("first event %v %s", got.Kind, got.Node.ID)
	}
	resyncs := w.Resyncs()
	cut.remain.Store(1 << 30)
	waitHealthy(t, w, false)
	eventually(t, settle, "the reader cut off", func() string {
		if cut.readFails.Load() == 0 {
			return "no XREAD failed yet"
		}
		return ""
	})
	register(t, a, "short")
	if err := a.Deregister(ctxT(t), "short"); err != nil {
		t.Fatal(err)
	}
	cut.remain.Store(0)
	waitHealthy(t, w, true)
	register(t, a, "n2")
	waitListed(t, w, "n1", "n2")
	caughtUp(t, newClient(t, srv), w)
	if got, want := r.take(t, 3), "joined short 0, left short 0, joined n2 0"; got != want {
		t.Fatalf("events after the outage: %s; want %s", got, want)
	}
	if w.Resyncs() != resyncs {
		t.Fatalf("%d resyncs; the stream followed on", w.Resyncs()-resyncs)
	}
}

// trimmedWhileAway cuts w off, lets a make the changes of churn, trims the
// stream past w's position, gives w Redis back and has a announce "after":
// w's reader sees the change numbers jump and w resyncs.
func trimmedWhileAway(t *testing.T, churn func(a *redisdisc.Discovery)) (w *redisdisc.Discovery, r *recorder, skipped int64) {
	srv := testredis.Start(t)
	prefix := uniquePrefix(t)
	admin := newClient(t, srv)
	wc, cut := cutOff(t, srv)
	w = newDisc(t, wc, prefix)
	a := newDisc(t, newClient(t, srv), prefix)
	register(t, a, "n1")
	waitListed(t, w, "n1")
	caughtUp(t, admin, w)
	r = record(t, w)
	<-r.evs // n1 joined
	cut.remain.Store(1 << 30)
	waitHealthy(t, w, false)
	// The XREAD in flight at the cut has returned: the reader is cut off.
	eventually(t, settle, "the reader cut off", func() string {
		if cut.readFails.Load() == 0 {
			return "no XREAD failed yet"
		}
		return ""
	})
	before := w.AppliedGen()
	churn(a)
	events, _, _, meta := a.Keys()
	gen, err := admin.HGet(ctxT(t), meta, "gen").Int64()
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.XTrimMaxLen(ctxT(t), events, 0).Err(); err != nil {
		t.Fatal(err)
	}
	cut.remain.Store(0)
	waitHealthy(t, w, true)
	resyncs := w.Resyncs()
	register(t, a, "after")
	caughtUp(t, admin, w)
	eventually(t, settle, "a resync", func() string {
		if w.Resyncs() == resyncs {
			return "none yet"
		}
		return ""
	})
	return w, r, gen - before
}

// A reader that finds the stream trimmed past it resyncs, and the first
// event of the resync carries the number of changes it did not get one by
// one.
func TestResyncReportsWhatItSkipped(t *testing.T) {
	w, r, skipped := trimmedWhileAway(t, func(a *redisdisc.Discovery) {
		for i := range 3 {
			register(t, a, fmt.Sprint("x", i))
		}
		for i := range 3 {
			if err := a.Deregister(ctxT(t), fmt.Sprint("x", i)); err != nil {
				t.Fatal(err)
			}
		}
		register(t, a, "keep")
	})
	waitListed(t, w, "after", "keep", "n1")
	if skipped != 7 {
		t.Fatalf("%d changes while away, want 7", skipped)
	}
	if got, want := r.take(t, 2), "joined after 0, joined keep 7"; got != want {
		t.Fatalf("events: %s; want %s", got, want)
	}
}

// When the changes a resync replaces cancel out, the count arrives on a
// ChangesMissed event of its own.
func TestResyncWithNothingChangedReportsWhatItSkipped(t *testing.T) {
	w, r, skipped := trimmedWhileAway(t, func(a *redisdisc.Discovery) {
		register(t, a, "x")
		if err := a.Deregister(ctxT(t), "x"); err != nil {
			t.Fatal(err)
		}
	})
	waitListed(t, w, "after", "n1")
	if got, want := r.take(t, 2), fmt.Sprintf("joined after 0, missed  %d", skipped); got != want {
		t.Fatalf("events: %s; want %s", got, want)
	}
}

// A resync whose snapshot fails is tried again at the next heartbeat, and
// the stream reader runs again after it: later changes arrive through the
// stream, with no further resync.
func TestFailedResyncIsRetried(t *testing.T) {
	srv := testredis.Start(t)
	prefix := uniquePrefix(t)
	admin := newClient(t, srv)
	bc := newClient(t, srv)
	snap := &failHook{match: isScript(redisdisc.SnapshotScriptSHA)}
	bc.AddHook(snap)
	a, b := newDisc(t, admin, prefix), newDisc(t, bc, prefix)
	register(t, a, "n1")
	waitListed(t, b, "n1")
	// A gap: a change number used without a stream entry.
	_, _, _, meta := a.Keys()
	if err := admin.HIncrBy(ctxT(t), meta, "gen", 1).Err(); err != nil {
		t.Fatal(err)
	}
	snap.remain.Store(1)
	hits := snap.hits.Load()
	resyncs := b.Resyncs()
	register(t, a, "n2")
	eventually(t, settle, "the failed resync retried", func() string {
		if snap.hits.Load() < hits+2 || b.Resyncs() < resyncs+2 {
			return fmt.Sprintf("%d snapshots, %d resyncs", snap.hits.Load()-hits, b.Resyncs()-resyncs)
		}
		return ""
	})
	waitListed(t, b, "n1", "n2")
	after := b.Resyncs()
	register(t, a, "n3")
	waitListed(t, b, "n1", "n2", "n3")
	caughtUp(t, admin, b)
	if b.Resyncs() != after {
		t.Fatalf("n3 came by %d more resyncs, not through the stream", b.Resyncs()-after)
	}
}

// An expired node gets a leave on the stream with its id, TTL and exact
// revision (an incarnation of 19 digits included, which Lua's doubles
// would round), whatever its stored entry: one this package wrote,
// another field order, no JSON at all, or none; an instance that listed
// it reports it left.
func TestExpiryOfAForeignEntryIsOnTheStream(t *testing.T) {
	srv := testredis.Start(t)
	prefix := uniquePrefix(t)
	admin := newClient(t, srv)
	a := newDisc(t, admin, prefix)
	if _, err := a.Nodes(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	_, nodes, alive, _ := a.Keys()
	ctx := ctxT(t)
	entries := map[string]string{
		"native":    `{"v":1,"op":"update","id":"native","addr":"ws://h:1/","ttl":1000,"hb":300,"inc":1796686000783283001,"seq":12}`,
		"reordered": `{"op":"join","v":1,"id":"reordered","ttl":1000,"inc":5,"seq":7}`,
		"garbage":   "not json",
		"orphan":    "", // a deadline without an entry
	}
	// Alive until the test has seen them listed: an hour.
	later := float64(redisNow(t, admin) + time.Hour.Milliseconds())
	for id, raw := range entries {
		if raw != "" {
			admin.HSet(ctx, nodes, id, raw)
		}
		admin.ZAdd(ctx, alive, redis.Z{Score: later, Member: id})
	}
	b := newDisc(t, admin, prefix)
	waitListed(t, b, "native", "reordered") // from the snapshot
	r := record(t, b)
	<-r.evs
	<-r.evs
	// Their deadlines pass: the next heartbeat expires them.
	past := float64(redisNow(t, admin) - 1)
	for id := range entries {
		admin.ZAdd(ctx, alive, redis.Z{Score: past, Member: id})
	}
	waitListed(t, b)
	left := map[string]bool{}
	for range 2 {
		ev := <-r.evs
		if ev.Kind != discovery.NodeLeft {
			t.Fatalf("event %v %s", ev.Kind, ev.Node.ID)
		}
		left[ev.Node.ID] = true
	}
	if !left["native"] || !left["reordered"] {
		t.Fatalf("left: %v", left)
	}
	events, _, _, _ := a.Keys()
	xs, err := admin.XRange(ctx, events, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	leaves := map[string]redisdisc.Entry{}
	for _, x := range xs {
		e, err := redisdisc.DecodeEntry([]byte(x.Values["payload"].(string)))
		if err != nil {
			t.Fatalf("stream entry %v: %v", x.Values, err)
		}
		leaves[e.Node.ID] = e
	}
	for id, want := range map[string]redisdisc.Entry{
		"native":    {Op: redisdisc.OpLeave, TTL: time.Second, Rev: discovery.Revision{Incarnation: 1796686000783283001, Seq: 12}},
		"reordered": {Op: redisdisc.OpLeave, TTL: time.Second, Rev: discovery.Revision{Incarnation: 5, Seq: 7}},
		"garbage":   {Op: redisdisc.OpLeave, TTL: time.Millisecond, Rev: discovery.Revision{Incarnation: 1, Seq: 1}},
		"orphan":    {Op: redisdisc.OpLeave, TTL: time.Millisecond, Rev: discovery.Revision{Incarnation: 1, Seq: 1}},
	} {
		got := leaves[id]
		if got.Op != want.Op || got.TTL != want.TTL || got.Rev != want.Rev || got.Node.ID != id {
			t.Errorf("leave of %s: %+v, want %+v", id, got, want)
		}
	}
}
