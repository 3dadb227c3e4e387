package rpccore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/peer"
	"github.com/netron-go/netron/rpc"
)

// versionServer serves calc at version on a loopback listener of its own.
func versionServer(t *testing.T, id, version string) string {
	t.Helper()
	b := bus.New()
	reg := NewRegistry(id)
	if _, err := reg.Expose("calc@"+version, calc{}, rpc.Idempotent("add")); err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(b, reg)
	if err != nil {
		t.Fatal(err)
	}
	hub := transport.NewHub(b, id)
	addr, err := hub.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close(); srv.Close(); b.Close() })
	return "ws://" + addr.String()
}

// testPool joins one instance per version, node ids n0, n1, …
func testPool(t *testing.T, od Outlier, versions ...string) (*Pool, []*switchable) {
	t.Helper()
	ctx := context.Background()
	b := bus.New()
	c, err := NewClient(b)
	if err != nil {
		t.Fatal(err)
	}
	hub := transport.NewHub(b, "client")
	t.Cleanup(func() { hub.Close(); c.Close(); b.Close() })
	p := NewPool(c, od, nil)
	var srcs []*switchable
	for i, v := range versions {
		id := fmt.Sprintf("n%d", i)
		conn, err := hub.Dial(ctx, versionServer(t, id, v))
		if err != nil {
			t.Fatal(err)
		}
		src := &switchable{}
		src.conn.Store(conn)
		if err := p.Join(ctx, id, src, "calc@"+v); err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, src)
	}
	return p, srcs
}

func endpointOf(p *Pool, node string) *endpoint {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, e := range p.eps {
		if e.node == node {
			return e
		}
	}
	return nil
}

// endEjection makes e's ejection end now.
func endEjection(e *endpoint) {
	e.mu.Lock()
	e.until = time.Now().Add(-time.Millisecond)
	e.mu.Unlock()
}

func ejection(e *endpoint) (out bool, left time.Duration, multiplier int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.out, time.Until(e.until), e.multiplier
}

func TestOutlierEjection(t *testing.T) {
	const base = time.Hour // never ends by itself within the test
	p, _ := testPool(t, Outlier{ConsecutiveFailures: 2, BaseEjectionTime: base, MaxEjectionTime: 3 * base, MaxEjectionPercent: 50},
		"1.0.0", "1.0.0", "1.0.0")
	e0, e1, e2 := endpointOf(p, "n0"), endpointOf(p, "n1"), endpointOf(p, "n2")
	lost := fmt.Errorf("call: %w", peer.ErrDisconnected)
	answer := &rpc.Error{Code: 500, Message: "the method failed"}
	fail := func(e *endpoint, err error) { e.inflight.Add(1); p.done(e, err, false) }

	// Consecutive: an answer in between resets the count; a cancelled
	// call counts for nothing.
	fail(e0, lost)
	e0.inflight.Add(1)
	p.done(e0, answer, true)
	fail(e0, lost)
	fail(e0, context.Canceled)
	if out, _, _ := ejection(e0); out {
		t.Fatal("ejected without 2 failures in a row")
	}
	fail(e0, context.DeadlineExceeded) // a timeout is a failure
	if out, left, m := ejection(e0); !out || m != 1 || left <= base-time.Minute || left > base {
		t.Fatalf("after 2 failures in a row: ejected %v for %v (multiplier %d), want 1 h", out, left, m)
	}
	// 1 of 3 ejected (33 % < 50 %): another may be; then 2 of 3 (66 %): no more.
	fail(e1, lost)
	fail(e1, lost)
	fail(e2, lost)
	fail(e2, lost)
	if out, _, _ := ejection(e1); !out {
		t.Fatal("the second instance was not ejected at 33 %")
	}
	if out, _, _ := ejection(e2); out {
		t.Fatal("the third instance was ejected beyond MaxEjectionPercent")
	}
	// Ejected instances are not picked.
	var rr atomic.Uint64
	for range 20 {
		e := p.pick(PowerOfTwo, &rr, nil)
		if e != e2 {
			t.Fatalf("picked %s while it is ejected", e.node)
		}
		p.done(e, nil, true)
	}
	// A probe when the ejection ends: one call at a time; failed, it is
	// ejected for twice as long.
	endEjection(e0)
	probe := p.pick(RoundRobin, &rr, nil)
	if probe != e0 {
		t.Fatalf("picked %v, want the instance whose ejection ended", probe.node)
	}
	if again := p.pick(RoundRobin, &rr, nil); again == e0 {
		t.Fatal("a second call probes while the first does")
	} else {
		p.done(again, nil, true)
	}
	p.done(e0, lost, false)
	if out, left, m := ejection(e0); !out || m != 2 || left <= 2*base-time.Minute || left > 2*base {
		t.Fatalf("after a failed probe: ejected %v for %v (multiplier %d), want 2 h", out, left, m)
	}
	// Answered, the probe brings it back.
	endEjection(e0)
	if probe := p.pick(RoundRobin, &rr, nil); probe != e0 {
		t.Fatalf("picked %v, want the probe", probe.node)
	}
	p.done(e0, answer, true)
	if out, _, _ := ejection(e0); out || p.ejectedN.Load() != 1 {
		t.Fatalf("after an answered probe: ejected %v, %d ejected in the pool", out, p.ejectedN.Load())
	}
	// Each BaseEjectionTime back takes one off the multiplier.
	e0.mu.Lock()
	e0.returned = time.Now().Add(-base - time.Minute)
	e0.mu.Unlock()
	p.ejectedN.Add(-1) // let e0 be ejected (e1 stays)
	fail(e0, lost)
	fail(e0, lost)
	p.ejectedN.Add(1)
	if out, left, m := ejection(e0); !out || m != 2 || left <= 2*base-time.Minute {
		t.Fatalf("ejected again an hour after coming back: ejected %v for %v (multiplier %d), want multiplier 2-1+1", out, left, m)
	}
	// MaxEjectionTime caps it.
	for range 3 {
		endEjection(e0)
		if probe := p.pick(RoundRobin, &rr, nil); probe != e0 {
			t.Fatalf("picked %v, want the probe", probe.node)
		}
		p.done(e0, lost, false)
	}
	if _, left, m := ejection(e0); m != 5 || left > 3*base {
		t.Fatalf("multiplier %d, ejection %v; want 5 and at most MaxEjectionTime", m, left)
	}
	// A removed instance no longer counts as ejected.
	if !p.Remove("n0") || !p.Remove("n1") || p.ejectedN.Load() != 0 {
		t.Fatalf("after removing the ejected instances, %d ejected", p.ejectedN.Load())
	}
	for _, m := range p.Members() {
		if m.Node != "n2" {
			t.Fatalf("members %+v after the removals", p.Members())
		}
	}
}

// The highest version with a usable instance is called; the lower ones
// only while it has none.
func TestPoolHighestVersionFirst(t *testing.T) {
	ctx := context.Background()
	p, srcs := testPool(t, Outlier{}, "1.0.0", "1.2.0")
	svc, err := p.Handle(PowerOfTwo)
	if err != nil {
		t.Fatal(err)
	}
	if svc.Version() != "1.2.0" {
		t.Fatalf("the handle describes %s, want the highest version", svc.QualifiedName())
	}
	for range 10 {
		if _, err := rpc.Call[int](ctx, svc, "add", 1, 2); err != nil {
			t.Fatal(err)
		}
		if svc.PeerID() != "n1" {
			t.Fatalf("served by %s, want n1 (1.2.0)", svc.PeerID())
		}
	}
	down := error(peer.ErrDisconnected)
	srcs[1].err.Store(&down) // 1.2.0 reconnecting: 1.0.0 takes the calls
	for range 5 {
		if _, err := rpc.Call[int](ctx, svc, "add", 1, 2); err != nil {
			t.Fatal(err)
		}
		if svc.PeerID() != "n0" {
			t.Fatalf("served by %s, want n0 while n1 has no connection", svc.PeerID())
		}
	}
	srcs[0].err.Store(&down)
	if _, err := svc.Call(ctx, "add", 1, 2); !errors.Is(err, rpc.ErrNoInstance) {
		t.Fatalf("with no usable instance: %v, want ErrNoInstance", err)
	}
}

func TestRetryable(t *testing.T) {
	lost := fmt.Errorf("x: %w", peer.ErrDisconnected)
	answer := &rpc.Error{Code: 500}
	for _, tt := range []struct {
		err              error
		sent, idempotent bool
		want             bool
	}{
		{lost, false, false, true},
		{peer.ErrGoingAway, false, false, true},
		{rpc.ErrServiceNotFound, false, false, true},
		{lost, true, false, false},
		{lost, true, true, true},
		{peer.ErrWriteTimeout, true, true, true},
		{context.DeadlineExceeded, true, true, false},
		{context.DeadlineExceeded, false, false, false},
		{answer, true, true, false},
		{errors.New("rpc: argument 1 (chan int): unsupported"), false, true, false},
	} {
		if got := retryable(tt.err, tt.sent, tt.idempotent); got != tt.want {
			t.Errorf("retryable(%v, sent %v, idempotent %v) = %v, want %v", tt.err, tt.sent, tt.idempotent, got, tt.want)
		}
	}
}

// An unknown method named idempotent fails the Expose.
func TestIdempotentUnknownMethod(t *testing.T) {
	reg := NewRegistry("n")
	if _, err := reg.Expose("calc@1.0.0", calc{}, rpc.Idempotent("nope")); !errors.Is(err, rpc.ErrInvalidService) {
		t.Fatalf("Expose with an unknown idempotent method: %v", err)
	}
	def, err := reg.Expose("calc@1.0.0", calc{}, rpc.Idempotent("Add", "withCtx"))
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range def.Meta.Methods {
		if want := name == "add" || name == "withCtx"; m.Idempotent != want {
			t.Errorf("%s: Idempotent %v, want %v", name, m.Idempotent, want)
		}
	}
}
