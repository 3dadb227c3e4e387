package netron_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/rpc"
)

// peerService starts a node called id, connects it to srv and looks spec
// up there. Connecting and looking up are requests too: tests that take
// the node's slots do this first.
func peerService(t *testing.T, srv *netron.Node, id, spec string) *rpc.Service {
	t.Helper()
	n := startNode(t, nodeConfig(id, false))
	p, err := n.Connect(context.Background(), srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := p.Service(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// Gate's Wait holds its request until the gate opens.
type Gate struct {
	entered chan struct{}
	open    chan struct{}
}

func (g *Gate) Wait() int {
	g.entered <- struct{}{}
	<-g.open
	return 1
}

func (g *Gate) Fast() int { return 2 }

// A node running as many requests as it may keeps reading its
// connections: a request that waits for a slot must not hold up the
// pongs, responses and stream chunks behind it. Before, it waited on the
// connection's reader, and keep-alive closed the connection of a peer
// whose request waited longer than the ping's timeout. Here the node
// calls the waiting peer back while its request waits: the response comes
// on the connection whose reader would be stuck.
func TestSaturatedNodeKeepsReading(t *testing.T) {
	ctx := context.Background()
	cfg := nodeConfig("busy", true)
	cfg.MaxConcurrentRequests = 1
	srv := startNode(t, cfg)
	g := &Gate{entered: make(chan struct{}), open: make(chan struct{})}
	if err := srv.Expose("gate@1.0.0", g); err != nil {
		t.Fatal(err)
	}
	defer func() {
		select {
		case <-g.open:
		default:
			close(g.open)
		}
	}()

	waiter := startNode(t, nodeConfig("waiter", false))
	if err := waiter.Expose("everything@1.0.0", Everything{}); err != nil {
		t.Fatal(err)
	}
	wp, err := waiter.Connect(ctx, srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	ws, err := wp.Service(ctx, "gate@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	hs := peerService(t, srv, "holder", "gate@1.0.0")
	held := make(chan error, 1)
	go func() {
		_, err := hs.Call(ctx, "wait")
		held <- err
	}()
	select {
	case <-g.entered: // the node's only slot is taken
	case <-time.After(30 * time.Second):
		t.Fatal("the holding request never ran")
	}

	fast := make(chan error, 1)
	go func() {
		v, err := rpc.Call[int](ctx, ws, "fast")
		if err == nil && v != 2 {
			t.Errorf("fast = %d", v)
		}
		fast <- err
	}()
	waitFor(t, "the waiter's request to wait for the slot", func() bool { return netron.ServerWaiting(srv) == 1 })
	// The node calls the waiter: its own requests need no slot of its own,
	// and the response must be read while the waiter's request waits.
	var back *netron.Peer
	for _, p := range srv.Peers() {
		if p.ID() == "waiter" {
			back = p
		}
	}
	if back == nil {
		t.Fatal("the node has no peer called waiter")
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	echo, err := back.Service(cctx, "everything@1.0.0")
	if err != nil {
		t.Fatalf("looking up the waiter's service while its request waits: %v", err)
	}
	if v, err := rpc.Call[int](cctx, echo, "int", 7); err != nil || v != 7 {
		t.Fatalf("calling the waiter while its request waits: %v, %v", v, err)
	}
	select {
	case err := <-fast:
		t.Fatalf("the waiting request ended before the slot was free: %v", err)
	default:
	}
	close(g.open)
	for _, ch := range []chan error{held, fast} {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("request failed: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a request never finished")
		}
	}
}

// Turnstile's Enter reports its caller's tag, then waits for a turn.
type Turnstile struct {
	entered chan string
	turn    chan struct{}
}

func (ts *Turnstile) Enter(tag string) int {
	ts.entered <- tag
	<-ts.turn
	return 1
}

// Connections with requests waiting for a slot take the slots that free
// in turn: a peer that queued many requests does not make another peer's
// one request wait behind all of them.
func TestWaitingRequestsTakeTurns(t *testing.T) {
	ctx := context.Background()
	cfg := nodeConfig("busy", true)
	cfg.MaxConcurrentRequests = 1
	srv := startNode(t, cfg)
	ts := &Turnstile{entered: make(chan string, 32), turn: make(chan struct{})}
	if err := srv.Expose("turnstile@1.0.0", ts); err != nil {
		t.Fatal(err)
	}
	a, b := peerService(t, srv, "a", "turnstile@1.0.0"), peerService(t, srv, "b", "turnstile@1.0.0")
	calls := make(chan error, 16)
	call := func(svc *rpc.Service, tag string) {
		go func() {
			_, err := svc.Call(ctx, "enter", tag)
			calls <- err
		}()
	}
	next := func() string {
		t.Helper()
		select {
		case tag := <-ts.entered:
			return tag
		case <-time.After(5 * time.Second):
			t.Fatal("no request entered")
			return ""
		}
	}
	call(a, "a")
	if tag := next(); tag != "a" { // it holds the node's only slot
		t.Fatalf("entered %q", tag)
	}
	const queued = 10
	for range queued {
		call(a, "a")
	}
	waitFor(t, "a's requests to wait for the slot", func() bool { return netron.ServerWaiting(srv) == queued })
	call(b, "b")
	waitFor(t, "b's request to wait for the slot", func() bool { return netron.ServerWaiting(srv) == queued+1 })
	var order []string
	for range queued + 1 {
		ts.turn <- struct{}{}
		order = append(order, next())
	}
	ts.turn <- struct{}{}
	for range queued + 2 {
		if err := <-calls; err != nil {
			t.Fatal(err)
		}
	}
	if i := slices.Index(order, "b"); i < 0 || i > 1 {
		t.Fatalf("b's request started as %d of the %d waiting (%v), want in the first two", i+1, len(order), order)
	}
}

// holdSlot starts a node with one slot and two requests per peer, whose
// Gate service a peer per id looks up, then has the first peer take the
// slot. It returns the node, the other peers' handles on the service and
// a function that opens the gate.
func holdSlot(t *testing.T, ids ...string) (*netron.Node, []*rpc.Service, func()) {
	t.Helper()
	ctx := context.Background()
	cfg := nodeConfig("busy", true)
	cfg.MaxConcurrentRequests, cfg.MaxConcurrentRequestsPerPeer = 1, 2
	srv := startNode(t, cfg)
	g := &Gate{entered: make(chan struct{}), open: make(chan struct{})}
	if err := srv.Expose("gate@1.0.0", g); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	open := func() { once.Do(func() { close(g.open) }) }
	t.Cleanup(open)
	var svcs []*rpc.Service
	for _, id := range ids {
		svcs = append(svcs, peerService(t, srv, id, "gate@1.0.0"))
	}
	go func() { _, _ = svcs[0].Call(ctx, "wait") }()
	select {
	case <-g.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the holding request never ran")
	}
	return srv, svcs[1:], open
}

// Requests wait for a slot up to the node's bound (its concurrency, or
// the per-peer limit if more: 2 here); one more is refused at once with
// 429, and the waiting ones run once the slot frees.
func TestOverloadedNodeRefuses(t *testing.T) {
	ctx := context.Background()
	srv, svcs, open := holdSlot(t, "holder", "b", "c", "d")
	results := make(chan error, 2)
	for _, svc := range svcs[:2] {
		go func() {
			_, err := rpc.Call[int](ctx, svc, "fast")
			results <- err
		}()
	}
	waitFor(t, "both requests to wait for the slot", func() bool { return netron.ServerWaiting(srv) == 2 })
	// Refused at once: the slot is still held, so an answer now cannot
	// have come from a request that ran.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second) // a request that waited would time out
	defer cancel()
	_, err := rpc.Call[int](cctx, svcs[2], "fast")
	if !errors.Is(err, rpc.ErrTooManyRequests) {
		t.Fatalf("a request past the bound: %v, want ErrTooManyRequests", err)
	}
	open()
	for range 2 {
		select {
		case err := <-results:
			if err != nil {
				t.Fatalf("a waiting request failed: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a waiting request never ran")
		}
	}
}

// While the node drains, requests waiting for a slot are answered 503 at
// once, not after the running ones have finished.
func TestDrainRefusesWaitingRequests(t *testing.T) {
	ctx := context.Background()
	srv, svcs, open := holdSlot(t, "holder", "b")
	waited := make(chan error, 1)
	go func() {
		_, err := rpc.Call[int](ctx, svcs[0], "fast")
		waited <- err
	}()
	waitFor(t, "the request to wait for the slot", func() bool { return netron.ServerWaiting(srv) == 1 })
	drained := make(chan error, 1)
	go func() { drained <- netron.DrainServer(ctx, srv) }()
	select {
	case err := <-waited:
		if !errors.Is(err, rpc.ErrUnavailable) {
			t.Fatalf("the waiting request: %v, want ErrUnavailable", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the waiting request was not answered while the node drained")
	}
	select {
	case err := <-drained:
		t.Fatalf("Drain returned with a request running: %v", err)
	default:
	}
	open()
	select {
	case err := <-drained:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Drain did not return once the running request ended")
	}
}
