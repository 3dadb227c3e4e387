package redisdisc_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/redisdisc"
	"github.com/netron-go/netron/internal/testredis"
)

// nodeEntries returns the stream's entries of node id, in order.
func nodeEntries(t testing.TB, c redis.UniversalClient, d *redisdisc.Discovery, id string) []redisdisc.Entry {
	t.Helper()
	events, _, _, _ := d.Keys()
	xs, err := c.XRange(ctxT(t), events, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []redisdisc.Entry
	for _, x := range xs {
		p, _ := x.Values["payload"].(string)
		if e, err := redisdisc.DecodeEntry([]byte(p)); err == nil && e.Node.ID == id {
			out = append(out, e)
		}
	}
	return out
}

// An id held by a live node of another instance is refused, whatever the
// address (a live node heartbeats, so it is never taken over), and the
// refusal changes nothing. A holder that falls silent (a crashed process,
// whose registration has not expired yet) is taken over once it has been
// silent for 1.5 heartbeats, long before its TTL.
func TestNodeIDsAreUnique(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	prefix := uniquePrefix(t)
	// Heartbeats of a second: a holder stalled for half of one (a loaded
	// machine) is still live.
	long := []redisdisc.Option{redisdisc.WithHeartbeat(time.Second), redisdisc.WithTTL(time.Minute)}
	a, observer := newDisc(t, client, prefix, long...), newDisc(t, client, prefix, long...)
	holder := discovery.NodeInfo{ID: "n1", Address: "ws://10.0.0.1:9000/"}
	if err := a.Register(ctxT(t), holder); err != nil {
		t.Fatal(err)
	}
	waitListed(t, observer, "n1")

	b := newDisc(t, client, prefix, long...)
	for _, n := range []discovery.NodeInfo{
		{ID: "n1", Address: "ws://10.0.0.2:9000/"},
		{ID: "n1", Address: holder.Address}, // the same address: still a live holder
		{ID: "n1"},
	} {
		err := b.Register(ctxT(t), n)
		if !errors.Is(err, discovery.ErrDuplicateID) || !strings.Contains(err.Error(), holder.Address) || !strings.Contains(err.Error(), "alive") {
			t.Fatalf("Register(%+v) of a live node's id: %v, want ErrDuplicateID naming %s", n, err, holder.Address)
		}
	}
	// A deadline shorter than the wait for the holder's silence (here a
	// holder that beats every minute: 90 s): refused at once, not at the
	// deadline; a retry never goes past the caller's deadline.
	slow := newDisc(t, client, prefix, redisdisc.WithHeartbeat(time.Minute), redisdisc.WithTTL(time.Hour))
	slowHolder := discovery.NodeInfo{ID: "n9", Address: "ws://10.0.0.9:9000/"}
	if err := slow.Register(ctxT(t), slowHolder); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctxT(t), 20*time.Second)
	err := b.Register(ctx, discovery.NodeInfo{ID: "n9", Address: "ws://10.0.0.2:9000/"})
	waited := ctx.Err() != nil
	cancel()
	if !errors.Is(err, discovery.ErrDuplicateID) || !strings.Contains(err.Error(), slowHolder.Address) || waited {
		t.Fatalf("Register with a deadline shorter than the wait: %v (waited for the deadline: %v)", err, waited)
	}
	if err := slow.Close(); err != nil {
		t.Fatal(err)
	}
	waitListed(t, observer, "n1")
	if got := nodeEntries(t, client, a, "n1"); len(got) != 1 {
		t.Fatalf("the refusals wrote %d entries of n1", len(got)-1)
	}
	ns, _ := observer.Nodes(ctxT(t))
	if len(ns) != 1 || ns[0].Address != holder.Address {
		t.Fatalf("after the refusals the observer lists %+v", ns)
	}
	// b holds nothing: closing it removes nothing.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitListed(t, observer, "n1")

	// a crashes; its node comes back, elsewhere, within the TTL.
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	back := newDisc(t, client, prefix, long...)
	moved := discovery.NodeInfo{ID: "n1", Address: "ws://10.0.0.3:9000/", Services: []discovery.ServiceInfo{{Name: "svc", Version: "2.0.0"}}}
	if err := back.Register(ctxT(t), moved); err != nil {
		t.Fatalf("the node back after a crash: %v", err)
	}
	waitNode(t, observer, moved)
	if got := expiries(t, client, back); len(got) != 0 {
		t.Fatalf("taken over by expiry %v, not because the holder was silent", got)
	}

	// Once a node is dead (its TTL ran out), anyone may take its id.
	short := newDisc(t, client, prefix, redisdisc.WithTTL(300*time.Millisecond))
	if err := short.Register(ctxT(t), discovery.NodeInfo{ID: "n2", Address: "ws://10.0.0.4:9000/"}); err != nil {
		t.Fatal(err)
	}
	waitListed(t, observer, "n1", "n2")
	if err := short.Kill(); err != nil {
		t.Fatal(err)
	}
	waitListed(t, observer, "n1")
	other := newDisc(t, client, prefix, long...)
	if err := other.Register(ctxT(t), discovery.NodeInfo{ID: "n2", Address: "ws://10.0.0.5:9000/"}); err != nil {
		t.Fatalf("the id of a dead node: %v", err)
	}
}

// An instance silent for longer than 1.5 heartbeats whose node id was
// meanwhile taken by another instance gives the id up, with an error in
// its log, and never writes the node again, however many heartbeats it
// runs afterwards.
func TestSilentInstanceGivesUpATakenID(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	prefix := uniquePrefix(t)
	var logs logBuffer
	flaky := newClient(t, srv)
	h := &failHook{match: isScript(redisdisc.BeatScriptSHA)}
	flaky.AddHook(h)
	a := newDisc(t, flaky, prefix, redisdisc.WithTTL(time.Minute), redisdisc.WithLogger(logs.logger()))
	observer := newDisc(t, client, prefix)
	if err := a.Register(ctxT(t), discovery.NodeInfo{ID: "n1", Address: "ws://old:1/"}); err != nil {
		t.Fatal(err)
	}
	waitListed(t, observer, "n1")
	h.remain.Store(1 << 30) // a's heartbeats fail: it is silent
	b := newDisc(t, client, prefix, redisdisc.WithTTL(time.Minute))
	taker := discovery.NodeInfo{ID: "n1", Address: "ws://new:1/", Services: []discovery.ServiceInfo{}}
	if err := b.Register(ctxT(t), taker); err != nil {
		t.Fatal(err)
	}
	h.remain.Store(0) // a is back
	eventually(t, settle, "a gives the id up", func() string {
		if !strings.Contains(logs.String(), "no longer announces a node") {
			return "not yet"
		}
		return ""
	})
	waitBeats(t, 3, a)
	waitNode(t, observer, taker)
	es := nodeEntries(t, client, a, "n1")
	if len(es) != 2 || es[0].Node.Address != "ws://old:1/" || es[1].Node.Address != taker.Address || es[0].Rev.Incarnation == es[1].Rev.Incarnation {
		t.Fatalf("entries of n1: %+v; want a's join, then b's, and nothing after", es)
	}
	_, nodes, _, _ := a.Keys()
	raw, err := client.HGet(ctxT(t), nodes, "n1").Result()
	if e, derr := redisdisc.DecodeEntry([]byte(raw)); err != nil || derr != nil || e.Rev != es[1].Rev {
		t.Fatalf("stored entry of n1: %s (%v %v), want b's", raw, err, derr)
	}
}

func waitNode(t testing.TB, d discovery.Discovery, want discovery.NodeInfo) {
	t.Helper()
	eventually(t, settle, "node "+want.ID, func() string {
		ns, err := d.Nodes(ctxT(t))
		if err != nil {
			return err.Error()
		}
		for _, n := range ns {
			if n.ID == want.ID && n.SameDetails(want) {
				return ""
			}
		}
		return "not there or not up to date"
	})
}

// storedRev returns the revision of the entry Redis holds for node id.
func storedRev(t testing.TB, c redis.UniversalClient, d *redisdisc.Discovery, id string) discovery.Revision {
	t.Helper()
	_, nodes, _, _ := d.Keys()
	raw, err := c.HGet(ctxT(t), nodes, id).Result()
	if err != nil {
		t.Fatalf("entry of %s: %v", id, err)
	}
	e, err := redisdisc.DecodeEntry([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return e.Rev
}

// An instance's incarnation comes from Redis when the instance first
// reaches it: the Redis clock in nanoseconds, to the microsecond, whose
// last three digits count the incarnations handed out under the prefix.
// So instances that reach Redis later have larger ones whatever the
// clocks of their hosts, and an instance that registered while Redis was
// down announces its node, once Redis is back, with the incarnation it
// got then.
func TestIncarnationFromRedis(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	prefix := uniquePrefix(t)
	srv.Stop()
	early := newDisc(t, client, prefix)
	if err := early.Register(ctxT(t), discovery.NodeInfo{ID: "early"}); !errors.Is(err, discovery.ErrUnavailable) {
		t.Fatalf("Register with Redis down: %v", err)
	}
	if inc := early.Incarnation(); inc != "0" {
		t.Fatalf("an incarnation %s without Redis", inc)
	}
	srv.Restart(t)
	before := redisNow(t, client)
	a := newDisc(t, client, prefix)
	register(t, a, "a")
	waitListed(t, a, "a", "early")
	b := newDisc(t, client, prefix)
	register(t, b, "b")
	after := redisNow(t, client)

	incOf := func(d *redisdisc.Discovery) int64 {
		inc, err := strconv.ParseInt(d.Incarnation(), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return inc
	}
	// early and a reached Redis in either order (early retries with
	// backoff), b after both. An instance whose first Register and first
	// snapshot ask at once uses one of the two counts they take.
	_, _, _, meta := a.Keys()
	handed, err := client.HGet(ctxT(t), meta, "incs").Int64()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[int64]bool{}
	for i, d := range []*redisdisc.Discovery{early, a, b} {
		inc := incOf(d)
		if ms := inc / 1_000_000; ms < before-settle.Milliseconds() || ms > after {
			t.Errorf("incarnation %d: %d ms, not the Redis clock between %d and %d", i, ms, before, after)
		}
		if c := inc % 1000; c < 1 || c > handed {
			t.Errorf("incarnation %d ends in %03d, not a count of the %d handed out", i, c, handed)
		}
		counts[inc%1000] = true
	}
	if len(counts) != 3 {
		t.Errorf("the incarnations end in %v: not three different counts", counts)
	}
	if incOf(b) <= incOf(a) || incOf(b) <= incOf(early) {
		t.Errorf("b, the last to reach Redis, has %d; a %d, early %d", incOf(b), incOf(a), incOf(early))
	}
	for id, d := range map[string]*redisdisc.Discovery{"early": early, "a": a, "b": b} {
		if rev := storedRev(t, client, d, id); rev.Incarnation != incOf(d) {
			t.Errorf("node %s stored with incarnation %d, its instance's is %d", id, rev.Incarnation, incOf(d))
		}
	}
}
