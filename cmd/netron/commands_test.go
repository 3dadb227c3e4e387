package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/netron-go/netron"
)

func TestCall(t *testing.T) {
	ctx := testCtx(t)
	node := liveNode(t, "calc-node")
	url := node.URL()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"url names the service", []string{"call", url + "calculator@1.0.0", "add", "2", "3"}, "5\n"},
		{"--node and a range", []string{"call", "--node", url, "calculator@^1", "multiply", "4", "5"}, "20\n"},
		{"flags after arguments", []string{"call", "calculator", "add", "-1.5", "2", "--node", url}, "0.5\n"},
		{"--args", []string{"call", "--node", url, "calculator", "add", "--args", "[40, 2]"}, "42\n"},
		{"--stream", []string{"call", "--stream", url + "data", "streamData", "3"}, "\"Chunk 0\"\n\"Chunk 1\"\n\"Chunk 2\"\n"},
		{"--stream -n", []string{"call", "--stream", "-n", "2", url + "data", "streamData", "1000"}, "\"Chunk 0\"\n\"Chunk 1\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(ctx, tc.args...)
			if code != exitOK || stdout != tc.want {
				t.Errorf("exit %d, stdout %q (want %q), stderr %q", code, stdout, tc.want, stderr)
			}
		})
	}
	t.Setenv("NETRON_NODE", url)
	if code, stdout, stderr := runCmd(ctx, "call", "calculator", "add", "1", "1"); code != exitOK || stdout != "2\n" {
		t.Errorf("$NETRON_NODE: %d %q %q", code, stdout, stderr)
	}
}

// With --wait, call tries again while nothing listens at the node's
// address, and gets through once a node does.
func TestCallWaitsForTheNode(t *testing.T) {
	ctx := testCtx(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	refused := make(chan struct{}, 1)
	refusedHook = func() {
		select {
		case refused <- struct{}{}:
		default:
		}
	}
	defer func() { refusedHook = nil }()
	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, stdout, stderr := runCmd(ctx, "call", "--wait", "1m", fmt.Sprintf("ws://127.0.0.1:%d/calculator", port), "add", "2", "3")
		done <- result{code, stdout, stderr}
	}()
	select {
	case <-refused: // it was refused and tries again: now start the node
	case r := <-done:
		t.Fatalf("call returned before a node listened: %+v", r)
	}
	liveNodeOn(t, "late-node", port)
	if r := <-done; r.code != exitOK || r.stdout != "5\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestCallErrors(t *testing.T) {
	ctx := testCtx(t)
	node := liveNode(t, "calc-node")
	url := node.URL()
	// A port nobody listens on.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "ws://" + l.Addr().String() + "/"
	l.Close()
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown method", []string{"call", url + "calculator", "divide", "1", "2"}, exitFailure,
			`netron call: rpc: calculator@1.0.0: method "divide" not found (404); available: add, multiply` + "\n"},
		{"unknown service", []string{"call", url + "abacus", "add"}, exitFailure,
			`netron call: rpc: service "abacus" not found (404); available: calculator@1.0.0, data@1.0.0` + "\n"},
		{"no such version", []string{"call", url + "calculator@^9", "add"}, exitFailure,
			"netron call: rpc: calculator@^9: no match (404); available: 1.0.0\n"},
		{"wrong argument type", []string{"call", url + "calculator", "add", `"two"`, "3"}, exitFailure,
			"netron call: rpc: calculator@1.0.0.add argument 1: want float64: "},
		{"nobody listens", []string{"call", closed + "calculator", "add", "1", "2"}, exitFailure, "connect"},
		{"stream without --stream", []string{"call", url + "data", "streamData", "3"}, exitFailure, "produces a stream: call it with --stream"},
		{"--stream on a plain method", []string{"call", "--stream", url + "calculator", "add", "1", "2"}, exitFailure, "calculator@1.0.0.add:"},
		{"not JSON", []string{"call", url + "calculator", "add", "two", "3"}, exitUsage, `argument 1: "two" is not JSON; quote strings: '"two"'`},
		{"broken JSON", []string{"call", url + "calculator", "add", "[1,", "3"}, exitUsage, `argument 1: "[1," is not JSON: unexpected EOF`},
		{"no method", []string{"call", url + "calculator"}, exitUsage, "need a service and a method"},
		{"url without service", []string{"call", url, "add"}, exitUsage, "names no service"},
		{"not a ws url", []string{"call", "http://x/calculator", "add"}, exitUsage, "must be ws:// or wss://"},
		{"both argument forms", []string{"call", url + "calculator", "add", "1", "--args", "[1]"}, exitUsage, "not both"},
		{"--args not an array", []string{"call", url + "calculator", "add", "--args", "1"}, exitUsage, "want a JSON array"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(ctx, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.msg) || stdout != "" {
				t.Errorf("exit %d (want %d), stdout %q, stderr %q (want …%q)", code, tc.code, stdout, stderr, tc.msg)
			}
			if !strings.HasPrefix(stderr, "netron call: ") {
				t.Errorf("stderr does not name the command: %q", stderr)
			}
		})
	}
}

func TestServices(t *testing.T) {
	ctx := testCtx(t)
	node := liveNode(t, "calc-node")
	code, stdout, stderr := runCmd(ctx, "services", "--node", node.URL())
	// (The result type of a stream method is package rpc's business.)
	want := "calculator@1.0.0\n  add(Number, Number): Number\n  multiply(Number, Number): Number\n" +
		"data@1.0.0\n  streamData(Number): "
	if code != exitOK || !strings.HasPrefix(stdout, want) {
		t.Errorf("exit %d\n%s\nwant\n%s\nstderr %q", code, stdout, want, stderr)
	}
	code, stdout, _ = runCmd(ctx, "services", "--json", "--node", node.URL())
	var got []serviceJSON
	if code != exitOK || json.Unmarshal([]byte(stdout), &got) != nil || len(got) != 2 ||
		got[0].Name != "calculator" || got[0].Version != "1.0.0" || got[0].Methods["add"].Returns != "Number" {
		t.Errorf("--json: exit %d %s", code, stdout)
	}
	// A node without services.
	empty := liveNodeWithout(t)
	code, stdout, stderr = runCmd(ctx, "services", "--node", empty.URL())
	if code != exitOK || stdout != "" || !strings.Contains(stderr, "exposes no services") {
		t.Errorf("empty: %d %q %q", code, stdout, stderr)
	}
	if code, _, stderr := runCmd(ctx, "services", "extra"); code != exitUsage || !strings.Contains(stderr, `unexpected argument "extra"`) {
		t.Errorf("extra argument: %d %q", code, stderr)
	}
}

// liveNodeWithout starts a plain node (not an application) with no services.
func liveNodeWithout(t *testing.T) *netron.Node {
	n, err := netron.New(netron.Config{ID: "plain-node", Host: "127.0.0.1", Server: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Stop(context.Background()) })
	return n
}

func TestPeers(t *testing.T) {
	ctx := testCtx(t)
	node := liveNode(t, "hub-node")
	other, err := netron.New(netron.Config{ID: "other-node"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Stop(ctx)
	if _, err := other.Connect(ctx, node.URL()); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCmd(ctx, "peers", "--node", node.URL(), "--id", "cli")
	if code != exitOK {
		t.Fatalf("exit %d %q", code, stderr)
	}
	want := "ID          DIRECTION  KIND\ncli         in         go  (this command)\nother-node  in         go\n"
	if stdout != want {
		t.Errorf("got\n%s\nwant\n%s", stdout, want)
	}
	code, stdout, _ = runCmd(ctx, "peers", "--json", "--node", node.URL(), "--id", "cli")
	if code != exitOK || !strings.Contains(stdout, `"id": "other-node"`) {
		t.Errorf("--json: %d %s", code, stdout)
	}
	// A node that is not an application has no list_peers task.
	plain := liveNodeWithout(t)
	code, _, stderr = runCmd(ctx, "peers", "--node", plain.URL())
	if code != exitFailure || !strings.Contains(stderr, "does not answer the list_peers task") {
		t.Errorf("plain node: %d %q", code, stderr)
	}
}

func TestWatch(t *testing.T) {
	ctx := testCtx(t)
	node := liveNode(t, "calc-node")
	var out, errOut buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"watch", "--node", node.URL(), "-n", "3"}, &out, &errOut)
	}()
	waitFor(t, "watch's stderr", errOut.String, "watching [*] on node calc-node")
	// A call: its client connects, the calculator emits, the client leaves.
	if code, _, stderr := runCmd(ctx, "call", "--id", "caller", node.URL()+"calculator", "add", "2", "3"); code != exitOK {
		t.Fatalf("call: %q", stderr)
	}
	if code := <-done; code != exitOK {
		t.Fatalf("watch exit %d: %s", code, errOut.String())
	}
	// Events of different names keep no order between them (the node's
	// lifecycle events and the calculator's travel apart): compare the set.
	want := []string{
		`calculator:computed {"a":2,"b":3,"op":"add","result":5}`,
		`peer:connect {"peerId":"caller"}`,
		`peer:disconnect {"peerId":"caller"}`,
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant (in any order)\n%s", out.String(), strings.Join(want, "\n"))
	}
}

func TestWatchNamedEventsJSON(t *testing.T) {
	ctx := testCtx(t)
	node := liveNode(t, "calc-node")
	var out, errOut buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"watch", "--node", node.URL(), "-n", "1", "--json", "--time", "calculator:*"}, &out, &errOut)
	}()
	waitFor(t, "watch's stderr", errOut.String, "watching")
	if code, _, stderr := runCmd(ctx, "call", node.URL()+"calculator", "multiply", "6", "7"); code != exitOK {
		t.Fatalf("call: %q", stderr)
	}
	if code := <-done; code != exitOK {
		t.Fatalf("watch exit %d: %s", code, errOut.String())
	}
	var ev struct {
		Event, Source, Time string
		Args                []map[string]any
	}
	if err := json.Unmarshal([]byte(out.String()), &ev); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if ev.Event != EventComputed || ev.Source != "calc-node" || ev.Time == "" || len(ev.Args) != 1 || ev.Args[0]["result"] != 42.0 {
		t.Errorf("event %+v", ev)
	}
}

func TestWatchEndsWhenTheNodeGoes(t *testing.T) {
	ctx := testCtx(t)
	n, err := netron.New(netron.Config{ID: "leaving", Host: "127.0.0.1", Server: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var out, errOut buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"watch", "--node", n.URL()}, &out, &errOut) }()
	waitFor(t, "watch's stderr", errOut.String, "watching")
	n.Stop(ctx)
	if code := <-done; code != exitFailure || !strings.Contains(errOut.String(), "connection to leaving closed") {
		t.Errorf("exit %d: %s", code, errOut.String())
	}
	// Interrupted (Ctrl-C cancels the context): exit 0.
	node := liveNode(t, "calc-node")
	wctx, cancel := context.WithCancel(ctx)
	go func() { done <- run(wctx, []string{"watch", "--node", node.URL()}, &out, &errOut) }()
	waitFor(t, "watch's stderr", errOut.String, "on node calc-node")
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("interrupted: exit %d", code)
	}
}

var listening = regexp.MustCompile(`node (\S+) listening on (ws://\S+)`)

func TestServe(t *testing.T) {
	ctx := testCtx(t)
	cfg := filepath.Join(t.TempDir(), "app.yaml")
	os.WriteFile(cfg, []byte("netron:\n  id: from-file\n  host: 127.0.0.1\n  port: 1\nlogger:\n  level: warn\n"), 0o600)
	sctx, stop := context.WithCancel(ctx)
	var out, errOut buffer
	done := make(chan int, 1)
	go func() {
		done <- run(sctx, []string{"serve", "--config", cfg, "--port", "0", "--id", "served", "--demo-services"}, &out, &errOut)
	}()
	waitFor(t, "serve's stdout", out.String, "listening on")
	m := listening.FindStringSubmatch(out.String())
	if m == nil || m[1] != "served" {
		t.Fatalf("stdout %q", out.String())
	}
	url := m[2]
	if code, stdout, stderr := runCmd(ctx, "call", url+"calculator@1.0.0", "add", "20", "22"); code != exitOK || stdout != "42\n" {
		t.Errorf("call: %d %q %q", code, stdout, stderr)
	}
	if code, stdout, stderr := runCmd(ctx, "services", "--node", url); code != exitOK || !strings.HasPrefix(stdout, "calculator@1.0.0\n") {
		t.Errorf("services: %d %q %q", code, stdout, stderr)
	}
	if code, stdout, stderr := runCmd(ctx, "peers", "--node", url, "--id", "me"); code != exitOK || !strings.Contains(stdout, "me ") {
		t.Errorf("peers: %d %q %q", code, stdout, stderr)
	}
	stop() // as SIGINT does
	if code := <-done; code != exitOK {
		t.Fatalf("serve exit %d: %s", code, errOut.String())
	}
	if !strings.HasSuffix(out.String(), "node served stopped\n") {
		t.Errorf("stdout %q", out.String())
	}
	if errOut.String() != "" {
		t.Errorf("logs at warn level: %q", errOut.String())
	}
}

func TestServeFailures(t *testing.T) {
	ctx := testCtx(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
	code, stdout, stderr := runCmd(ctx, "serve", "--host", "127.0.0.1", "--port", busy, "--log-level", "error")
	if code != exitFailure || !strings.Contains(stderr, "address already in use") || strings.Contains(stdout, "listening") {
		t.Errorf("busy port: %d %q %q", code, stdout, stderr)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("netron:\n  port: 70000\n"), 0o600)
	code, _, stderr = runCmd(ctx, "serve", "--config", bad)
	if code != exitUsage || !strings.Contains(stderr, "netron.port") || !strings.Contains(stderr, "bad.yaml:2") {
		t.Errorf("bad config: %d %q", code, stderr)
	}
	malformed := filepath.Join(t.TempDir(), "malformed.yaml")
	os.WriteFile(malformed, []byte("netron:\n  id: [x\n"), 0o600)
	code, _, stderr = runCmd(ctx, "serve", "--config", malformed)
	if code != exitUsage || !strings.Contains(stderr, "invalid config: ") || !strings.Contains(stderr, "malformed.yaml") {
		t.Errorf("malformed config: %d %q", code, stderr)
	}
	code, _, stderr = runCmd(ctx, "serve", "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	if code != exitUsage || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing config: %d %q", code, stderr)
	}
	code, _, stderr = runCmd(ctx, "serve", "--log-level", "loud")
	if code != exitUsage || !strings.Contains(stderr, "logger.level") {
		t.Errorf("bad log level: %d %q", code, stderr)
	}
	t.Setenv("NETRON_DISCOVERY_TTL", "soon")
	code, _, stderr = runCmd(ctx, "serve")
	if code != exitUsage || !strings.Contains(stderr, "netron.discovery.ttl (NETRON_DISCOVERY_TTL)") {
		t.Errorf("bad env: %d %q", code, stderr)
	}
}
