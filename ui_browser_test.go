package netron_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/rpc"
)

// chromium finds Debian's chromium (scripts/install-deps.sh installs it).
// Outside CI a machine without it skips the browser test; under CI=true
// that is a failure.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is missing (CI=true: a failure; scripts/install-deps.sh installs it)")
	}
	t.Skip("chromium is missing; scripts/install-deps.sh installs it")
	return ""
}

// MeshGreeter is a service for the nodes of the browser test.
type MeshGreeter struct{}

func (MeshGreeter) Hello(name string) string { return "hello " + name }

// The live view in a real headless Chromium: three nodes that find each
// other through in-memory discovery appear with their services; calls
// raise the page's counter; a node that stops disappears. The page is
// waited on for DOM conditions, each with a generous upper bound, never
// for a time. With NETRON_UI_SCREENSHOT=file the page is saved as a PNG
// (docs/ui.png is made so).
func TestUIInBrowser(t *testing.T) {
	exe := chromium(t)
	ctx := context.Background()
	d := discovery.NewMemory()
	t.Cleanup(func() { d.Close() })
	cfg := func(id string) netron.Config {
		return netron.Config{ID: id, Host: "127.0.0.1", Server: true, DiscoveryBackend: d}
	}
	acfg := cfg("alpha")
	acfg.Metrics = netron.NewMetrics(netron.MetricsOptions{})
	a := startNode(t, acfg)
	if err := a.Expose("greeter@1.0.0", MeshGreeter{}); err != nil {
		t.Fatal(err)
	}
	b := startNode(t, cfg("beta"))
	if err := b.Expose("inventory@2.1.0", MeshGreeter{}); err != nil {
		t.Fatal(err)
	}
	c, err := netron.New(cfg("gamma"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cStopped := false
	t.Cleanup(func() {
		if !cStopped {
			c.Stop(ctx)
		}
	})
	if err := c.Expose("billing@0.3.0", MeshGreeter{}); err != nil {
		t.Fatal(err)
	}
	pb, err := b.Connect(ctx, a.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Connect(ctx, a.URL()); err != nil {
		t.Fatal(err)
	}
	greeter, err := pb.Service(ctx, "greeter@1.0.0")
	if err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewServer(netron.UIHandlerEvery(a, 100*time.Millisecond))
	defer srv.Close()

	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	bctx, cancel := context.WithTimeout(bctx, 120*time.Second) // a generous bound for the whole test
	defer cancel()

	// waitJS waits until the expression holds in the page.
	waitJS := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(bctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(60*time.Second))); err != nil {
			t.Fatalf("page: %s: %v", what, err)
		}
	}
	if _, err := chromedp.Run(bctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	for node, svc := range map[string]string{"alpha": "greeter@1.0.0", "beta": "inventory@2.1.0", "gamma": "billing@0.3.0"} {
		waitJS(node+" with "+svc, fmt.Sprintf(`!!document.querySelector('#nodes li[data-node="%s"] .svc[data-service="%s"]')`, node, svc))
	}
	waitJS("two connections", `document.querySelectorAll('#links tbody tr').length === 2`)

	before, err := chromedp.Run(bctx, chromedp.TextContent("#total-calls"))
	if err != nil {
		t.Fatal(err)
	}
	if before != "0" {
		t.Fatalf("calls before any call: %q", before)
	}
	for i := range 7 {
		if _, err := rpc.Call[string](ctx, greeter, "hello", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitJS("7 calls of greeter", `document.querySelector('#services tr[data-service="greeter@1.0.0"][data-side="server"] .calls')?.textContent === "7"`)
	waitJS("the total counter", `document.getElementById("total-calls").textContent === "7"`)
	// The snapshot netron top reads counts the calls per peer too.
	resp, err := http.Get(srv.URL + "/api/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	var snap struct {
		Peers []struct {
			ID    string `json:"id"`
			Calls uint64 `json:"calls"`
		} `json:"peers"`
	}
	err = json.NewDecoder(resp.Body).Decode(&snap)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]uint64{}
	for _, p := range snap.Peers {
		calls[p.ID] = p.Calls
	}
	if len(calls) != 2 || calls["beta"] != 7 || calls["gamma"] != 0 {
		t.Errorf("calls per peer %v, want beta 7, gamma 0", calls)
	}

	if out := os.Getenv("NETRON_UI_SCREENSHOT"); out != "" {
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	cStopped = true
	waitJS("gamma gone", `!document.querySelector('#nodes li[data-node="gamma"]') && document.querySelectorAll('#nodes li').length === 2`)
	waitJS("its connection gone", `document.querySelectorAll('#links tbody tr').length === 1`)
}
