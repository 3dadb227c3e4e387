package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/app"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// buffer is a bytes.Buffer safe for a command writing while the test reads.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitFor polls until s() contains want.
func waitFor(t *testing.T, what string, s func() string, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s lacks %q:\n%s", what, want, s())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// liveNode starts an application like `netron serve --demo-services` does,
// on a loopback port, and returns its Netron.
func liveNode(t *testing.T, id string) *netron.Node {
	t.Helper()
	return liveNodeOn(t, id, 0)
}

// liveNodeOn is liveNode on a given port (0: a free one).
func liveNodeOn(t *testing.T, id string, port int) *netron.Node {
	t.Helper()
	a, err := app.New(
		app.WithNetronConfig(netron.Config{ID: id, Host: "127.0.0.1", Port: port, Server: true}),
		app.WithLogger(slog.New(slog.DiscardHandler)),
	)
	if err != nil {
		t.Fatal(err)
	}
	node, err := a.Netron()
	if err != nil {
		t.Fatal(err)
	}
	a.Register(
		app.Expose(a, "calculator@1.0.0", &Calculator{node: node}),
		app.Expose(a, "data@1.0.0", DataService{}),
	)
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Stop(context.Background()) })
	return node
}

// runCmd runs the command line in-process.
func runCmd(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errOut buffer
	code = run(ctx, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsage(t *testing.T) {
	ctx := testCtx(t)
	if code, _, stderr := runCmd(ctx); code != exitUsage || !strings.Contains(stderr, "Commands:") {
		t.Errorf("no arguments: %d %q", code, stderr)
	}
	if code, stdout, _ := runCmd(ctx, "--help"); code != exitOK || !strings.Contains(stdout, "watch") {
		t.Errorf("--help: %d %q", code, stdout)
	}
	if code, _, stderr := runCmd(ctx, "frobnicate"); code != exitUsage || !strings.Contains(stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %d %q", code, stderr)
	}
	for _, c := range commands() {
		code, stdout, stderr := runCmd(ctx, c.name, "--help")
		if code != exitOK || !strings.Contains(stdout, "Usage:\n  netron "+c.name) || stderr != "" {
			t.Errorf("%s --help: %d\n%s\n%s", c.name, code, stdout, stderr)
		}
		code, stdout, _ = runCmd(ctx, "help", c.name)
		if code != exitOK || !strings.Contains(stdout, "netron "+c.name) {
			t.Errorf("help %s: %d %q", c.name, code, stdout)
		}
		code, _, stderr = runCmd(ctx, c.name, "--no-such-flag")
		if code != exitUsage || !strings.Contains(stderr, "no-such-flag") {
			t.Errorf("%s --no-such-flag: %d %q", c.name, code, stderr)
		}
	}
}

func TestParseFlagsAfterArguments(t *testing.T) {
	fs := newFlags("x", "", "", &bytes.Buffer{})
	node := fs.String("node", "", "")
	pretty := fs.Bool("pretty", false, "")
	pos, err := parse(fs, []string{"svc", "add", "-5", "--node", "ws://x", "2.5", "--pretty", "--", "--7"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"svc", "add", "-5", "2.5", "--7"}; strings.Join(pos, " ") != strings.Join(want, " ") || *node != "ws://x" || !*pretty {
		t.Errorf("pos %q node %q pretty %v", pos, *node, *pretty)
	}
}

func TestDemo(t *testing.T) {
	ctx := testCtx(t)
	code, stdout, stderr := runCmd(ctx, "demo")
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q\n%s", code, stderr, stdout)
	}
	for _, want := range []string{
		"gateway:         event node:joined calculator-node\n",
		"gateway:         event service:discovered data@1.0.0 on data-node\n",
		"gateway:         calculator@^1 is calculator@1.0.0 on calculator-node, methods [add multiply]\n",
		"gateway:         add(2, 3) = 5\n",
		`gateway:         event calculator:computed from calculator-node: {"a":2,"b":3,"op":"add","result":5}` + "\n",
		"gateway:         stream chunk 4: \"Chunk 4\"\n",
		"gateway:         event node:left data-node\n",
		"gateway:         event peer:disconnect data-node\n",
		"demo complete: 3 nodes, 2 calls, 2 events, 1 stream of 5 chunks\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	// --verbose shows the applications' lifecycle on stderr.
	code, _, stderr = runCmd(ctx, "demo", "--verbose")
	if code != exitOK || !strings.Contains(stderr, `msg="app: netron started" app=calculator-node`) {
		t.Errorf("--verbose: exit %d, stderr:\n%s", code, stderr)
	}
}
