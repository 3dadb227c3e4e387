package netron_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/internal/rpccore"
	"github.com/netron-go/netron/internal/testredis"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
)

// lbService is one instance of lb@1.0.0; it counts what it serves.
type lbService struct {
	node    string
	entered atomic.Int64 // Hit calls that began
	served  atomic.Int64 // Hit calls that returned a result
	gate    gate         // armed: Hit waits for its release
	puts    atomic.Int64 // Put executions
	gets    atomic.Int64 // Get executions
	hold    gate         // armed: Put and Get wait for its release
}

// gate blocks handlers while armed.
type gate struct{ ch atomic.Pointer[chan struct{}] }

func (g *gate) arm() { ch := make(chan struct{}); g.ch.Store(&ch) }

func (g *gate) release() {
	if ch := g.ch.Swap(nil); ch != nil {
		close(*ch)
	}
}

func (g *gate) wait(ctx context.Context) error {
	ch := g.ch.Load()
	if ch == nil {
		return nil
	}
	select {
	case <-*ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *lbService) Hit(ctx context.Context) (string, error) {
	s.entered.Add(1)
	if err := s.gate.wait(ctx); err != nil {
		return "", err
	}
	s.served.Add(1)
	return s.node, nil
}

// Put is not idempotent.
func (s *lbService) Put(ctx context.Context, v int) (string, error) {
	s.puts.Add(1)
	return s.node, s.hold.wait(ctx)
}

// Get is marked idempotent at Expose.
func (s *lbService) Get(ctx context.Context, k int) (string, error) {
	s.gets.Add(1)
	return s.node, s.hold.wait(ctx)
}

// Session hands out a child service of this instance.
func (s *lbService) Session() rpc.Ref { return rpc.Child("lbsession@1.0.0", &lbSession{node: s.node}) }

// Ticks streams the instance's id n times.
func (s *lbService) Ticks(n int) <-chan string {
	ch := make(chan string, n)
	for range n {
		ch <- s.node
	}
	close(ch)
	return ch
}

type lbSession struct{ node string }

func (s *lbSession) Where() string { return s.node }

type lbInstance struct {
	node *netron.Node
	svc  *lbService
}

// lbCluster starts instances of lb@1.0.0 and callers on one discovery.
type lbCluster struct {
	t    *testing.T
	disc func(cfg *netron.Config) // sets the discovery of a node
}

func memoryLB(t *testing.T) *lbCluster {
	memory := memoryCluster(t)
	return &lbCluster{t: t, disc: func(cfg *netron.Config) { cfg.DiscoveryBackend = memory(time.Minute) }}
}

func redisLB(t *testing.T) *lbCluster {
	srv := testredis.Start(t)
	host, port := hostPort(t, srv.Addr())
	dc := redisDiscovery(t, netron.RedisConfig{Host: host, Port: port})
	return &lbCluster{t: t, disc: func(cfg *netron.Config) { cfg.Discovery = dc }}
}

func (c *lbCluster) instance(id string) *lbInstance {
	c.t.Helper()
	cfg := netron.Config{ID: id, Host: "127.0.0.1", Server: true}
	c.disc(&cfg)
	n, err := netron.New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	svc := &lbService{node: id}
	if err := n.Expose("lb@1.0.0", svc, rpc.Idempotent("get")); err != nil {
		c.t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = n.Stop(context.Background()) })
	return &lbInstance{node: n, svc: svc}
}

func (c *lbCluster) caller(cfg netron.Config) *netron.Node {
	c.t.Helper()
	cfg.ID = "caller"
	c.disc(&cfg)
	return startNode(c.t, cfg)
}

// members returns the instances of the caller's pool of lb@^1, by node.
func members(n *netron.Node) map[string]rpccore.Member {
	out := map[string]rpccore.Member{}
	for _, m := range netron.PoolMembers(n, "lb@^1") {
		out[m.Node] = m
	}
	return out
}

// usableMembers counts the usable instances of the caller's pool.
func usableMembers(n *netron.Node) int {
	k := 0
	for _, m := range members(n) {
		if m.Usable {
			k++
		}
	}
	return k
}

// waitMembers waits until discovery has the instances, then returns the
// caller's handle on lb@^1 once its pool has them all.
func waitHandle(t *testing.T, caller *netron.Node, want int, opts ...netron.ServiceOption) *rpc.Service {
	t.Helper()
	ctx := context.Background()
	waitFor(t, "the instances in discovery", func() bool {
		nodes, _ := caller.Discovery().Find(ctx, "lb", "^1")
		return len(nodes) == want
	})
	svc, err := caller.Service(ctx, "lb@^1", opts...)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every instance in the pool", func() bool { return usableMembers(caller) == want })
	return svc
}

func hit(t *testing.T, svc *rpc.Service) string {
	t.Helper()
	node, err := rpc.Call[string](context.Background(), svc, "hit")
	if err != nil {
		t.Fatal(err)
	}
	return node
}

// Power of two choices: an instance with a call in flight gets no new
// calls while others have none.
func TestBalancerPowerOfTwoPrefersLessLoaded(t *testing.T) {
	c := memoryLB(t)
	insts := map[string]*lbInstance{}
	for _, id := range []string{"a", "b", "c"} {
		insts[id] = c.instance(id)
	}
	caller := c.caller(netron.Config{})
	svc := waitHandle(t, caller, 3)
	// One call blocks on the instance it lands on.
	for _, in := range insts {
		in.svc.gate.arm()
	}
	blocked := make(chan string, 1)
	go func() {
		node, err := rpc.Call[string](context.Background(), svc, "hit")
		if err != nil {
			t.Error(err)
		}
		blocked <- node
	}()
	var busy *lbInstance
	waitFor(t, "the first call to arrive", func() bool {
		for _, in := range insts {
			if in.svc.entered.Load() == 1 {
				busy = in
				return true
			}
		}
		return false
	})
	for _, in := range insts {
		if in != busy {
			in.svc.gate.release()
		}
	}
	if m := members(caller)[busy.svc.node]; m.InFlight != 1 {
		t.Fatalf("the busy instance has %d calls in flight, want 1", m.InFlight)
	}
	const calls = 60
	got := map[string]int{}
	for range calls {
		got[hit(t, svc)]++
	}
	if n := busy.svc.entered.Load(); n != 1 {
		t.Fatalf("the busy instance %s got %d calls, want only the blocked one (calls: %v)", busy.svc.node, n, got)
	}
	for id := range insts {
		if id != busy.svc.node && got[id] == 0 {
			t.Errorf("idle instance %s got no call of %d: %v", id, calls, got)
		}
	}
	busy.svc.gate.release()
	if node := <-blocked; node != busy.svc.node {
		t.Fatalf("the blocked call came back from %s, want %s", node, busy.svc.node)
	}
}

// Round-robin spreads evenly; a child service and a stream stay on the
// instance that made them.
func TestBalancerRoundRobin(t *testing.T) {
	c := memoryLB(t)
	insts := []*lbInstance{c.instance("a"), c.instance("b"), c.instance("c")}
	caller := c.caller(netron.Config{})
	svc := waitHandle(t, caller, 3, netron.WithBalancer(netron.RoundRobin))
	for range 90 {
		hit(t, svc)
	}
	for _, in := range insts {
		if n := in.svc.served.Load(); n != 30 {
			t.Errorf("instance %s served %d of 90, want 30", in.svc.node, n)
		}
	}
	ctx := context.Background()
	session, err := rpc.Call[*rpc.Service](ctx, svc, "session")
	if err != nil {
		t.Fatal(err)
	}
	home := session.PeerID()
	for range 6 {
		hit(t, svc) // the balanced handle goes round meanwhile
		if where, err := rpc.Call[string](ctx, session, "where"); err != nil || where != home {
			t.Fatalf("the child service answered from %q (%v), want %q where it was made", where, err, home)
		}
	}
	for range 3 {
		var from []string
		for node, err := range rpc.Stream[string](ctx, svc, "ticks", 5) {
			if err != nil {
				t.Fatal(err)
			}
			from = append(from, node)
		}
		if len(from) != 5 || strings.Count(strings.Join(from, ""), from[0]) != 5 {
			t.Fatalf("a stream came from %v, want one instance", from)
		}
	}
}

// A pinned handle stays on its instance.
func TestBalancerPinned(t *testing.T) {
	c := memoryLB(t)
	insts := []*lbInstance{c.instance("a"), c.instance("b"), c.instance("c")}
	caller := c.caller(netron.Config{})
	svc := waitHandle(t, caller, 3, netron.WithPinned())
	pinned := svc.PeerID()
	for range 30 {
		if node := hit(t, svc); node != pinned {
			t.Fatalf("a pinned call went to %s, want %s", node, pinned)
		}
	}
	for _, in := range insts {
		want := int64(0)
		if in.svc.node == pinned {
			want = 30
		}
		if n := in.svc.served.Load(); n != want {
			t.Errorf("instance %s served %d, want %d", in.svc.node, n, want)
		}
	}
}

// A node that joins gets calls; one that leaves gets none.
func TestBalancerFollowsMembership(t *testing.T) {
	c := memoryLB(t)
	a, b := c.instance("a"), c.instance("b")
	caller := c.caller(netron.Config{})
	svc := waitHandle(t, caller, 2, netron.WithBalancer(netron.RoundRobin))
	for range 20 {
		hit(t, svc)
	}
	start := time.Now()
	cc := c.instance("c")
	waitFor(t, "the new instance in the pool", func() bool { return usableMembers(caller) == 3 })
	t.Logf("a new instance was in the pool %v after its node started", time.Since(start))
	for range 30 {
		hit(t, svc)
	}
	if n := cc.svc.served.Load(); n != 10 {
		t.Fatalf("the new instance served %d of 30, want 10", n)
	}
	if err := b.node.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the stopped instance out of the pool", func() bool { _, ok := members(caller)["b"]; return !ok })
	before := b.svc.served.Load()
	for range 20 {
		hit(t, svc)
	}
	if n := b.svc.served.Load(); n != before {
		t.Fatalf("the stopped instance served %d calls after it left", n-before)
	}
	if na, nc := a.svc.served.Load(), cc.svc.served.Load(); na != 10+10+10 || nc != 10+10 {
		t.Fatalf("served a=%d c=%d, want 30 and 20", na, nc)
	}
}

// Kill one of three instances under steady load: the calls that fail are
// at most those that were waiting on it, and the others take the load.
func TestBalancerKillUnderLoad(t *testing.T) { killUnderLoad(t, memoryLB(t)) }

// The same with discovery in a real Redis.
func TestBalancerKillUnderLoadRedis(t *testing.T) { killUnderLoad(t, redisLB(t)) }

func killUnderLoad(t *testing.T, c *lbCluster) {
	insts := []*lbInstance{c.instance("a"), c.instance("b"), c.instance("c")}
	caller := c.caller(netron.Config{})
	svc := waitHandle(t, caller, 3)
	const workers = 8
	var stop atomic.Bool
	var failed atomic.Int64
	var errMu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for !stop.Load() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := rpc.Call[string](ctx, svc, "hit")
				cancel()
				if err != nil {
					failed.Add(1)
					errMu.Lock()
					errs = append(errs, err)
					errMu.Unlock()
				}
			}
		})
	}
	defer func() { stop.Store(true); wg.Wait() }()
	waitFor(t, "load on every instance", func() bool {
		for _, in := range insts {
			if in.svc.served.Load() < 50 {
				return false
			}
		}
		return true
	})
	victim, survivors := insts[1], []*lbInstance{insts[0], insts[2]}
	// The victim turns slow: the calls it gets wait in its handler, so
	// some are in flight on it when it dies (the balancer sends it fewer
	// as they pile up).
	victim.svc.gate.arm()
	entered := victim.svc.entered.Load()
	waitFor(t, "calls waiting on the victim", func() bool { return victim.svc.entered.Load() >= entered+2 })
	orphans := netron.OrphanCounter(caller, victim.svc.node)
	var at [2]int64
	for i, s := range survivors {
		at[i] = s.svc.served.Load()
	}
	unusable := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		for members(caller)[victim.svc.node].Usable {
			time.Sleep(100 * time.Microsecond)
		}
		unusable <- time.Since(start)
	}()
	waiting := victim.svc.entered.Load() - victim.svc.served.Load() // no call leaves the gate: they fail
	if err := victim.node.Close(); err != nil {
		t.Fatal(err)
	}
	servedByVictim := victim.svc.served.Load() // Close waited for its handlers
	moved := <-unusable
	waitFor(t, "the load on the survivors", func() bool {
		for i, s := range survivors {
			if s.svc.served.Load() < at[i]+200 {
				return false
			}
		}
		return true
	})
	stop.Store(true)
	wg.Wait()
	orphaned := orphans()
	t.Logf("killed %s with %d calls in its handler: %d calls failed, %d were waiting on it, the pool stopped picking it %v after the kill began",
		victim.svc.node, waiting, failed.Load(), orphaned, moved)
	if n := failed.Load(); n > int64(orphaned) || n < waiting {
		t.Errorf("%d calls failed; want between the %d in the killed instance's handler and the %d waiting on it: %v", n, waiting, orphaned, errs)
	}
	if orphaned > workers {
		t.Errorf("%d calls were waiting on the killed instance, more than the %d callers", orphaned, workers)
	}
	for _, err := range errs {
		if !errors.Is(err, netron.ErrPeerDisconnected) {
			t.Errorf("a call failed with %v, want ErrPeerDisconnected", err)
		}
	}
	if n := victim.svc.served.Load(); n != servedByVictim {
		t.Errorf("the killed instance served %d calls after its Close", n-servedByVictim)
	}
	waitFor(t, "the killed instance out of the pool", func() bool { _, ok := members(caller)[victim.svc.node]; return !ok })
}

// An instance whose calls time out is ejected, then tried again and back
// once it answers.
func TestBalancerEjectsAndProbesBack(t *testing.T) {
	c := memoryLB(t)
	a, _ := c.instance("a"), c.instance("b")
	caller := c.caller(netron.Config{OutlierDetection: netron.OutlierDetection{
		ConsecutiveFailures: 2, BaseEjectionTime: 20 * time.Millisecond, MaxEjectionPercent: 50}})
	svc := waitHandle(t, caller, 2, netron.WithBalancer(netron.RoundRobin))
	a.svc.gate.arm()
	timeouts := 0
	waitFor(t, "the ejection of the sick instance", func() bool {
		// The timeout makes the sick instance fail; b answers long before.
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if _, err := rpc.Call[string](ctx, svc, "hit"); errors.Is(err, context.DeadlineExceeded) {
			timeouts++
		} else if err != nil {
			t.Fatal(err)
		}
		return members(caller)["a"].Ejections >= 1
	})
	if timeouts < 2 {
		t.Fatalf("ejected after %d timeouts, want 2", timeouts)
	}
	a.svc.gate.release()
	waitFor(t, "the instance back", func() bool {
		node, err := rpc.Call[string](context.Background(), svc, "hit")
		if err != nil {
			t.Fatal(err)
		}
		return node == "a"
	})
	if m := members(caller)["a"]; m.Ejected {
		t.Fatalf("the instance answered but is still ejected: %+v", m)
	}
}

// A call that failed after it was sent runs again elsewhere only when its
// method is idempotent; the instances count executions.
func TestBalancerRetries(t *testing.T) {
	for _, idempotent := range []bool{false, true} {
		method := map[bool]string{false: "put", true: "get"}[idempotent]
		t.Run(method, func(t *testing.T) {
			c := memoryLB(t)
			insts := []*lbInstance{c.instance("a"), c.instance("b")}
			caller := c.caller(netron.Config{})
			svc := waitHandle(t, caller, 2)
			if d := svc.Description().Methods[method]; d.Idempotent != idempotent {
				t.Fatalf("%s: Idempotent %v in the description, want %v", method, d.Idempotent, idempotent)
			}
			execs := func(in *lbInstance) int64 {
				if idempotent {
					return in.svc.gets.Load()
				}
				return in.svc.puts.Load()
			}
			for _, in := range insts {
				in.svc.hold.arm()
			}
			type result struct {
				node string
				err  error
			}
			done := make(chan result, 1)
			go func() {
				node, err := rpc.Call[string](context.Background(), svc, method, 1)
				done <- result{node, err}
			}()
			var first, other *lbInstance
			waitFor(t, "the call to run", func() bool {
				for i, in := range insts {
					if execs(in) == 1 {
						first, other = in, insts[1-i]
						return true
					}
				}
				return false
			})
			other.svc.hold.release()
			if err := first.node.Close(); err != nil {
				t.Fatal(err)
			}
			r := <-done
			if idempotent {
				if r.err != nil || r.node != other.svc.node {
					t.Fatalf("the idempotent call returned %q, %v; want it run again on %s", r.node, r.err, other.svc.node)
				}
				if execs(other) != 1 {
					t.Fatalf("the other instance ran it %d times, want 1", execs(other))
				}
			} else {
				if !errors.Is(r.err, netron.ErrPeerDisconnected) {
					t.Fatalf("the call returned %q, %v; want ErrPeerDisconnected", r.node, r.err)
				}
				if n := execs(other); n != 0 {
					t.Fatalf("a call that was sent ran again: %d times on the other instance", n)
				}
			}
			if n := execs(first); n != 1 {
				t.Fatalf("the first instance ran it %d times, want 1", n)
			}
		})
	}
}

// Plain Netron (Titan) instances, found by the same discovery entries,
// are balanced over like Go ones; client-only members are skipped.
func TestBalancerTitanInstance(t *testing.T) {
	c := memoryLB(t)
	a, b := c.instance("a"), c.instance("b")
	url, calls := fakeTitanLB(t, "titan")
	ctx := context.Background()
	var cfg netron.Config
	c.disc(&cfg)
	reg := cfg.DiscoveryBackend // the Titan node's own registration, as it would make it
	for _, info := range []discovery.NodeInfo{
		{ID: "titan", Address: url, Services: []discovery.ServiceInfo{{Name: "lb", Version: "1.0.0"}}},
		{ID: "ghost", Services: []discovery.ServiceInfo{{Name: "lb", Version: "1.0.0"}}}, // client-only
	} {
		if err := reg.Register(ctx, info); err != nil {
			t.Fatal(err)
		}
	}
	caller := c.caller(netron.Config{})
	waitFor(t, "every member in discovery", func() bool {
		nodes, _ := caller.Discovery().Find(ctx, "lb", "^1")
		return len(nodes) == 4
	})
	svc, err := caller.Service(ctx, "lb@^1", netron.WithBalancer(netron.RoundRobin))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "three instances in the pool", func() bool { return usableMembers(caller) == 3 })
	if _, ok := members(caller)["ghost"]; ok {
		t.Fatal("a client-only member is in the pool")
	}
	got := map[string]int{}
	for range 30 {
		got[hit(t, svc)]++
	}
	if got["titan"] != 10 || calls.Load() != 10 || a.svc.served.Load() != 10 || b.svc.served.Load() != 10 {
		t.Fatalf("calls %v (Titan counted %d), want 10 each", got, calls.Load())
	}
}

// fakeTitanLB is a plain Netron server (capture 2's handshake, 404 to every
// task but query_interface) offering lb@1.0.0, whose hit answers id.
func fakeTitanLB(t *testing.T, id string) (string, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		if ws.Write(ctx, websocket.MessageBinary, fmt.Appendf(nil, `{"type":"id","id":%q}`, id)) != nil {
			return
		}
		if _, _, err := ws.Read(ctx); err != nil { // client-id
			return
		}
		def := wire.Definition{ID: "def-" + id, PeerID: id, Meta: wire.ServiceMeta{
			Name: "lb", Version: "1.0.0", Properties: map[string]wire.PropertyMeta{},
			Methods: map[string]wire.MethodMeta{"hit": {Type: "String", Arguments: []wire.ArgumentMeta{}}},
		}}
		for {
			_, msg, err := ws.Read(ctx)
			if err != nil {
				return
			}
			p, err := wire.Decode(msg)
			if err != nil {
				continue
			}
			var out []byte
			switch p.Type() {
			case wire.TypeTask:
				var req []any
				_ = wire.Unmarshal(p.Data, &req)
				name, _ := req[0].(string)
				if name == "query_interface" {
					out, _ = wire.AppendMarshal(wire.AppendHeader(nil, p.ID, wire.Flags(wire.TypeTask, false, 0)), def)
				} else {
					out, _ = wire.AppendMarshal(wire.AppendHeader(nil, p.ID, wire.Flags(wire.TypeTask, false, 0x80)), wire.TitanError{
						Name: "TitanError", Code: 404, Message: "Task with id " + name + " not found",
						Details: map[string]any{"resource": "Task", "id": name},
					})
				}
			case wire.TypeCall:
				calls.Add(1)
				out, _ = wire.AppendMarshal(wire.AppendHeader(nil, p.ID, wire.Flags(wire.TypeCall, false, 0)), id)
			default:
				continue
			}
			if ws.Write(ctx, websocket.MessageBinary, out) != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), &calls
}
