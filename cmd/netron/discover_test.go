package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/redisdisc"
	"github.com/netron-go/netron/internal/testredis"
)

// registrar is a discovery instance of the test's own on srv, under the
// test's prefix, that registers nodes for the commands to find.
func registrar(t *testing.T, srv *testredis.Server) (*redisdisc.Discovery, string) {
	t.Helper()
	prefix := "test:" + t.Name()
	d, err := redisdisc.Connect(srv.Addr(), "", 0, redisdisc.WithPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d, prefix
}

// deafListener accepts TCP connections and never answers them: a node
// that does not respond to the WebSocket handshake.
func deafListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// call, services and nodes find their node through discovery: by the
// service called, by --node ID, and the listing of the cluster, which
// leaves client-only members out unless --all.
func TestCommandsThroughDiscovery(t *testing.T) {
	ctx := testCtx(t)
	srv := testredis.Start(t)
	reg, prefix := registrar(t, srv)
	node := liveNode(t, "calc")
	for _, n := range []discovery.NodeInfo{
		{ID: "calc", Address: node.URL(), Services: []discovery.ServiceInfo{{Name: "calculator", Version: "1.0.0"}, {Name: "data", Version: "1.0.0"}}},
		{ID: "watcher"}, // client-only
	} {
		if err := reg.Register(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	disc := []string{"--discovery", "redis://" + srv.Addr(), "--prefix", prefix}
	with := func(args ...string) []string { return append(append([]string{args[0]}, disc...), args[1:]...) }
	if code, stdout, stderr := runCmd(ctx, with("call", "calculator@^1", "add", "2", "3")...); code != exitOK || stdout != "5\n" {
		t.Fatalf("call through discovery: %d %q %q", code, stdout, stderr)
	}
	if code, stdout, stderr := runCmd(ctx, with("services", "--node", "calc")...); code != exitOK || !strings.HasPrefix(stdout, "calculator@1.0.0\n") {
		t.Fatalf("services --node calc: %d %q %q", code, stdout, stderr)
	}
	// The only node with an address needs no --node.
	if code, stdout, stderr := runCmd(ctx, with("services")...); code != exitOK || !strings.HasPrefix(stdout, "calculator@1.0.0\n") {
		t.Fatalf("services: %d %q %q", code, stdout, stderr)
	}
	if code, _, stderr := runCmd(ctx, with("services", "--node", "nobody")...); code != exitFailure || !strings.Contains(stderr, `no node "nobody" (it has calc)`) {
		t.Fatalf("services --node nobody: %d %q", code, stderr)
	}
	code, stdout, stderr := runCmd(ctx, with("nodes")...)
	if code != exitOK || !strings.Contains(stdout, "calc") || !strings.Contains(stdout, node.URL()) ||
		!strings.Contains(stdout, "calculator@1.0.0,data@1.0.0") || strings.Contains(stdout, "watcher") {
		t.Fatalf("nodes: %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, stderr := runCmd(ctx, with("nodes", "--all")...); code != exitOK || !strings.Contains(stdout, "watcher  (client only)") {
		t.Fatalf("nodes --all: %d\n%s%s", code, stdout, stderr)
	}
	if code, _, stderr := runCmd(ctx, with("call", "nothing@^1", "x")...); code != exitFailure || !strings.Contains(stderr, "no node in discovery offers nothing@^1") {
		t.Fatalf("call of a service nobody offers: %d %q", code, stderr)
	}
}

// call through discovery tries the nodes offering the service one after
// another within one deadline, --timeout: once a node that does not answer
// has used it up, the others are not tried.
func TestCallThroughDiscoveryKeepsOneDeadline(t *testing.T) {
	ctx := testCtx(t)
	srv := testredis.Start(t)
	reg, prefix := registrar(t, srv)
	for i := range 3 {
		n := discovery.NodeInfo{ID: fmt.Sprint("deaf-", i), Address: "ws://" + deafListener(t) + "/",
			Services: []discovery.ServiceInfo{{Name: "slow", Version: "1.0.0"}}}
		if err := reg.Register(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	code, _, stderr := runCmd(ctx, "call", "--discovery", "redis://"+srv.Addr(), "--prefix", prefix, "--timeout", "1s", "slow@^1", "run")
	if code != exitFailure {
		t.Fatalf("call of deaf nodes: exit %d\n%s", code, stderr)
	}
	if n := strings.Count(stderr, "not tried: context deadline exceeded"); n != 2 {
		t.Fatalf("%d of the 3 deaf nodes not tried, want 2: the first uses the whole deadline\n%s", n, stderr)
	}
}

// serve --discovery joins the cluster of that Redis; call --wait with
// --discovery waits for discovery to list a node offering the service
// (here started only once call has found none and waits), then calls it.
func TestServeJoinsDiscoveryAndCallWaits(t *testing.T) {
	ctx := testCtx(t)
	srv := testredis.Start(t)
	disc := "redis://" + srv.Addr()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	var out, errOut buffer
	done := make(chan int, 1)
	var once sync.Once
	refusedHook = func() {
		once.Do(func() {
			go func() {
				done <- run(sctx, []string{"serve", "--discovery", disc, "--host", "127.0.0.1", "--port", "0", "--id", "served", "--demo-services", "--log-level", "error"}, &out, &errOut)
			}()
		})
	}
	defer func() { refusedHook = nil }()
	if code, stdout, stderr := runCmd(ctx, "call", "--discovery", disc, "--wait", "1m", "calculator@^1", "add", "2", "3"); code != exitOK || stdout != "5\n" {
		t.Fatalf("call --wait through discovery: %d %q %q", code, stdout, stderr)
	}
	m := listening.FindStringSubmatch(out.String())
	if m == nil || m[1] != "served" {
		t.Fatalf("serve's stdout %q", out.String())
	}
	if code, stdout, stderr := runCmd(ctx, "nodes", "--discovery", disc); code != exitOK || !strings.Contains(stdout, "served  "+m[2]) {
		t.Fatalf("nodes: %d %q %q", code, stdout, stderr)
	}
	stop()
	if code := <-done; code != exitOK {
		t.Fatalf("serve exit %d: %s", code, errOut.String())
	}
	// serve deregistered: discovery lists nobody.
	if code, stdout, stderr := runCmd(ctx, "nodes", "--discovery", disc); code != exitOK || strings.Contains(stdout, "served") {
		t.Fatalf("nodes after serve stopped: %d %q %q", code, stdout, stderr)
	}
}
