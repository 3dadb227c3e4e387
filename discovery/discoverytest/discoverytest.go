// Package discoverytest is the behaviour suite every discovery.Discovery
// backend must pass. The in-memory backend (package discovery) and the Redis
// backend (package redisdisc) run it in their tests; a new backend calls Run
// from a test of its own:
//
//	func TestSuite(t *testing.T) {
//		discoverytest.Run(t, func(t *testing.T, cfg discoverytest.Config) discoverytest.Cluster {
//			prefix := uniquePrefix(t)
//			return discoverytest.Cluster{
//				New: func(t *testing.T) discovery.Discovery { return newBackend(t, prefix, cfg) },
//			}
//		})
//	}
//
// The suite ports the discovery scenarios of the original Netron (register,
// heartbeat, TTL expiry, find by name and version, graceful and idempotent
// shutdown, re-registration with new details, concurrent updates) and adds
// semver range queries, the late joiner's snapshot, watch semantics and the
// slow-consumer policy. Every case runs in parallel with the others, each on
// its own cluster.
package discoverytest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/netron-go/netron/discovery"
)

// Config is the timing a case asks its cluster to use.
type Config struct {
	// Heartbeat is the heartbeat interval of every instance of the cluster.
	Heartbeat time.Duration
	// TTL is how long a silent node stays active.
	TTL time.Duration
}

// Cluster is what a backend hands the suite for one case: instances that
// share one registry (one Hub, one Redis key prefix) and no state with other
// cases.
type Cluster struct {
	// New returns a new instance of the cluster, configured with the Config
	// the cluster was made for. The suite closes every instance when the case
	// ends; the backend may register cleanups of its own too.
	New func(t *testing.T) discovery.Discovery
	// Kill stops an instance the way a crash would: its goroutines stop and
	// nothing is deregistered. When nil, the suite calls a `Kill() error`
	// method if the instance has one, and skips the TTL cases if not.
	Kill func(t *testing.T, d discovery.Discovery)
}

// Timing the suite uses; short so that the suite runs in seconds.
var (
	// Fast is for cases that wait for heartbeats and expiry. A live node
	// beats 15 times per TTL, so a loaded machine that delays some beats
	// does not make it expire.
	Fast = Config{Heartbeat: 100 * time.Millisecond, TTL: 1500 * time.Millisecond}
	// Slow has a TTL far longer than any case waits, so a case that sees a
	// node leave knows the cause was not expiry.
	Slow = Config{Heartbeat: 100 * time.Millisecond, TTL: time.Minute}
)

// Settle bounds how long a change on one instance may take to reach the
// other instances of a cluster before a case fails. It is generous so that
// the suite is not flaky on a loaded machine; tests assert behaviour, not
// speed.
var Settle = 10 * time.Second

type suite struct {
	newCluster func(t *testing.T, cfg Config) Cluster
}

// Run runs the suite. newCluster is called once per case and must return a
// cluster isolated from every other.
func Run(t *testing.T, newCluster func(t *testing.T, cfg Config) Cluster) {
	s := suite{newCluster: newCluster}
	cases := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"Register/VisibleToAll", s.registerVisibleToAll},
		{"Register/Validation", s.registerValidation},
		{"Register/IdenticalIsNoop", s.registerIdenticalIsNoop},
		{"Register/SeveralNodesPerInstance", s.severalNodesPerInstance},
		{"Heartbeat/KeepsNodeAlive", s.heartbeatKeepsAlive},
		{"TTL/KilledNodeLeaves", s.killedNodeLeaves},
		{"TTL/RestartedNodeReplacesKilled", s.restartedReplacesKilled},
		{"Find/ByName", s.findByName},
		{"Find/ByVersionRange", s.findByVersionRange},
		{"Deregister/AtOnce", s.deregisterAtOnce},
		{"Deregister/Idempotent", s.deregisterIdempotent},
		{"Close/GracefulAndIdempotent", s.closeGraceful},
		{"ReRegister/NewDetails", s.reRegisterNewDetails},
		{"ReRegister/AfterDeregister", s.reRegisterAfterDeregister},
		{"Concurrent/Updates", s.concurrentUpdates},
		{"Watch/InitialSnapshot", s.watchInitialSnapshot},
		{"Watch/Sequence", s.watchSequence},
		{"Watch/EndsWithContextAndClose", s.watchEnds},
		{"Watch/SlowConsumerGetsEveryChange", s.watchSlowConsumer},
		{"LateJoiner/Snapshot", s.lateJoiner},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t)
		})
	}
}

// cluster wraps a Cluster with cleanup and kill support.
type cluster struct {
	Cluster
	cfg Config
}

func (s suite) cluster(t *testing.T, cfg Config) *cluster {
	t.Helper()
	c := s.newCluster(t, cfg)
	if c.New == nil {
		t.Fatal("discoverytest: Cluster.New is nil")
	}
	return &cluster{Cluster: c, cfg: cfg}
}

func (c *cluster) instance(t *testing.T) discovery.Discovery {
	t.Helper()
	d := c.New(t)
	t.Cleanup(func() {
		if err := d.Close(); err != nil && !errors.Is(err, discovery.ErrClosed) {
			t.Errorf("Close at cleanup: %v", err)
		}
	})
	return d
}

func (c *cluster) kill(t *testing.T, d discovery.Discovery) {
	t.Helper()
	if c.Kill != nil {
		c.Kill(t, d)
		return
	}
	if k, ok := d.(interface{ Kill() error }); ok {
		if err := k.Kill(); err != nil {
			t.Fatalf("Kill: %v", err)
		}
		return
	}
	t.Skip("backend cannot simulate a crash (no Cluster.Kill, no Kill method)")
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Settle+20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func node(id, addr string, svcs ...string) discovery.NodeInfo {
	n := discovery.NodeInfo{ID: id, Address: addr, Services: []discovery.ServiceInfo{}}
	for i := 0; i+1 < len(svcs); i += 2 {
		n.Services = append(n.Services, discovery.ServiceInfo{Name: svcs[i], Version: svcs[i+1]})
	}
	return n
}

func mustRegister(t *testing.T, d discovery.Discovery, n discovery.NodeInfo) {
	t.Helper()
	if err := d.Register(ctxFor(t), n); err != nil {
		t.Fatalf("Register(%s): %v", n.ID, err)
	}
}

func nodes(t *testing.T, d discovery.Discovery) []discovery.NodeInfo {
	t.Helper()
	ns, err := d.Nodes(ctxFor(t))
	if err != nil {
		t.Fatalf("Nodes: %v", err)
	}
	if !slices.IsSortedFunc(ns, func(a, b discovery.NodeInfo) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	}) {
		t.Fatalf("Nodes not sorted by id: %v", ids(ns))
	}
	return ns
}

func ids(ns []discovery.NodeInfo) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.ID
	}
	return out
}

func lookup(ns []discovery.NodeInfo, id string) (discovery.NodeInfo, bool) {
	for _, n := range ns {
		if n.ID == id {
			return n, true
		}
	}
	return discovery.NodeInfo{}, false
}

// eventually polls cond until it returns "" or Settle passes.
func eventually(t *testing.T, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(Settle)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, Settle, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitNode waits until d lists a node with the details of want.
func waitNode(t *testing.T, d discovery.Discovery, want discovery.NodeInfo) discovery.NodeInfo {
	t.Helper()
	var got discovery.NodeInfo
	eventually(t, "node "+want.ID+" visible", func() string {
		n, ok := lookup(nodes(t, d), want.ID)
		if !ok {
			return "absent"
		}
		if !n.SameDetails(want) {
			return fmt.Sprintf("got %+v, want %+v", n, want)
		}
		got = n
		return ""
	})
	return got
}

func waitGone(t *testing.T, d discovery.Discovery, id string) {
	t.Helper()
	eventually(t, "node "+id+" gone", func() string {
		if _, ok := lookup(nodes(t, d), id); ok {
			return "still listed"
		}
		return ""
	})
}

func watch(t *testing.T, d discovery.Discovery) <-chan discovery.Event {
	t.Helper()
	ch, err := d.Watch(ctxFor(t))
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	return ch
}

func next(t *testing.T, ch <-chan discovery.Event) discovery.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(Settle):
		t.Fatalf("no event within %v", Settle)
	}
	return discovery.Event{}
}

func expect(t *testing.T, ch <-chan discovery.Event, kind discovery.EventKind, id string) discovery.Event {
	t.Helper()
	ev := next(t, ch)
	if ev.Kind != kind || ev.Node.ID != id {
		t.Fatalf("event = %v %s, want %v %s", ev.Kind, ev.Node.ID, kind, id)
	}
	return ev
}

// quiet fails if ch delivers an event within d.
func quiet(t *testing.T, ch <-chan discovery.Event, d time.Duration) {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if ok {
			t.Fatalf("unexpected event %v %s (%+v)", ev.Kind, ev.Node.ID, ev.Node)
		}
		t.Fatal("watch channel closed unexpectedly")
	case <-time.After(d):
	}
}

func (s suite) registerVisibleToAll(t *testing.T) {
	c := s.cluster(t, Slow)
	a, b := c.instance(t), c.instance(t)
	n := node("node-1", "127.0.0.1:4000", "calculator", "1.0.0", "echo", "2.1.0")
	n.Metadata = map[string]string{"zone": "a", "weight": "3"}
	n.LastSeen = time.Unix(1, 0) // ignored
	before := time.Now()
	mustRegister(t, a, n)

	own, ok := lookup(nodes(t, a), "node-1")
	if !ok {
		t.Fatal("registering instance does not list its own node at once")
	}
	if !own.SameDetails(n) {
		t.Fatalf("own view = %+v, want %+v", own, n)
	}
	got := waitNode(t, b, n)
	if got.LastSeen.Before(before.Add(-time.Second)) || got.LastSeen.After(time.Now().Add(time.Second)) {
		t.Fatalf("LastSeen = %v, want around %v", got.LastSeen, before)
	}
}

func (s suite) registerValidation(t *testing.T) {
	c := s.cluster(t, Slow)
	a := c.instance(t)
	ctx := ctxFor(t)
	for _, tc := range []struct {
		name string
		n    discovery.NodeInfo
		want error
	}{
		{"empty id", node("", "x", "svc", "1.0.0"), discovery.ErrInvalidNode},
		{"empty service name", node("n", "x", "", "1.0.0"), discovery.ErrInvalidNode},
		{"bad version", node("n", "x", "svc", "one"), discovery.ErrInvalidVersion},
		{"empty version", node("n", "x", "svc", ""), discovery.ErrInvalidVersion},
	} {
		if err := a.Register(ctx, tc.n); !errors.Is(err, tc.want) {
			t.Errorf("%s: Register err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if ns := nodes(t, a); len(ns) != 0 {
		t.Fatalf("invalid registrations left nodes: %v", ids(ns))
	}
}

func (s suite) registerIdenticalIsNoop(t *testing.T) {
	c := s.cluster(t, Fast)
	a, b := c.instance(t), c.instance(t)
	w := watch(t, b)
	n := node("n1", "127.0.0.1:1", "svc", "1.0.0")
	mustRegister(t, a, n)
	expect(t, w, discovery.NodeJoined, "n1")
	mustRegister(t, a, n)
	// Neither the second Register nor the heartbeats are changes.
	quiet(t, w, 5*c.cfg.Heartbeat)
}

func (s suite) severalNodesPerInstance(t *testing.T) {
	c := s.cluster(t, Slow)
	a, b := c.instance(t), c.instance(t)
	n1, n2 := node("n1", "h:1", "a", "1.0.0"), node("n2", "h:2", "b", "1.0.0")
	mustRegister(t, a, n1)
	mustRegister(t, a, n2)
	waitNode(t, b, n1)
	waitNode(t, b, n2)
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitGone(t, b, "n1")
	waitGone(t, b, "n2")
}

func (s suite) heartbeatKeepsAlive(t *testing.T) {
	c := s.cluster(t, Fast)
	a, b := c.instance(t), c.instance(t)
	n := node("n1", "h:1", "svc", "1.0.0")
	mustRegister(t, a, n)
	first := waitNode(t, b, n)
	w := watch(t, b)
	expect(t, w, discovery.NodeJoined, "n1")
	time.Sleep(3 * c.cfg.TTL)
	quiet(t, w, 0) // no Left, no heartbeat-driven Updated
	got, ok := lookup(nodes(t, b), "n1")
	if !ok {
		t.Fatal("node expired although its instance is heartbeating")
	}
	if !got.LastSeen.After(first.LastSeen) {
		t.Fatalf("LastSeen did not advance: %v then %v", first.LastSeen, got.LastSeen)
	}
}

func (s suite) killedNodeLeaves(t *testing.T) {
	c := s.cluster(t, Fast)
	a, b, other := c.instance(t), c.instance(t), c.instance(t)
	n := node("victim", "h:1", "svc", "1.0.0")
	survivor := node("survivor", "h:2", "svc", "1.1.0")
	mustRegister(t, a, n)
	mustRegister(t, other, survivor)
	waitNode(t, b, n)
	waitNode(t, b, survivor)
	w := watch(t, b)
	expect2(t, w, discovery.NodeJoined, "survivor", "victim")

	c.kill(t, a)
	if _, ok := lookup(nodes(t, b), "victim"); !ok {
		t.Fatal("killed node reported left before its TTL passed")
	}
	ev := expect(t, w, discovery.NodeLeft, "victim")
	if !ev.Node.SameDetails(n) {
		t.Fatalf("Left event carries %+v, want the last details %+v", ev.Node, n)
	}
	if _, ok := lookup(nodes(t, b), "victim"); ok {
		t.Fatal("Nodes still lists the expired node")
	}
	found, err := b.Find(ctxFor(t), "svc", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(found); !slices.Equal(got, []string{"survivor"}) {
		t.Fatalf("Find after expiry = %v, want [survivor]", got)
	}
	// The survivor keeps heartbeating and stays.
	quiet(t, w, 2*c.cfg.TTL)
}

// expect2 reads two events of one kind for two ids, in any order.
func expect2(t *testing.T, ch <-chan discovery.Event, kind discovery.EventKind, id1, id2 string) {
	t.Helper()
	seen := map[string]bool{}
	for range 2 {
		ev := next(t, ch)
		if ev.Kind != kind || (ev.Node.ID != id1 && ev.Node.ID != id2) || seen[ev.Node.ID] {
			t.Fatalf("event = %v %s, want %v for %s and %s", ev.Kind, ev.Node.ID, kind, id1, id2)
		}
		seen[ev.Node.ID] = true
	}
}

func (s suite) restartedReplacesKilled(t *testing.T) {
	c := s.cluster(t, Slow)
	a, b := c.instance(t), c.instance(t)
	mustRegister(t, a, node("n1", "h:1", "svc", "1.0.0"))
	waitNode(t, b, node("n1", "h:1", "svc", "1.0.0"))
	c.kill(t, a)
	// The node comes back at its address within its TTL, with other
	// services: the new registration replaces the old one at once.
	restarted := c.instance(t)
	fresh := node("n1", "h:1", "svc", "1.1.0")
	mustRegister(t, restarted, fresh)
	waitNode(t, b, fresh)
}

func (s suite) findByName(t *testing.T) {
	c := s.cluster(t, Slow)
	a, b := c.instance(t), c.instance(t)
	n1 := node("n1", "h:1", "calculator", "1.0.0", "echo", "2.0.0")
	n2 := node("n2", "h:2", "calculator", "2.1.0")
	n3 := node("n3", "h:3")
	for _, n := range []discovery.NodeInfo{n1, n2, n3} {
		mustRegister(t, a, n)
		waitNode(t, b, n)
	}
	for _, d := range []discovery.Discovery{a, b} {
		for _, tc := range []struct {
			service string
			want    []string
		}{
			{"calculator", []string{"n2", "n1"}}, // latest version first
			{"echo", []string{"n1"}},
			{"missing", []string{}},
			{"", []string{}},
		} {
			got, err := d.Find(ctxFor(t), tc.service, "")
			if err != nil {
				t.Fatalf("Find(%q): %v", tc.service, err)
			}
			if got == nil {
				t.Fatalf("Find(%q) = nil, want an empty slice", tc.service)
			}
			if !slices.Equal(ids(got), tc.want) {
				t.Errorf("Find(%q) = %v, want %v", tc.service, ids(got), tc.want)
			}
		}
	}
}

func (s suite) findByVersionRange(t *testing.T) {
	c := s.cluster(t, Slow)
	a, b := c.instance(t), c.instance(t)
	all := []discovery.NodeInfo{
		node("v100", "h:1", "calc", "1.0.0"),
		node("v125", "h:2", "calc", "1.2.5"),
		node("v131", "h:3", "calc", "1.3.1"),
		node("v200", "h:4", "calc", "2.0.0"),
		node("v300rc", "h:5", "calc", "3.0.0-rc.1"),
		node("multi", "h:6", "calc", "1.0.0", "calc", "2.5.0"),
	}
	for _, n := range all {
		mustRegister(t, a, n)
	}
	for _, n := range all {
		waitNode(t, b, n)
	}
	for _, tc := range []struct {
		rng  string
		want []string
	}{
		{"1.2.5", []string{"v125"}},
		{"=1.0.0", []string{"multi", "v100"}},
		{"^1", []string{"v131", "v125", "multi", "v100"}},
		{"~1.2", []string{"v125"}},
		{">=1.0 <2", []string{"v131", "v125", "multi", "v100"}},
		{">=1.3.0, <3", []string{"multi", "v200", "v131"}},
		{"^2", []string{"multi", "v200"}},
		{"^3.0.0-0", []string{"v300rc"}},
		{"4.x", []string{}},
		{"", []string{"v300rc", "multi", "v200", "v131", "v125", "v100"}},
		{"*", []string{"v300rc", "multi", "v200", "v131", "v125", "v100"}},
	} {
		got, err := b.Find(ctxFor(t), "calc", tc.rng)
		if err != nil {
			t.Fatalf("Find(calc, %q): %v", tc.rng, err)
		}
		if !slices.Equal(ids(got), tc.want) {
			t.Errorf("Find(calc, %q) = %v, want %v", tc.rng, ids(got), tc.want)
		}
	}
	if _, err := b.Find(ctxFor(t), "calc", "not a range"); !errors.Is(err, discovery.ErrInvalidRange) {
		t.Fatalf("Find with a bad range: err = %v, want ErrInvalidRange", err)
	}
}

func (s suite) deregisterAtOnce(t *testing.T) {
	c := s.cluster(t, Slow) // TTL a minute: a Left here cannot come from expiry
	a, b := c.instance(t), c.instance(t)
	n := node("n1", "h:1", "svc", "1.0.0")
	mustRegister(t, a, n)
	mustRegister(t, a, node("n2", "h:2", "svc", "1.0.0"))
	waitNode(t, b, n)
	w := watch(t, b)
	expect2(t, w, discovery.NodeJoined, "n1", "n2")
	if err := a.Deregister(ctxFor(t), "n1"); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	if _, ok := lookup(nodes(t, a), "n1"); ok {
		t.Fatal("deregistering instance still lists the node")
	}
	expect(t, w, discovery.NodeLeft, "n1")
	if got := ids(nodes(t, b)); !slices.Equal(got, []string{"n2"}) {
		t.Fatalf("Nodes after Deregister = %v, want [n2]", got)
	}
}

func (s suite) deregisterIdempotent(t *testing.T) {
	c := s.cluster(t, Slow)
	a := c.instance(t)
	ctx := ctxFor(t)
	mustRegister(t, a, node("n1", "h:1"))
	for i := range 3 {
		if err := a.Deregister(ctx, "n1"); err != nil {
			t.Fatalf("Deregister #%d: %v", i+1, err)
		}
	}
	if err := a.Deregister(ctx, "never-registered"); err != nil {
		t.Fatalf("Deregister of an unknown id: %v", err)
	}
}

func (s suite) closeGraceful(t *testing.T) {
	c := s.cluster(t, Slow)
	a, b := c.instance(t), c.instance(t)
	n := node("n1", "h:1", "svc", "1.0.0")
	mustRegister(t, a, n)
	waitNode(t, b, n)
	aw := watch(t, a)
	expect(t, aw, discovery.NodeJoined, "n1")
	bw := watch(t, b)
	expect(t, bw, discovery.NodeJoined, "n1")

	for i := range 3 {
		if err := a.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	expect(t, bw, discovery.NodeLeft, "n1")
	// a's watch ends (it may first deliver a's own Left).
	for _, ev := range drainUntilClosed(t, aw) {
		if ev.Kind != discovery.NodeLeft {
			t.Fatalf("closed instance's watch delivered %v", ev.Kind)
		}
	}
	ctx := ctxFor(t)
	if err := a.Register(ctx, n); !errors.Is(err, discovery.ErrClosed) {
		t.Errorf("Register after Close: %v, want ErrClosed", err)
	}
	if err := a.Deregister(ctx, "n1"); !errors.Is(err, discovery.ErrClosed) {
		t.Errorf("Deregister after Close: %v, want ErrClosed", err)
	}
	if _, err := a.Nodes(ctx); !errors.Is(err, discovery.ErrClosed) {
		t.Errorf("Nodes after Close: %v, want ErrClosed", err)
	}
	if _, err := a.Find(ctx, "svc", ""); !errors.Is(err, discovery.ErrClosed) {
		t.Errorf("Find after Close: %v, want ErrClosed", err)
	}
	if _, err := a.Watch(ctx); !errors.Is(err, discovery.ErrClosed) {
		t.Errorf("Watch after Close: %v, want ErrClosed", err)
	}
}

// drainUntilClosed returns the events left on ch once it is closed.
func drainUntilClosed(t *testing.T, ch <-chan discovery.Event) []discovery.Event {
	t.Helper()
	var evs []discovery.Event
	deadline := time.After(Settle)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return evs
			}
			evs = append(evs, ev)
		case <-deadline:
			t.Fatalf("watch channel not closed within %v", Settle)
		}
	}
}

func (s suite) reRegisterNewDetails(t *testing.T) {
	c := s.cluster(t, Slow)
	a, b := c.instance(t), c.instance(t)
	old := node("n1", "10.0.0.1:4000", "svc", "1.0.0")
	mustRegister(t, a, old)
	waitNode(t, b, old)
	w := watch(t, b)
	expect(t, w, discovery.NodeJoined, "n1")

	updated := node("n1", "10.0.0.2:5000", "svc", "1.1.0", "extra", "0.1.0")
	updated.Metadata = map[string]string{"role": "primary"}
	mustRegister(t, a, updated)
	if got, _ := lookup(nodes(t, a), "n1"); !got.SameDetails(updated) {
		t.Fatalf("own view after re-registration = %+v", got)
	}
	ev := expect(t, w, discovery.NodeUpdated, "n1")
	if !ev.Node.SameDetails(updated) {
		t.Fatalf("Updated event carries %+v, want %+v", ev.Node, updated)
	}
	waitNode(t, b, updated)
	if got, err := b.Find(ctxFor(t), "extra", "^0.1"); err != nil || !slices.Equal(ids(got), []string{"n1"}) {
		t.Fatalf("Find(extra) = %v, %v", ids(got), err)
	}
	if got, err := b.Find(ctxFor(t), "svc", "1.0.0"); err != nil || len(got) != 0 {
		t.Fatalf("Find(svc@1.0.0) after the update = %v, %v; want none", ids(got), err)
	}
	// Address only.
	moved := updated.Clone()
	moved.Address = "10.0.0.3:6000"
	mustRegister(t, a, moved)
	ev = expect(t, w, discovery.NodeUpdated, "n1")
	if ev.Node.Address != moved.Address {
		t.Fatalf("Updated event address = %q, want %q", ev.Node.Address, moved.Address)
	}
}

func (s suite) reRegisterAfterDeregister(t *testing.T) {
	c := s.cluster(t, Slow)
	a, b := c.instance(t), c.instance(t)
	first := node("n1", "h:1", "svc", "1.0.0")
	mustRegister(t, a, first)
	waitNode(t, b, first)
	if err := a.Deregister(ctxFor(t), "n1"); err != nil {
		t.Fatal(err)
	}
	waitGone(t, b, "n1")
	second := node("n1", "h:2", "svc", "2.0.0")
	mustRegister(t, a, second)
	waitNode(t, b, second)
}

func (s suite) concurrentUpdates(t *testing.T) {
	c := s.cluster(t, Slow)
	a, b := c.instance(t), c.instance(t)
	ctx := ctxFor(t)
	const workers, rounds = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*2)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				// All workers fight over "shared"; each also owns a node.
				shared := node("shared", fmt.Sprintf("h:%d", w), "svc", fmt.Sprintf("1.%d.%d", w, r))
				if err := a.Register(ctx, shared); err != nil {
					errs <- err
				}
				own := node(fmt.Sprintf("own-%d", w), fmt.Sprintf("h:%d", w),
					"svc", fmt.Sprintf("2.%d.%d", w, r), "other", "1.0.0")
				if err := a.Register(ctx, own); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Register: %v", err)
	}
	final := nodes(t, a)
	if len(final) != workers+1 {
		t.Fatalf("registering instance lists %d nodes, want %d: %v", len(final), workers+1, ids(final))
	}
	for w := range workers {
		n, _ := lookup(final, fmt.Sprintf("own-%d", w))
		if want := fmt.Sprintf("2.%d.%d", w, rounds-1); len(n.Services) == 0 || n.Services[0].Version != want {
			t.Fatalf("own-%d = %+v, want version %s (its last write)", w, n, want)
		}
	}
	// Every instance converges on the registering instance's final state.
	for _, n := range final {
		waitNode(t, b, n)
	}
	eventually(t, "same node set", func() string {
		if got := ids(nodes(t, b)); !slices.Equal(got, ids(final)) {
			return fmt.Sprintf("%v vs %v", got, ids(final))
		}
		return ""
	})
}

func (s suite) watchInitialSnapshot(t *testing.T) {
	c := s.cluster(t, Slow)
	a, b := c.instance(t), c.instance(t)
	n1, n2 := node("n1", "h:1"), node("n2", "h:2")
	mustRegister(t, a, n1)
	mustRegister(t, a, n2)
	waitNode(t, b, n1)
	waitNode(t, b, n2)
	w := watch(t, b)
	expect2(t, w, discovery.NodeJoined, "n1", "n2")
	quiet(t, w, 3*c.cfg.Heartbeat)
}

func (s suite) watchSequence(t *testing.T) {
	c := s.cluster(t, Slow)
	a, b := c.instance(t), c.instance(t)
	w := watch(t, b)
	v1 := node("n1", "h:1", "svc", "1.0.0")
	mustRegister(t, a, v1)
	if ev := expect(t, w, discovery.NodeJoined, "n1"); !ev.Node.SameDetails(v1) {
		t.Fatalf("Joined carries %+v", ev.Node)
	}
	v2 := node("n1", "h:1", "svc", "1.1.0")
	mustRegister(t, a, v2)
	if ev := expect(t, w, discovery.NodeUpdated, "n1"); !ev.Node.SameDetails(v2) {
		t.Fatalf("Updated carries %+v", ev.Node)
	}
	if err := a.Deregister(ctxFor(t), "n1"); err != nil {
		t.Fatal(err)
	}
	if ev := expect(t, w, discovery.NodeLeft, "n1"); !ev.Node.SameDetails(v2) {
		t.Fatalf("Left carries %+v, want the last details", ev.Node)
	}
}

func (s suite) watchEnds(t *testing.T) {
	c := s.cluster(t, Slow)
	a := c.instance(t)
	ctx, cancel := context.WithCancel(ctxFor(t))
	w1, err := a.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w2 := watch(t, a)
	cancel()
	if evs := drainUntilClosed(t, w1); len(evs) != 0 {
		t.Fatalf("cancelled watch delivered %v", evs)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	drainUntilClosed(t, w2)
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	b := c.instance(t)
	if ch, err := b.Watch(cctx); err == nil {
		// Either refuse a dead context or return a channel that closes.
		drainUntilClosed(t, ch)
	}
}

func (s suite) watchSlowConsumer(t *testing.T) {
	c := s.cluster(t, Slow)
	a, b := c.instance(t), c.instance(t)
	nodes(t, b)      // b has read the (empty) membership: every change is news
	w := watch(t, b) // not read until the end
	var want []string
	var last discovery.NodeInfo
	for i := range 50 {
		last = node("n1", "h:1", "svc", fmt.Sprintf("1.0.%d", i))
		mustRegister(t, a, last)
		kind := discovery.NodeUpdated
		if i == 0 {
			kind = discovery.NodeJoined
		}
		want = append(want, fmt.Sprintf("%v n1 1.0.%d", kind, i))
	}
	mustRegister(t, a, node("gone", "h:2"))
	if err := a.Deregister(ctxFor(t), "gone"); err != nil {
		t.Fatal(err)
	}
	want = append(want, "joined gone", "left gone")
	waitNode(t, b, last)
	waitGone(t, b, "gone")
	// The consumer catches up: it gets every change, in order, although it
	// read none while they happened.
	for i, wantEv := range want {
		ev := next(t, w)
		got := fmt.Sprintf("%v %s", ev.Kind, ev.Node.ID)
		if len(ev.Node.Services) > 0 {
			got += " " + ev.Node.Services[0].Version
		}
		if got != wantEv || ev.Missed != 0 {
			t.Fatalf("event %d = %q (missed %d), want %q", i, got, ev.Missed, wantEv)
		}
	}
	quiet(t, w, 0)
}

func (s suite) lateJoiner(t *testing.T) {
	c := s.cluster(t, Slow)
	a, probe := c.instance(t), c.instance(t)
	n1, n2 := node("n1", "h:1", "svc", "1.0.0"), node("n2", "h:2", "svc", "2.0.0")
	mustRegister(t, a, n1)
	mustRegister(t, a, n2)
	waitNode(t, probe, n1)
	waitNode(t, probe, n2)
	// A new instance knows the members on its first query, without waiting
	// for a heartbeat.
	late := c.instance(t)
	ns := nodes(t, late)
	if got := ids(ns); !slices.Equal(got, []string{"n1", "n2"}) {
		t.Fatalf("late joiner's first Nodes = %v, want [n1 n2]", got)
	}
	if got, err := late.Find(ctxFor(t), "svc", "^2"); err != nil || !slices.Equal(ids(got), []string{"n2"}) {
		t.Fatalf("late joiner's Find = %v, %v", ids(got), err)
	}
}
