package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

var observing = regexp.MustCompile(`live view on (http://\S+)/`)

// get returns the body of url, or "" when it cannot be had.
func get(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// serve --http --ui serves the node's metrics, its snapshots and the live
// view; top shows the calls the node handled.
func TestServeHTTPAndTop(t *testing.T) {
	ctx := testCtx(t)
	sctx, stop := context.WithCancel(ctx)
	var out, errOut buffer
	done := make(chan int, 1)
	go func() {
		done <- run(sctx, []string{"serve", "--host", "127.0.0.1", "--port", "0", "--id", "observed", "--demo-services", "--http", "127.0.0.1:0", "--ui", "--log-level", "error"}, &out, &errOut)
	}()
	waitFor(t, "serve's stdout", out.String, "listening on")
	m, l := observing.FindStringSubmatch(out.String()), listening.FindStringSubmatch(out.String())
	if m == nil || l == nil || !strings.Contains(out.String(), m[1]+"/metrics") {
		t.Fatalf("stdout %q", out.String())
	}
	base, node := m[1], l[2]
	for range 3 {
		if code, stdout, stderr := runCmd(ctx, "call", node+"calculator@1.0.0", "add", "1", "2"); code != exitOK || stdout != "3\n" {
			t.Fatalf("call: %d %q %q", code, stdout, stderr)
		}
	}
	// The node counts a call once its reply is out: the caller may be
	// back first.
	waitFor(t, "/metrics", func() string { return get(base + "/metrics") },
		`netron_rpc_handled_total{code="ok",method="add",service="calculator@1.0.0",side="server"} 3`)
	metrics := get(base + "/metrics")
	for _, want := range []string{"# TYPE netron_rpc_duration_seconds histogram", `netron_handshake_failures_total{direction="inbound"} 0`, "go_goroutines"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if page := get(base + "/"); !strings.Contains(page, "<title>Netron mesh</title>") {
		t.Errorf("the page: %q", page)
	}
	code, stdout, stderr := runCmd(ctx, "top", "--http", base, "-n", "2", "--interval", "1ms")
	if code != exitOK {
		t.Fatalf("top: exit %d, %q", code, stderr)
	}
	screens := strings.Split(stdout, "\n\nnode ")
	if len(screens) != 2 || !strings.HasPrefix(stdout, "node observed ") {
		t.Fatalf("top printed %d screens:\n%s", len(screens), stdout)
	}
	found := false
	for _, line := range strings.Split(screens[0], "\n") {
		f := strings.Fields(line)
		if len(f) == 7 && f[0] == "calculator@1.0.0" && f[1] == "server" {
			found = f[4] == "3" && f[5] == "0"
		}
	}
	if !found {
		t.Errorf("top's first screen has no calculator row with 3 calls:\n%s", screens[0])
	}
	stop()
	if code := <-done; code != exitOK {
		t.Fatalf("serve exit %d: %s", code, errOut.String())
	}
}

func TestTopFailures(t *testing.T) {
	ctx := testCtx(t)
	if code, _, stderr := runCmd(ctx, "top", "-n", "-1"); code != exitUsage {
		t.Errorf("-n -1: exit %d %q", code, stderr)
	}
	if code, _, stderr := runCmd(ctx, "top", "--http", "http://127.0.0.1:1", "-n", "1"); code != 1 || stderr == "" {
		t.Errorf("nothing listening: exit %d %q", code, stderr)
	}
}
