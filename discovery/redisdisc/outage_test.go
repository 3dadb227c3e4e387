package redisdisc_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/netron-go/netron/discovery/redisdisc"
	"github.com/netron-go/netron/internal/testredis"
)

// waitBeats waits until every instance has run n more successful
// heartbeats than when it was called.
func waitBeats(t testing.TB, n int64, insts ...*redisdisc.Discovery) {
	t.Helper()
	base := make([]int64, len(insts))
	for i, d := range insts {
		base[i] = d.Beats()
	}
	eventually(t, time.Minute, fmt.Sprintf("%d more heartbeats of every instance", n), func() string {
		for i, d := range insts {
			if d.Beats() < base[i]+n {
				return fmt.Sprintf("instance %d at %d of %d", i, d.Beats()-base[i], n)
			}
		}
		return ""
	})
}

// redisNow returns the Redis clock, ms.
func redisNow(t testing.TB, c redis.UniversalClient) int64 {
	t.Helper()
	now, err := c.Time(ctxT(t)).Result()
	if err != nil {
		t.Fatal(err)
	}
	return now.UnixMilli()
}

// expiriesAfterOutage waits until whatever the past can still cause has
// happened — every instance has heartbeated since any grace period of the
// prefix ended, so that every node whose deadline had passed is expired —
// and returns the ids of the nodes Redis expired, from the stream.
func expiriesAfterOutage(t testing.TB, c redis.UniversalClient, insts ...*redisdisc.Discovery) []string {
	t.Helper()
	_, _, _, meta := insts[0].Keys()
	eventually(t, time.Minute, "the grace period over", func() string {
		grace, err := c.HGet(ctxT(t), meta, "grace").Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err.Error()
		}
		if now := redisNow(t, c); now <= grace {
			return fmt.Sprintf("%d ms to go", grace-now)
		}
		return ""
	})
	waitBeats(t, 2, insts...)
	return expiries(t, c, insts[0])
}

// expiries returns the ids of the nodes Redis expired, from the stream.
func expiries(t testing.TB, c redis.UniversalClient, d *redisdisc.Discovery) []string {
	t.Helper()
	events, _, _, _ := d.Keys()
	xs, err := c.XRange(ctxT(t), events, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range xs {
		if u, _ := x.Values["_watermill_message_uuid"].(string); strings.HasPrefix(u, "expired:") {
			out = append(out, strings.Split(u, ":")[1])
		}
	}
	return out
}

// caughtUp waits until the instance has applied every change Redis
// numbered.
func caughtUp(t testing.TB, c redis.UniversalClient, d *redisdisc.Discovery) {
	t.Helper()
	_, _, _, meta := d.Keys()
	eventually(t, settle, "the reader caught up", func() string {
		gen, err := c.HGet(ctxT(t), meta, "gen").Int64()
		if err != nil {
			return err.Error()
		}
		if got := d.AppliedGen(); got < gen {
			return fmt.Sprintf("applied %d of %d", got, gen)
		}
		return ""
	})
}

// deadlineHook cuts an instance off Redis (its scripts fail) from cut on,
// and lets it through again right after the first script it runs less
// than edge before its nodes' deadline (its last successful heartbeat
// plus ttl): then the retry after that one decides whether its node
// survives. A retry that waits for the backoff of a whole heartbeat comes
// after the deadline; one that comes a margin before it is in time.
type deadlineHook struct {
	ttl, edge time.Duration
	mu        sync.Mutex
	lastOK    time.Time // when the last successful heartbeat was sent
	cut       bool
	flipped   bool
	after     atomic.Int64 // successful heartbeats after the flip
}

func (h *deadlineHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *deadlineHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !isScript(redisdisc.BeatScriptSHA)(cmd) {
			return next(ctx, cmd)
		}
		sent := time.Now()
		h.mu.Lock()
		if h.cut && !h.flipped {
			if sent.After(h.lastOK.Add(h.ttl - h.edge)) {
				h.flipped = true
			}
			h.mu.Unlock()
			err := errors.New("injected failure")
			cmd.SetErr(err)
			return err
		}
		h.mu.Unlock()
		err := next(ctx, cmd)
		if err == nil {
			h.mu.Lock()
			if h.flipped {
				h.after.Add(1)
			} else {
				h.lastOK = sent
			}
			h.mu.Unlock()
		}
		return err
	}
}
func (h *deadlineHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// Instances that lose Redis (the others do not: no grace period) and get
// it back just before their nodes' deadline refresh them in time: a retry
// is never scheduled later than a margin before that deadline. Before
// that rule, the retry came a backoff of up to 1.2 heartbeats later, after
// the deadline, and the live node was reported left.
func TestOutageEndingJustBeforeTheDeadline(t *testing.T) {
	srv := testredis.Start(t)
	prefix := uniquePrefix(t)
	client := newClient(t, srv)
	hb, ttl := time.Second, 3*time.Second
	opts := []redisdisc.Option{redisdisc.WithHeartbeat(hb), redisdisc.WithTTL(ttl)}
	obs := newDisc(t, client, prefix, opts...)
	var (
		insts []*redisdisc.Discovery
		hooks []*deadlineHook
		want  []string
	)
	for i := range 4 {
		// edge: the margin (hb/2) and a tenth of a heartbeat.
		h := &deadlineHook{ttl: ttl, edge: hb/2 + hb/10}
		c := newClient(t, srv)
		c.AddHook(h)
		d := newDisc(t, c, prefix, opts...)
		id := fmt.Sprintf("n%d", i)
		register(t, d, id)
		insts, hooks, want = append(insts, d), append(hooks, h), append(want, id)
		waitBeats(t, 1, d) // different phases
	}
	waitListed(t, obs, want...)
	waitBeats(t, 1, insts...)
	r := record(t, obs)
	for _, h := range hooks {
		h.mu.Lock()
		h.cut = true
		h.mu.Unlock()
	}
	eventually(t, time.Minute, "every instance back after its cut", func() string {
		for i, h := range hooks {
			if h.after.Load() == 0 {
				return fmt.Sprintf("instance %d not back", i)
			}
		}
		return ""
	})
	if got := expiries(t, client, obs); len(got) != 0 {
		t.Fatalf("Redis expired live nodes %v", got)
	}
	caughtUp(t, client, obs)
	if n := r.left.Load(); n != 0 {
		t.Fatalf("the observer reported %d live nodes left", n)
	}
	waitListed(t, obs, want...)
}

// Every instance loses Redis for longer than 1.5 heartbeats but less than
// TTL minus one heartbeat: the first heartbeat after it starts a grace
// period as long as the largest TTL of the prefix, and no live node is
// reported left, whatever the phases and backoffs of the instances. Before,
// such an outage started no grace period (only one longer than TTL minus
// a heartbeat did), and a node whose instance came back after its deadline
// was expired by one that came back earlier.
func TestClusterWideOutageAboveOneAndAHalfHeartbeats(t *testing.T) {
	srv := testredis.Start(t)
	prefix := uniquePrefix(t)
	admin := newClient(t, srv)
	hb, ttl := 500*time.Millisecond, 1500*time.Millisecond
	h := &failHook{match: func(c redis.Cmder) bool { return c.Name() == "evalsha" || c.Name() == "eval" }}
	flaky := newClient(t, srv)
	flaky.AddHook(h)
	// One instance with a longer TTL: the grace period covers it too.
	long := newDisc(t, flaky, prefix, redisdisc.WithHeartbeat(hb), redisdisc.WithTTL(2*ttl))
	insts := []*redisdisc.Discovery{long}
	want := []string{"long"}
	register(t, long, "long")
	for i := range 5 {
		d := newDisc(t, flaky, prefix, redisdisc.WithHeartbeat(hb), redisdisc.WithTTL(ttl))
		id := fmt.Sprintf("n%d", i)
		register(t, d, id)
		insts, want = append(insts, d), append(want, id)
		waitBeats(t, 1, d)
	}
	obs := insts[1]
	waitListed(t, obs, want...)
	r := record(t, obs)
	_, _, _, meta := obs.Keys()
	h.remain.Store(1 << 30)
	// The outage lasts until nobody has heartbeated for 1.6 heartbeats, by
	// the Redis clock.
	var lastBefore int64
	eventually(t, time.Minute, "a pause of 1.6 heartbeats", func() string {
		last, err := admin.HGet(ctxT(t), meta, "beat").Int64()
		if err != nil {
			return err.Error()
		}
		if pause := redisNow(t, admin) - last; pause <= (hb * 16 / 10).Milliseconds() {
			return fmt.Sprintf("pause %d ms", pause)
		}
		lastBefore = last
		return ""
	})
	h.remain.Store(0)
	waitBeats(t, 1, insts...)
	grace, err := admin.HGet(ctxT(t), meta, "grace").Int64()
	if err != nil {
		t.Fatalf("no grace period started: %v", err)
	}
	pause := time.Duration(grace-(2*ttl).Milliseconds()-lastBefore) * time.Millisecond
	t.Logf("the pause was %v (1.5 heartbeats %v, TTL less a heartbeat %v)", pause, hb*3/2, ttl-hb)
	maxTTL, _ := admin.HGet(ctxT(t), meta, "maxttl").Int64()
	if maxTTL != (2 * ttl).Milliseconds() {
		t.Fatalf("maxttl %d, want the long instance's %d", maxTTL, (2 * ttl).Milliseconds())
	}
	if got := expiriesAfterOutage(t, admin, insts...); len(got) != 0 {
		t.Fatalf("Redis expired live nodes %v (grace until %d)", got, grace)
	}
	caughtUp(t, admin, obs)
	if n := r.left.Load(); n != 0 {
		t.Fatalf("the observer reported %d live nodes left", n)
	}
	// Expiry works again: a node killed now is reported left.
	if err := insts[5].Kill(); err != nil {
		t.Fatal(err)
	}
	waitListed(t, obs, want[:5]...)
}

// A death moves no instance's regular heartbeat: the probe at the dead
// node's deadline is an extra heartbeat, and the instances that come
// after the node has left skip theirs. Before, every instance moved its
// next heartbeat to just after the deadline, and the phases, spread over
// the interval, bunched up on that instant.
func TestPhasesKeptAfterADeath(t *testing.T) {
	srv := testredis.Start(t)
	prefix := uniquePrefix(t)
	client := newClient(t, srv)
	hb := 300 * time.Millisecond
	opts := []redisdisc.Option{redisdisc.WithHeartbeat(hb), redisdisc.WithTTL(3 * hb)}
	var insts []*redisdisc.Discovery
	var want []string
	for i := range 6 {
		d := newDisc(t, client, prefix, opts...)
		id := fmt.Sprintf("n%d", i)
		register(t, d, id)
		insts, want = append(insts, d), append(want, id)
		waitBeats(t, 1, d)
	}
	for _, d := range insts {
		waitListed(t, d, want...)
	}
	live := insts[:5]
	waitBeats(t, 1, live...)
	phase := func(d *redisdisc.Discovery) time.Duration {
		return time.Duration(d.NextRegularBeat().UnixNano() % int64(hb))
	}
	before := make([]time.Duration, len(live))
	for i, d := range live {
		before[i] = phase(d)
	}
	if err := insts[5].Kill(); err != nil {
		t.Fatal(err)
	}
	for _, d := range live {
		waitListed(t, d, want[:5]...)
	}
	waitBeats(t, 2, live...)
	var run, saved int64
	for i, d := range live {
		if got := phase(d); got != before[i] {
			t.Errorf("instance %d: regular heartbeats moved from phase %v to %v", i, before[i], got)
		}
		r, s := d.Probes()
		run, saved = run+r, saved+s
	}
	if run+saved == 0 {
		t.Fatal("no instance scheduled a probe at the dead node's deadline")
	}
	t.Logf("probes: %d run, %d skipped (the node had left)", run, saved)
}
