package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/redisdisc"
	"github.com/netron-go/netron/internal/testredis"
)

// The tests in this file run netron as separate processes: the test binary
// itself, which is the netron command when NETRON_TEST_RUN_CLI=1 is set,
// and a node that calls another through discovery when
// NETRON_TEST_RUN_NODE=1 is (see runCallerNode).
func init() {
	var code int
	switch {
	case os.Getenv("NETRON_TEST_RUN_CLI") == "1":
		quietGoRedis() // as main does
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
	case os.Getenv("NETRON_TEST_RUN_NODE") == "1":
		code = runCallerNode(os.Args[1:])
	default:
		return
	}
	os.Exit(code)
}

// proc is a netron process.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr *buffer
	done           chan struct{} // closed when it has exited
	code           int
}

// startCLI runs netron with args as a process of its own, inside the
// network namespace netns unless it is "". The process is killed when the
// test ends if it is still running.
func startCLI(t *testing.T, netns string, args ...string) *proc {
	t.Helper()
	return startProc(t, netns, "NETRON_TEST_RUN_CLI=1", args...)
}

// startProc runs the test binary with args and the environment variable
// mode (NAME=1) in netns.
func startProc(t *testing.T, netns, mode string, args ...string) *proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	if netns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", netns, exe}, args...)...)
	}
	p := &proc{cmd: cmd, stdout: &buffer{}, stderr: &buffer{}, done: make(chan struct{})}
	cmd.Env = append(os.Environ(), mode)
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait waits for the process to exit (at most a minute) and returns its
// exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(time.Minute):
		t.Fatalf("%v still running after a minute\nstdout: %s\nstderr: %s", p.cmd.Args, p.stdout, p.stderr)
		return -1
	}
}

// runCLI runs netron with args in netns until it exits.
func runCLI(t *testing.T, netns string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	p := startCLI(t, netns, args...)
	code = p.wait(t)
	return code, p.stdout.String(), p.stderr.String()
}

// listens waits until the serve process p prints that it listens, and
// returns its URL.
func (p *proc) listens(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if m := listening.FindStringSubmatch(p.stdout.String()); m != nil {
			return m[2]
		}
		select {
		case <-p.done:
			t.Fatalf("%v exited with %d before listening\nstdout: %s\nstderr: %s", p.cmd.Args, p.code, p.stdout, p.stderr)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v not listening after a minute\nstderr: %s", p.cmd.Args, p.stderr)
		}
	}
}

// discoveryConfig writes a configuration file whose discovery is the
// Redis at addr, under a prefix of the test's own, with heartbeats every
// interval.
func discoveryConfig(t *testing.T, addr string, interval, ttl time.Duration) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	path := filepath.Join(t.TempDir(), "app.yaml")
	text := fmt.Sprintf("netron:\n  discovery:\n    enabled: true\n    redis: {host: %q, port: %s}\n"+
		"    interval: %s\n    ttl: %s\n    prefix: %q\nlogger: {level: info}\n", host, port, interval, ttl, "test:"+t.Name())
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func freeTCPPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// Two netron serve processes with one node id on one Redis: the second
// fails to start (a live node heartbeats, so its id is never taken over)
// and names the first's address. After a kill -9 of the first, the same
// node started again at once takes its id over as soon as the old
// registration has been silent for 1.5 heartbeats (it waits for that, if
// it starts sooner), long before its TTL of 30 s: no leave on the stream.
func TestServeProcessesUniqueIDs(t *testing.T) {
	srv := testredis.Start(t)
	cfg := discoveryConfig(t, srv.Addr(), time.Second, 30*time.Second)
	portA := freeTCPPort(t)
	a := startCLI(t, "", "serve", "--config", cfg, "--id", "twin", "--host", "127.0.0.1", "--port", portA)
	urlA := a.listens(t)

	code, stdout, stderr := runCLI(t, "", "serve", "--config", cfg, "--id", "twin", "--host", "127.0.0.1", "--port", "0")
	if code != exitFailure || !strings.Contains(stderr, "node id in use") || !strings.Contains(stderr, urlA) || !strings.Contains(stderr, "alive") {
		t.Fatalf("second holder: exit %d\nstdout: %s\nstderr: %s\nwant exit 1 naming %s", code, stdout, stderr, urlA)
	}

	if err := a.cmd.Process.Kill(); err != nil { // kill -9: no deregistration
		t.Fatal(err)
	}
	a.wait(t)
	back := startCLI(t, "", "serve", "--config", cfg, "--id", "twin", "--host", "127.0.0.1", "--port", portA)
	if url := back.listens(t); url != urlA {
		t.Fatalf("came back at %s, not %s", url, urlA)
	}
	code, stdout, stderr = runCLI(t, "", "nodes", "--discovery", "redis://"+srv.Addr(), "--prefix", "test:"+t.Name(), "--json")
	var nodes []nodeJSON
	if code != exitOK || json.Unmarshal([]byte(stdout), &nodes) != nil || len(nodes) != 1 || nodes[0].ID != "twin" || nodes[0].Address != urlA {
		t.Fatalf("nodes: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	// Taken over from a silent registration, not after its expiry: the
	// stream has the two joins and no leave.
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer rc.Close()
	if n, err := rc.XLen(context.Background(), "{test:"+t.Name()+"}:events").Result(); err != nil || n != 2 {
		t.Fatalf("%d stream entries (%v), want the two joins", n, err)
	}
	if err := back.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := back.wait(t); code != exitOK {
		t.Fatalf("SIGTERM: exit %d\nstderr: %s", code, back.stderr)
	}
}

// kill -TERM of netron serve while its Redis is down: exit 0, and the
// deregistration that could not be made is logged.
func TestServeStopsDuringRedisOutage(t *testing.T) {
	srv := testredis.Start(t)
	cfg := discoveryConfig(t, srv.Addr(), 100*time.Millisecond, 15*time.Second)
	p := startCLI(t, "", "serve", "--config", cfg, "--id", "stopper", "--host", "127.0.0.1", "--port", "0")
	p.listens(t)
	code, stdout, stderr := runCLI(t, "", "nodes", "--discovery", cfg)
	if code != exitOK || !strings.Contains(stdout, "stopper") {
		t.Fatalf("nodes: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	srv.Stop()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != exitOK {
		t.Fatalf("SIGTERM during the outage: exit %d, want 0\nstderr: %s", code, p.stderr)
	}
	if !strings.Contains(p.stderr.String(), "could not deregister") {
		t.Fatalf("the failed deregistration is not logged:\n%s", p.stderr)
	}
	if strings.Contains(p.stderr.String(), "pool.go") {
		t.Fatalf("go-redis logged to stderr on its own:\n%s", p.stderr)
	}
}

// A netron serve process stopped with SIGSTOP for longer than its TTL is
// reported left; after SIGCONT it announces itself again and is back.
func TestServeStoppedAndContinued(t *testing.T) {
	srv := testredis.Start(t)
	cfg := discoveryConfig(t, srv.Addr(), 100*time.Millisecond, time.Second)
	p := startCLI(t, "", "serve", "--config", cfg, "--id", "pauser", "--host", "127.0.0.1", "--port", "0")
	url := p.listens(t)
	obs, err := redisdisc.Connect(srv.Addr(), "", 0, redisdisc.WithPrefix("test:"+t.Name()),
		redisdisc.WithHeartbeat(100*time.Millisecond), redisdisc.WithTTL(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	events, err := obs.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := func(kind discovery.EventKind) {
		t.Helper()
		for ev := range events {
			if ev.Node.ID == "pauser" && ev.Kind == kind {
				if kind != discovery.NodeLeft && ev.Node.Address != url {
					t.Fatalf("%v at %s, want %s", kind, ev.Node.Address, url)
				}
				return
			}
		}
		t.Fatalf("no %v for pauser", kind)
	}
	next(discovery.NodeJoined)
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	next(discovery.NodeLeft) // after its TTL
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	next(discovery.NodeJoined)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != exitOK {
		t.Fatalf("SIGTERM: exit %d\nstderr: %s", code, p.stderr)
	}
}
