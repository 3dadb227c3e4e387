package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/internal/testredis"
	"github.com/netron-go/netron/rpc"
)

// nsGreeter is the service of the nodes of the namespace test.
type nsGreeter struct{ id string }

// Hello greets name from the node.
func (g nsGreeter) Hello(name string) string { return "hello " + name + " from " + g.id }

// runCallerNode is a node process: args are its id, the service it
// offers, the service it calls (a range), the Redis address and the
// discovery prefix. It listens on port 9000 of every interface with no
// advertise setting, prints "URL <its URL>", then, once discovery has
// found the other service and a call succeeded, "CALLED <result>"; it
// stops on SIGTERM (exit 0).
func runCallerNode(args []string) int {
	if len(args) != 5 {
		fmt.Fprintln(os.Stderr, "caller node: want id, service, other service, redis address, prefix")
		return 2
	}
	id, own, other, redisAddr, prefix := args[0], args[1], args[2], args[3], args[4]
	host, p, _ := net.SplitHostPort(redisAddr)
	port, _ := strconv.Atoi(p)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	n, err := netron.New(netron.Config{ID: id, Port: 9000, Discovery: netron.DiscoveryConfig{
		Enabled: true, Redis: netron.RedisConfig{Host: host, Port: port},
		Interval: 100 * time.Millisecond, TTL: 1500 * time.Millisecond, Prefix: prefix,
	}})
	if err == nil {
		err = n.Expose(own, nsGreeter{id})
	}
	if err == nil {
		err = n.Start(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "caller node:", err)
		return 1
	}
	fmt.Println("URL", n.URL())
	for {
		svc, err := n.Service(ctx, other)
		if err == nil {
			var res string
			res, err = rpc.Call[string](ctx, svc, "hello", id)
			if err == nil {
				fmt.Println("CALLED", res)
				break
			}
		}
		select {
		case <-ctx.Done():
			n.Stop(context.Background())
			return 1
		case <-time.After(50 * time.Millisecond):
		}
	}
	<-ctx.Done()
	if err := n.Stop(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "caller node: stop:", err)
		return 1
	}
	return 0
}

// netnsPair creates two network namespaces joined by a veth pair, with
// addresses ipA and ipB of a /24 that exists only between them, and removes
// them when the test ends. Each namespace has a second interface with an
// address that nothing ever dials, to check the choice of the address a
// node advertises; B's default route goes through the veth, to A. Without the rights to create namespaces it
// skips the test, except under CI=true, where that is a failure.
func netnsPair(t *testing.T) (nsA, nsB, ipA, ipB string) {
	t.Helper()
	ip := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	id := os.Getpid() % 100000
	nsA, nsB = fmt.Sprintf("netron-t%d-a", id), fmt.Sprintf("netron-t%d-b", id)
	if err := ip("netns", "add", nsA); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot create a network namespace (CI=true: this test must run): %v", err)
		}
		t.Skipf("cannot create network namespaces here (needs root and iproute2): %v", err)
	}
	t.Cleanup(func() { _ = ip("netns", "del", nsA) })
	if err := ip("netns", "add", nsB); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ip("netns", "del", nsB) })
	net3 := 1 + id%250
	ipA, ipB = fmt.Sprintf("10.213.%d.1", net3), fmt.Sprintf("10.213.%d.2", net3)
	vA, vB := fmt.Sprintf("ntv%da", id), fmt.Sprintf("ntv%db", id)
	for _, args := range [][]string{
		{"link", "add", vA, "type", "veth", "peer", "name", vB},
		{"link", "set", vA, "netns", nsA},
		{"link", "set", vB, "netns", nsB},
		{"-n", nsA, "addr", "add", ipA + "/24", "dev", vA},
		{"-n", nsB, "addr", "add", ipB + "/24", "dev", vB},
		{"-n", nsA, "link", "set", "lo", "up"},
		{"-n", nsB, "link", "set", "lo", "up"},
		{"-n", nsA, "link", "set", vA, "up"},
		{"-n", nsB, "link", "set", vB, "up"},
		// A second interface in each namespace, made there, so with a lower
		// index than the veth moved in, and with a carrier (its peer is
		// up): in A a container bridge's name, which must not be chosen;
		// in B an ordinary name, but the default route goes through the
		// veth, which decides.
		{"-n", nsA, "link", "add", "docker0", "type", "veth", "peer", "name", "dkpeer"},
		{"-n", nsA, "addr", "add", fmt.Sprintf("172.31.%d.1/24", net3), "dev", "docker0"},
		{"-n", nsA, "link", "set", "docker0", "up"},
		{"-n", nsA, "link", "set", "dkpeer", "up"},
		{"-n", nsB, "link", "add", "eth9", "type", "veth", "peer", "name", "eth9p"},
		{"-n", nsB, "addr", "add", fmt.Sprintf("10.214.%d.1/24", net3), "dev", "eth9"},
		{"-n", nsB, "link", "set", "eth9", "up"},
		{"-n", nsB, "link", "set", "eth9p", "up"},
		{"-n", nsB, "route", "add", "default", "via", ipA, "dev", vB},
	} {
		if err := ip(args...); err != nil {
			t.Fatal(err)
		}
	}
	return nsA, nsB, ipA, ipB
}

// Two hosts, as two network namespaces joined by a veth pair: Redis and a
// node in one, a node in the other, each bound to every interface with no
// advertise setting. Each announces the address of its namespace's veth,
// not 127.0.0.1 and not that of the other interface of its namespace
// (which has the lower index): in A that one is named like a Docker
// bridge; in B the default route decides. They find and call each other
// through discovery; the CLI of each side finds the other's node too.
func TestAcrossNetworkNamespaces(t *testing.T) {
	nsA, nsB, ipA, ipB := netnsPair(t)
	srv := testredis.Start(t, testredis.InNetns(nsA, ipA))
	prefix := "test:" + t.Name()
	a := startProc(t, nsA, "NETRON_TEST_RUN_NODE=1", "node-a", "alpha@1.0.0", "beta@^1", srv.Addr(), prefix)
	b := startProc(t, nsB, "NETRON_TEST_RUN_NODE=1", "node-b", "beta@1.0.0", "alpha@^1", srv.Addr(), prefix)
	for _, c := range []struct {
		p         *proc
		url, call string
	}{
		{a, "URL ws://" + ipA + ":9000/\n", "CALLED hello node-a from node-b\n"},
		{b, "URL ws://" + ipB + ":9000/\n", "CALLED hello node-b from node-a\n"},
	} {
		deadline := time.Now().Add(time.Minute)
		for !strings.Contains(c.p.stdout.String(), c.call) {
			select {
			case <-c.p.done:
				t.Fatalf("%v exited %d\nstdout: %s\nstderr: %s", c.p.cmd.Args, c.p.code, c.p.stdout, c.p.stderr)
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("%v: no call within a minute\nstdout: %s\nstderr: %s", c.p.cmd.Args, c.p.stdout, c.p.stderr)
			}
		}
		if !strings.Contains(c.p.stdout.String(), c.url) {
			t.Fatalf("%v announces the wrong address:\n%s", c.p.cmd.Args, c.p.stdout)
		}
	}

	disc := "redis://" + srv.Addr()
	code, stdout, stderr := runCLI(t, nsB, "call", "--discovery", disc, "--prefix", prefix, "alpha@^1", "hello", `"cli"`)
	if code != exitOK || stdout != "\"hello cli from node-a\"\n" {
		t.Fatalf("call from the other namespace: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, nsA, "nodes", "--discovery", disc, "--prefix", prefix, "--json")
	var nodes []nodeJSON
	if code != exitOK || json.Unmarshal([]byte(stdout), &nodes) != nil || len(nodes) != 2 ||
		nodes[0].Address != "ws://"+ipA+":9000/" || nodes[1].Address != "ws://"+ipB+":9000/" {
		t.Fatalf("nodes: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, nsA, "services", "--discovery", disc, "--prefix", prefix, "--node", "node-b")
	if code != exitOK || !strings.HasPrefix(stdout, "beta@1.0.0\n") {
		t.Fatalf("services of node-b from the other namespace: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, p := range []*proc{a, b} {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(t); code != 0 {
			t.Fatalf("%v: exit %d\nstderr: %s", p.cmd.Args, code, p.stderr)
		}
	}
}
