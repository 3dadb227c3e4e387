package redisdisc_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/redisdisc"
	"github.com/netron-go/netron/internal/testredis"
)

const settle = 10 * time.Second

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func register(t testing.TB, d discovery.Discovery, id string, svcs ...string) discovery.NodeInfo {
	t.Helper()
	n := discovery.NodeInfo{ID: id, Address: "127.0.0.1:" + id, Services: []discovery.ServiceInfo{}}
	for i := 0; i+1 < len(svcs); i += 2 {
		n.Services = append(n.Services, discovery.ServiceInfo{Name: svcs[i], Version: svcs[i+1]})
	}
	if err := d.Register(ctxT(t), n); err != nil {
		t.Fatalf("Register(%s): %v", id, err)
	}
	return n
}

func listed(t testing.TB, d discovery.Discovery) []string {
	t.Helper()
	ns, err := d.Nodes(ctxT(t))
	if err != nil {
		t.Fatalf("Nodes: %v", err)
	}
	return ids(ns)
}

func waitListed(t testing.TB, d discovery.Discovery, want ...string) {
	t.Helper()
	slices.Sort(want)
	eventually(t, settle, fmt.Sprintf("nodes %v", want), func() string {
		if got := listed(t, d); !slices.Equal(got, want) {
			return fmt.Sprintf("got %v", got)
		}
		return ""
	})
}

// recorder keeps every event of a watch.
type recorder struct {
	ch   <-chan discovery.Event
	left atomic.Int64
	evs  chan discovery.Event
}

func record(t testing.TB, d discovery.Discovery) *recorder {
	t.Helper()
	ch, err := d.Watch(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ch: ch, evs: make(chan discovery.Event, 1024)}
	go func() {
		for ev := range ch {
			if ev.Kind == discovery.NodeLeft {
				r.left.Add(1)
			}
			r.evs <- ev
		}
		close(r.evs)
	}()
	return r
}

// noStall is the timing of the tests that assert that no live node is
// reported left: a TTL of 20 heartbeats, so that a machine too loaded to
// run a heartbeat for a while does not expire a live node.
var noStall = []redisdisc.Option{redisdisc.WithHeartbeat(100 * time.Millisecond), redisdisc.WithTTL(2 * time.Second)}

// noneLeft asserts that no recorder saw a node leave, once whatever the
// past can still cause has happened: every instance has heartbeated
// twice since any grace period ended (so every node whose deadline had
// passed is expired), and every instance has applied every change Redis
// numbered (so every announcement that confirms a node a resync did not
// find is applied, and no such node will leave later).
func noneLeft(t testing.TB, c redis.UniversalClient, insts []*redisdisc.Discovery, recs ...*recorder) {
	t.Helper()
	if got := expiriesAfterOutage(t, c, insts...); len(got) != 0 {
		t.Fatalf("Redis expired live nodes %v", got)
	}
	for _, d := range insts {
		caughtUp(t, c, d)
	}
	for i, r := range recs {
		if n := r.left.Load(); n != 0 {
			t.Fatalf("recorder %d saw %d live nodes leave", i, n)
		}
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	for _, tc := range []struct {
		name string
		opts []redisdisc.Option
	}{
		{"empty prefix", []redisdisc.Option{redisdisc.WithPrefix(" ")}},
		{"zero heartbeat", []redisdisc.Option{redisdisc.WithHeartbeat(0)}},
		{"negative ttl", []redisdisc.Option{redisdisc.WithTTL(-1)}},
		{"ttl below heartbeat", []redisdisc.Option{redisdisc.WithHeartbeat(time.Second), redisdisc.WithTTL(time.Second)}},
		{"no trimming", []redisdisc.Option{redisdisc.WithMaxLen(0), redisdisc.WithMaxAge(0)}},
		{"nil logger", []redisdisc.Option{redisdisc.WithLogger(nil)}},
		{"negative max len", []redisdisc.Option{redisdisc.WithMaxLen(-1)}},
		{"tiny read block", []redisdisc.Option{redisdisc.WithReadBlock(time.Microsecond)}},
	} {
		if _, err := redisdisc.New(c, tc.opts...); !errors.Is(err, discovery.ErrInvalidOption) {
			t.Errorf("%s: err = %v, want ErrInvalidOption", tc.name, err)
		}
	}
	if _, err := redisdisc.New(nil); !errors.Is(err, discovery.ErrInvalidOption) {
		t.Errorf("nil client: err = %v", err)
	}
}

// TestRedisRestart restarts redis-server (losing all data) under two live
// instances: neither reports the other left, and the snapshot is rebuilt so
// that a node started afterwards learns both.
func TestRedisRestart(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	prefix := uniquePrefix(t)
	a, b := newDisc(t, client, prefix, noStall...), newDisc(t, client, prefix, noStall...)
	register(t, a, "n1", "svc", "1.0.0")
	register(t, b, "n2", "svc", "2.0.0")
	waitListed(t, a, "n1", "n2")
	waitListed(t, b, "n1", "n2")
	ra, rb := record(t, a), record(t, b)

	srv.Restart(t)

	_, nodesKey, _, _ := a.Keys()
	eventually(t, settle, "snapshot rebuilt", func() string {
		got, err := client.HKeys(ctxT(t), nodesKey).Result()
		if err != nil {
			return err.Error()
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{"n1", "n2"}) {
			return fmt.Sprintf("hash has %v", got)
		}
		return ""
	})
	// A node started after the restart learns both: from its snapshot, or,
	// if an instance's cleanup raced the owners' re-announcements on a
	// loaded machine, from the owners' next heartbeat, which announces
	// again what Redis lost.
	late := newDisc(t, client, prefix)
	waitListed(t, late, "n1", "n2")
	noneLeft(t, client, []*redisdisc.Discovery{a, b}, ra, rb)
	waitListed(t, a, "n1", "n2")
	waitListed(t, b, "n1", "n2")
	// The stream works again end to end.
	register(t, a, "n3")
	waitListed(t, b, "n1", "n2", "n3")
	waitListed(t, late, "n1", "n2", "n3")
}

// TestRedisDownTemporarily stops redis-server for several TTLs: instances
// keep their view, a registration made meanwhile fails but is announced when
// Redis is back, and nobody is reported left.
func TestRedisDownTemporarily(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	prefix := uniquePrefix(t)
	var logs logBuffer
	a := newDisc(t, client, prefix, append(noStall, redisdisc.WithLogger(logs.logger()))...)
	b := newDisc(t, client, prefix, noStall...)
	register(t, a, "n1")
	register(t, b, "n2")
	waitListed(t, a, "n1", "n2")
	waitListed(t, b, "n1", "n2")
	ra, rb := record(t, a), record(t, b)

	srv.Stop()
	eventually(t, settle, "a notices the outage", func() string {
		if a.Healthy() {
			return "still healthy"
		}
		return ""
	})
	err := a.Register(ctxT(t), discovery.NodeInfo{ID: "n3", Address: "h:3"})
	if !errors.Is(err, discovery.ErrUnavailable) {
		t.Fatalf("Register while Redis is down: err = %v, want ErrUnavailable", err)
	}
	time.Sleep(3 * testTTL) // the outage: longer than two of the nodes' TTLs
	if got := listed(t, a); !slices.Equal(got, []string{"n1", "n2", "n3"}) {
		t.Fatalf("a's view during the outage = %v, want its last view plus its own n3", got)
	}
	if got := listed(t, b); !slices.Equal(got, []string{"n1", "n2"}) {
		t.Fatalf("b's view during the outage = %v, want its last view", got)
	}
	if !strings.Contains(logs.String(), "redis unavailable") {
		t.Fatalf("outage not logged; log:\n%s", logs.String())
	}

	srv.Restart(t)
	waitListed(t, b, "n1", "n2", "n3")
	eventually(t, settle, "healthy again", func() string {
		if !a.Healthy() || !b.Healthy() {
			return "not yet"
		}
		return ""
	})
	_, nodesKey, _, _ := a.Keys()
	eventually(t, settle, "snapshot rebuilt", func() string {
		got, err := client.HKeys(ctxT(t), nodesKey).Result()
		if err != nil {
			return err.Error()
		}
		slices.Sort(got)
		if !slices.Equal(got, []string{"n1", "n2", "n3"}) {
			return fmt.Sprintf("hash has %v", got)
		}
		return ""
	})
	noneLeft(t, client, []*redisdisc.Discovery{a, b}, ra, rb)
	if !strings.Contains(logs.String(), "reachable again") {
		t.Fatalf("recovery not logged; log:\n%s", logs.String())
	}
	c := newDisc(t, client, prefix)
	if got := listed(t, c); !slices.Equal(got, []string{"n1", "n2", "n3"}) {
		t.Fatalf("new instance after the outage lists %v", got)
	}
}

// TestStartWhileRedisDown: New succeeds, queries wait for the first
// snapshot, and the instance joins once Redis is up.
func TestStartWhileRedisDown(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	prefix := uniquePrefix(t)
	srv.Stop()
	a := newDisc(t, client, prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := a.Nodes(ctx); !errors.Is(err, discovery.ErrUnavailable) {
		t.Fatalf("Nodes before any snapshot: err = %v, want ErrUnavailable", err)
	}
	if err := a.Register(ctxT(t), discovery.NodeInfo{ID: "early"}); !errors.Is(err, discovery.ErrUnavailable) {
		t.Fatalf("Register while Redis is down: err = %v", err)
	}
	srv.Restart(t)
	b := newDisc(t, client, prefix)
	waitListed(t, b, "early")
	waitListed(t, a, "early")
}

// failHook fails the first n commands whose name and first argument match.
type failHook struct {
	match     func(redis.Cmder) bool
	remain    atomic.Int64
	hits      atomic.Int64
	readFails atomic.Int64 // XREADs failed
}

func (h *failHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *failHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.match(cmd) {
			h.hits.Add(1)
			if h.remain.Add(-1) >= 0 {
				if cmd.Name() == "xread" {
					h.readFails.Add(1)
				}
				err := errors.New("injected failure")
				cmd.SetErr(err)
				return err
			}
		}
		return next(ctx, cmd)
	}
}
func (h *failHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// isScript matches EVALSHA of the script with the given hash.
func isScript(sha string) func(redis.Cmder) bool {
	return func(cmd redis.Cmder) bool {
		args := cmd.Args()
		return cmd.Name() == "evalsha" && len(args) > 1 && args[1] == sha
	}
}

// TestDeregisterRetriesWhenRedisFailsTemporarily ports the original's
// retry-deregistration case: the first removal fails, the retry succeeds.
func TestDeregisterRetriesWhenRedisFailsTemporarily(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	prefix := uniquePrefix(t)
	a, b := newDisc(t, client, prefix), newDisc(t, client, prefix)
	register(t, a, "n1")
	waitListed(t, b, "n1")

	flaky := newClient(t, srv)
	h := &failHook{match: isScript(redisdisc.DelScriptSHA)}
	h.remain.Store(1)
	flaky.AddHook(h)
	c := newDisc(t, flaky, prefix, redisdisc.WithTTL(time.Minute))
	register(t, c, "n2")
	waitListed(t, b, "n1", "n2")
	if err := c.Deregister(ctxT(t), "n2"); err != nil {
		t.Fatalf("Deregister with one transient failure: %v", err)
	}
	if h.hits.Load() != 2 {
		t.Fatalf("deregistration was tried %d times, want 2 (one failure, one retry)", h.hits.Load())
	}
	waitListed(t, b, "n1") // the TTL is a minute: this was the retry, not expiry
}

// TestHeartbeatRetriesWhenRedisFailsTemporarily ports retry-heartbeat: a
// failing heartbeat is retried with backoff and nothing is lost.
func TestHeartbeatRetriesWhenRedisFailsTemporarily(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	prefix := uniquePrefix(t)
	flaky := newClient(t, srv)
	h := &failHook{match: isScript(redisdisc.BeatScriptSHA)}
	flaky.AddHook(h)
	a := newDisc(t, flaky, prefix, noStall...)
	register(t, a, "n1")
	b := newDisc(t, client, prefix, noStall...)
	waitListed(t, b, "n1")
	r := record(t, b)
	// One heartbeat fails, as in the original's test; the retry comes after
	// a backoff shorter than the heartbeat, well within the TTL.
	h.remain.Store(1)
	eventually(t, settle, "failures injected", func() string {
		if h.remain.Load() >= 0 {
			return "not yet"
		}
		return ""
	})
	eventually(t, settle, "healthy again", func() string {
		if !a.Healthy() {
			return "not yet"
		}
		return ""
	})
	noneLeft(t, client, []*redisdisc.Discovery{a, b}, r)
	waitListed(t, b, "n1")
}

// TestMalformedEntriesAreSkipped XADDs garbage by hand: every entry is
// skipped with a log line, the reader keeps going, nothing panics.
func TestMalformedEntriesAreSkipped(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	prefix := uniquePrefix(t)
	var logs logBuffer
	a := newDisc(t, client, prefix, redisdisc.WithLogger(logs.logger()))
	b := newDisc(t, client, prefix)
	if _, err := a.Nodes(ctxT(t)); err != nil { // reader started
		t.Fatal(err)
	}
	events, nodesKey, aliveKey, _ := a.Keys()
	ctx := ctxT(t)
	bad := []map[string]any{
		{"foo": "bar"},
		{"payload": "garbage"},
		{"payload": ""},
		{"payload": "\x00\xff\xfe"},
		{"payload": `{"v":2,"op":"join","id":"x","ttl":1000,"inc":1,"seq":1}`},
		{"payload": `{"v":1,"op":"dance","id":"x","ttl":1000,"inc":1,"seq":1}`},
		{"payload": `{"v":1,"op":"join","id":"","ttl":1000,"inc":1,"seq":1}`},
		{"payload": `{"v":1,"op":"join","id":"x","ttl":1000,"inc":1,"seq":1,"extra":true}`},
		{"payload": `{"v":1,"op":"join","id":"x","ttl":1000,"inc":1,"seq":1}{}`},
		{"payload": `{"v":1,"op":"join","id":"x","svcs":[{"name":"s","version":"nope"}],"ttl":1000,"inc":1,"seq":1}`},
		{"payload": `{"v":1,"op":"join","id":"x","ttl":-5,"inc":1,"seq":1}`},
		{"payload": `[1,2,3]`},
		{"payload": strings.Repeat("x", 100<<10)},
		{"_watermill_message_uuid": "u", "metadata": "\xc1", "payload": "{"},
	}
	for _, v := range bad {
		if err := client.XAdd(ctx, &redis.XAddArgs{Stream: events, Values: v}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// A bad snapshot entry too, alive, for the late joiner below.
	client.HSet(ctx, nodesKey, "bad", "not json")
	client.ZAdd(ctx, aliveKey, redis.Z{Score: float64(time.Now().Add(time.Minute).UnixMilli()), Member: "bad"})

	register(t, b, "good", "svc", "1.0.0")
	waitListed(t, a, "good")
	eventually(t, settle, "every malformed entry logged", func() string {
		if n := strings.Count(logs.String(), "skipping malformed stream entry"); n < len(bad) {
			return fmt.Sprintf("%d log lines, want %d", n, len(bad))
		}
		return ""
	})
	late := newDisc(t, client, prefix, redisdisc.WithLogger(logs.logger()))
	if got := listed(t, late); !slices.Equal(got, []string{"good"}) {
		t.Fatalf("late joiner lists %v, want [good]", got)
	}
	if !strings.Contains(logs.String(), "skipping malformed snapshot entry") {
		t.Fatalf("bad snapshot entry not logged:\n%s", logs.String())
	}
	register(t, b, "good2")
	waitListed(t, a, "good", "good2")
}

// TestCallersClientStaysOpen: neither Close nor watermill closes the client
// given to New.
func TestCallersClientStaysOpen(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	d := newDisc(t, client, uniquePrefix(t))
	register(t, d, "n1")
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := client.Ping(ctxT(t)).Err(); err != nil {
		t.Fatalf("caller's client unusable after Close: %v", err)
	}
}

// TestKeysUnderPrefix: the backend touches exactly its four keys, each
// with the prefix as a hash tag.
func TestKeysUnderPrefix(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	a, err := redisdisc.New(client, redisdisc.WithHeartbeat(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	custom := newDisc(t, client, "custom:pfx")
	register(t, a, "n1")
	register(t, custom, "n2")
	if err := a.Deregister(ctxT(t), "n1"); err != nil {
		t.Fatal(err)
	}
	register(t, a, "n3")
	keys, err := client.Keys(ctxT(t), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	want := []string{
		"{custom:pfx}:alive", "{custom:pfx}:events", "{custom:pfx}:meta", "{custom:pfx}:nodes",
		"{netron:discovery}:alive", "{netron:discovery}:events", "{netron:discovery}:meta", "{netron:discovery}:nodes",
	}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys = %v, want %v", keys, want)
	}
	if got := listed(t, a); !slices.Equal(got, []string{"n3"}) {
		t.Fatalf("default prefix sees %v; prefixes must not mix", got)
	}
}

// TestStreamBoundedByLength: MAXLEN ~ keeps the stream near the cap however
// many announcements there are.
func TestStreamBoundedByLength(t *testing.T) {
	srv := testredis.Start(t, testredis.WithArgs("--stream-node-max-entries", "10"))
	client := newClient(t, srv)
	d := newDisc(t, client, uniquePrefix(t), redisdisc.WithMaxLen(50), redisdisc.WithMaxAge(0))
	for i := range 400 {
		register(t, d, "n1", "svc", fmt.Sprintf("1.0.%d", i))
	}
	events, _, _, _ := d.Keys()
	n, err := client.XLen(ctxT(t), events).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n > 50+10 {
		t.Fatalf("XLEN = %d after 400 announcements with MAXLEN ~ 50", n)
	}
}

// TestStreamBoundedByAge: XTRIM MINID ~ drops entries older than the max
// age.
func TestStreamBoundedByAge(t *testing.T) {
	srv := testredis.Start(t, testredis.WithArgs("--stream-node-max-entries", "2"))
	client := newClient(t, srv)
	d := newDisc(t, client, uniquePrefix(t), redisdisc.WithMaxLen(0), redisdisc.WithMaxAge(300*time.Millisecond))
	for i := range 40 {
		register(t, d, "n1", "svc", fmt.Sprintf("1.0.%d", i))
	}
	time.Sleep(400 * time.Millisecond)
	register(t, d, "n1", "svc", "2.0.0")
	register(t, d, "n1", "svc", "2.0.1")
	events, _, _, _ := d.Keys()
	n, err := client.XLen(ctxT(t), events).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n > 4 {
		t.Fatalf("XLEN = %d: entries older than the max age were not trimmed", n)
	}
}

// TestExpiredNodeIsRemovedFromRedis: after a kill, the instances that see
// the node expire also remove it from the snapshot keys.
func TestExpiredNodeIsRemovedFromRedis(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	prefix := uniquePrefix(t)
	a, b := newDisc(t, client, prefix), newDisc(t, client, prefix)
	register(t, a, "victim")
	register(t, b, "survivor")
	waitListed(t, b, "survivor", "victim")
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	waitListed(t, b, "survivor")
	_, nodesKey, aliveKey, _ := b.Keys()
	eventually(t, settle, "victim removed from redis", func() string {
		h, _ := client.HKeys(ctxT(t), nodesKey).Result()
		z, _ := client.ZRange(ctxT(t), aliveKey, 0, -1).Result()
		if !slices.Equal(h, []string{"survivor"}) || !slices.Equal(z, []string{"survivor"}) {
			return fmt.Sprintf("hash %v, zset %v", h, z)
		}
		return ""
	})
}

// TestStaleSnapshotIgnored: entries of nodes that died before an instance
// started are not listed and get cleaned up.
func TestStaleSnapshotIgnored(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	prefix := uniquePrefix(t)
	a := newDisc(t, client, prefix)
	register(t, a, "dead")
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _, alive, _ := a.Keys()
	deadline, err := client.ZScore(ctxT(t), alive, "dead").Result()
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, settle, "the deadline passed, with nobody running to notice", func() string {
		if now := redisNow(t, client); float64(now) <= deadline {
			return fmt.Sprintf("%v ms to go", deadline-float64(now))
		}
		return ""
	})
	b := newDisc(t, client, prefix)
	if got := listed(t, b); len(got) != 0 {
		t.Fatalf("new instance lists %v; the node died a TTL ago", got)
	}
	_, nodesKey, _, _ := b.Keys()
	eventually(t, settle, "stale entry cleaned", func() string {
		if n, _ := client.HLen(ctxT(t), nodesKey).Result(); n != 0 {
			return fmt.Sprintf("%d entries", n)
		}
		return ""
	})
}

// TestLateJoinerDoesNotWaitForHeartbeat uses the default 5 s heartbeat: a
// new instance knows the members on its first Nodes call, well inside a
// second, long before any heartbeat.
func TestLateJoinerDoesNotWaitForHeartbeat(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	prefix := uniquePrefix(t)
	a := newDisc(t, client, prefix, redisdisc.WithHeartbeat(5*time.Second), redisdisc.WithTTL(15*time.Second))
	register(t, a, "n1", "svc", "1.0.0")
	register(t, a, "n2", "svc", "1.1.0")
	b := newDisc(t, client, prefix, redisdisc.WithHeartbeat(5*time.Second), redisdisc.WithTTL(15*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	ns, err := b.Nodes(ctx)
	if err != nil {
		t.Fatalf("late joiner's first Nodes: %v", err)
	}
	if got := ids(ns); !slices.Equal(got, []string{"n1", "n2"}) {
		t.Fatalf("late joiner's first Nodes = %v, want [n1 n2]", got)
	}
}

// TestWrongPassword: a bad password is an unavailable backend, not a crash.
func TestWrongPassword(t *testing.T) {
	srv := testredis.Start(t, testredis.WithPassword("right"))
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: "wrong", MaxRetries: -1})
	defer client.Close()
	d, err := redisdisc.New(client, redisdisc.WithPrefix(uniquePrefix(t)), redisdisc.WithHeartbeat(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Register(ctxT(t), discovery.NodeInfo{ID: "n1"}); !errors.Is(err, discovery.ErrUnavailable) {
		t.Fatalf("Register with a wrong password: %v, want ErrUnavailable", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := d.Nodes(ctx); !errors.Is(err, discovery.ErrUnavailable) {
		t.Fatalf("Nodes with a wrong password: %v, want ErrUnavailable", err)
	}
}

// TestConnect: a backend with a client of its own, on a password-protected
// server, closes that client on Close.
func TestConnect(t *testing.T) {
	srv := testredis.Start(t, testredis.WithPassword("pw"))
	prefix := uniquePrefix(t)
	d, err := redisdisc.Connect(srv.Addr(), "pw", 0, redisdisc.WithPrefix(prefix), redisdisc.WithHeartbeat(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	other := newDisc(t, newClient(t, srv), prefix)
	register(t, d, "n1")
	waitListed(t, other, "n1")
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	waitListed(t, other)
	if _, err := redisdisc.Connect("", "", 0); !errors.Is(err, discovery.ErrInvalidOption) {
		t.Fatalf("Connect with no address: %v", err)
	}
	if _, err := redisdisc.Connect(srv.Addr(), "", 0, redisdisc.WithHeartbeat(-1)); !errors.Is(err, discovery.ErrInvalidOption) {
		t.Fatalf("Connect with a bad option: %v", err)
	}
}

// A client that does not honour its commands' deadlines (its options lack
// ContextTimeoutEnabled) is used, with a warning: Deregister and Close
// cannot keep their deadlines on a Redis that stops answering.
func TestWarnsWithoutContextTimeouts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client redis.UniversalClient
		warn   bool
	}{
		{"plain", redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), true},
		{"cluster", redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}}), true},
		{"with deadlines", redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true}), false},
		{"cluster with deadlines", redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, ContextTimeoutEnabled: true}), false},
	} {
		var logs logBuffer
		d, err := redisdisc.New(tc.client, redisdisc.WithLogger(logs.logger()))
		if err != nil {
			t.Fatal(err)
		}
		_ = d.Kill()
		_ = tc.client.Close()
		if got := strings.Contains(logs.String(), "ContextTimeoutEnabled"); got != tc.warn {
			t.Errorf("%s: warned %v, want %v; log:\n%s", tc.name, got, tc.warn, logs.String())
		}
	}
}

// Close while Redis is down leaves the nodes to expire, and its error
// joins one error per node, errors.Is finding ErrUnavailable in the whole
// and in each.
func TestCloseWhileRedisDownJoinsErrors(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	d := newDisc(t, client, uniquePrefix(t))
	register(t, d, "n1")
	register(t, d, "n2")
	srv.Stop()
	err := d.CloseContext(ctxT(t))
	if !errors.Is(err, discovery.ErrUnavailable) {
		t.Fatalf("CloseContext with Redis down: %v, want ErrUnavailable", err)
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok || len(j.Unwrap()) != 2 {
		t.Fatalf("CloseContext: %v, want one error per node", err)
	}
	for i, part := range j.Unwrap() {
		if id := fmt.Sprint("n", i+1); !errors.Is(part, discovery.ErrUnavailable) || !strings.Contains(part.Error(), `"`+id+`"`) {
			t.Errorf("part %d: %v, want ErrUnavailable naming %s", i, part, id)
		}
	}
	if again := d.Close(); again != err {
		t.Errorf("Close after CloseContext: %v, want the same error", again)
	}
}
