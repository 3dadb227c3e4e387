package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/transport"
)

// The scale measure: N idle peers connected to one node. The node runs in
// a child process of its own (this program, re-executed), so that its
// memory is measured alone; the N connections are dialled from this
// process, then left idle. Two kinds of peers: Go peers (one client node
// connecting N times, each connection doing what a Go peer does on
// connect) and bare connections (the handshake only).

const (
	scaleChildEnv   = "NETRON_BENCH_SCALE_CHILD"
	scaleProfileEnv = "NETRON_BENCH_SCALE_HEAPPROFILE" // where the node writes its heap profile
)

// memStats is what one process reports of its memory.
type memStats struct {
	RSS        uint64 `json:"rss"`       // resident set, as the kernel counts it
	RSSFreed   uint64 `json:"rssFreed"`  // resident set after debug.FreeOSMemory
	HeapInuse  uint64 `json:"heapInuse"` // live heap spans after a GC
	StackInuse uint64 `json:"stackInuse"`
	Sys        uint64 `json:"sys"`
	Goroutines int    `json:"goroutines"`
	Peers      int    `json:"peers"`
}

// readRSS returns the resident set of this process (Linux), or 0.
func readRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func selfStats(peers int) memStats {
	if peers == 0 {
		// The baseline: return what earlier work left, so that the
		// difference is the peers' alone.
		debug.FreeOSMemory()
	}
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	s := memStats{
		RSS:        readRSS(),
		HeapInuse:  m.HeapInuse,
		StackInuse: m.StackInuse,
		Sys:        m.Sys,
		Goroutines: runtime.NumGoroutine(),
		Peers:      peers,
	}
	debug.FreeOSMemory()
	s.RSSFreed = readRSS()
	return s
}

// scaleChild is the node of the scale measure. It prints "url <url>", then
// answers "stats" with a JSON memStats line, and stops at "quit" or EOF.
func scaleChild(in io.Reader, out io.Writer) error {
	n, err := strconv.Atoi(os.Getenv(scaleChildEnv))
	if err != nil || n <= 0 {
		return fmt.Errorf("bad %s", scaleChildEnv)
	}
	raiseFileLimit(n + 4096)
	ctx := context.Background()
	node, err := netron.New(netron.Config{ID: "scale-server", Host: "127.0.0.1", Server: true, MaxPeers: n + 64})
	if err != nil {
		return err
	}
	if err := node.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		node.Stop(sctx)
	}()
	if err := node.Expose("bench@1.0.0", benchService{}); err != nil {
		return err
	}
	fmt.Fprintln(out, "url", node.URL())
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		switch sc.Text() {
		case "stats":
			peers := len(node.Peers())
			b, _ := json.Marshal(selfStats(peers))
			if path := os.Getenv(scaleProfileEnv); path != "" && peers > 0 {
				if err := writeHeapProfile(path); err != nil {
					return err
				}
			}
			fmt.Fprintln(out, string(b))
		case "quit":
			return nil
		}
	}
	return sc.Err()
}

// writeHeapProfile writes the heap profile (in use and allocated) to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// scaleResult is the outcome of the scale measure.
type scaleResult struct {
	n                  int
	mode               string
	connect            time.Duration
	idle               time.Duration
	base, server       memStats // the node's process before and with the peers
	clientBase, client memStats // the dialling process before and with the peers
}

// serverRSSPerPeer is the resident memory the node gained per peer.
func (s *scaleResult) serverRSSPerPeer() float64 {
	return float64(int64(s.server.RSS)-int64(s.base.RSS)) / float64(s.n)
}

func perPeer(a, b uint64, n int) string {
	return fmt.Sprintf("%.1f KiB", float64(int64(b)-int64(a))/float64(n)/1024)
}

func mib(v uint64) string { return fmt.Sprintf("%.1f MiB", float64(v)/(1<<20)) }

// The kinds of idle peers of the scale measure.
const (
	// scaleGoPeers: each peer is a connection of a Go node (Node.Connect):
	// handshake, abilities, and the subscription to the node's service
	// events that a Go peer makes to keep its catalogue current.
	scaleGoPeers = "go-peers"
	// scaleBarePeers: each peer is a bare connection (transport.Hub.Dial, the
	// handshake only), as a Titan client that subscribes to nothing.
	scaleBarePeers = "bare"
)

func measureScale(ctx context.Context, n int, mode string, idle time.Duration, heapProfile string, progress io.Writer) (*scaleResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), scaleChildEnv+"="+strconv.Itoa(n))
	if heapProfile != "" {
		cmd.Env = append(cmd.Env, scaleProfileEnv+"="+heapProfile)
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}()
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 64<<10), 1<<20)
	readLine := func() (string, error) {
		if !lines.Scan() {
			if err := lines.Err(); err != nil {
				return "", err
			}
			return "", errors.New("the node process ended")
		}
		return lines.Text(), nil
	}
	line, err := readLine()
	if err != nil {
		return nil, err
	}
	url, ok := strings.CutPrefix(line, "url ")
	if !ok {
		return nil, fmt.Errorf("node process said %q", line)
	}
	stats := func() (memStats, error) {
		var s memStats
		if _, err := fmt.Fprintln(stdin, "stats"); err != nil {
			return s, err
		}
		line, err := readLine()
		if err != nil {
			return s, err
		}
		return s, json.Unmarshal([]byte(line), &s)
	}

	res := &scaleResult{n: n, mode: mode}
	var (
		dial  func(ctx context.Context) (io.Closer, error)
		count func() int
	)
	switch mode {
	case scaleGoPeers:
		client, err := netron.New(netron.Config{ID: "scale-client", MaxPeers: n + 64})
		if err != nil {
			return nil, err
		}
		if err := client.Start(ctx); err != nil {
			return nil, err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			client.Stop(sctx)
		}()
		dial = func(ctx context.Context) (io.Closer, error) { return client.Connect(ctx, url) }
		count = func() int { return len(client.Peers()) }
	case scaleBarePeers:
		b := bus.New()
		defer b.Close()
		hub := transport.NewHub(b, "scale-client", transport.WithMaxPeers(n+64))
		defer hub.Close()
		dial = func(ctx context.Context) (io.Closer, error) { return hub.Dial(ctx, url) }
		count = func() int { return len(hub.Conns()) }
	default:
		return nil, fmt.Errorf("unknown scale mode %q", mode)
	}
	// Warm both processes up with one peer, so that the baselines include
	// what the first connection initialises once.
	p, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	p.Close()
	time.Sleep(200 * time.Millisecond)
	if res.base, err = stats(); err != nil {
		return nil, err
	}
	res.clientBase = selfStats(0)

	start := time.Now()
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range 32 {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				_, err := dial(cctx)
				cancel()
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("peer %d: %w", i, err)
					}
					mu.Unlock()
					next.Store(int64(n))
					return
				}
				if i%1000 == 0 {
					fmt.Fprintf(progress, "  %d peers connected (%v)\n", i, time.Since(start).Round(time.Millisecond))
				}
			}
		})
	}
	wg.Wait()
	res.connect = time.Since(start)
	if first != nil {
		return nil, first
	}
	// Idle: long enough for whatever a connection does once to settle,
	// shorter than the keep-alive interval (30 s).
	res.idle = idle
	select {
	case <-time.After(res.idle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if res.server, err = stats(); err != nil {
		return nil, err
	}
	res.client = selfStats(count())
	if res.server.Peers != n {
		return nil, fmt.Errorf("the node has %d peers, want %d", res.server.Peers, n)
	}
	return res, nil
}

func writeScaleText(w io.Writer, s *scaleResult) {
	fmt.Fprintf(w, "idle peers (%s) on one node: %d, connected in %v (%.0f peers/s), then idle %v\n",
		s.mode, s.n, s.connect.Round(time.Millisecond), float64(s.n)/s.connect.Seconds(), s.idle)
	fmt.Fprintf(w, "  node process:    RSS %s → %s (%s/peer; after FreeOSMemory %s, %s/peer), heap in use %s/peer, stacks %s/peer, %.1f goroutines/peer\n",
		mib(s.base.RSS), mib(s.server.RSS), perPeer(s.base.RSS, s.server.RSS, s.n),
		mib(s.server.RSSFreed), perPeer(s.base.RSSFreed, s.server.RSSFreed, s.n),
		perPeer(s.base.HeapInuse, s.server.HeapInuse, s.n), perPeer(s.base.StackInuse, s.server.StackInuse, s.n),
		float64(s.server.Goroutines-s.base.Goroutines)/float64(s.n))
	fmt.Fprintf(w, "  dialling process: RSS %s → %s (%s/peer), heap in use %s/peer, %.1f goroutines/peer\n",
		mib(s.clientBase.RSS), mib(s.client.RSS), perPeer(s.clientBase.RSS, s.client.RSS, s.n),
		perPeer(s.clientBase.HeapInuse, s.client.HeapInuse, s.n),
		float64(s.client.Goroutines-s.clientBase.Goroutines)/float64(s.n))
	if s.mode == scaleGoPeers {
		verdict := "within"
		if s.server.RSS > scaleGoalRSS {
			verdict = "NOT within"
		}
		fmt.Fprintf(w, "  goal 10,000 idle Go peers ≤ %d MiB: node RSS with %d peers is %s: %s the goal\n", scaleGoalRSS>>20, s.n, mib(s.server.RSS), verdict)
	}
}

func writeScaleMarkdown(w io.Writer, s *scaleResult) {
	what := "Go peers (`Node.Connect`: handshake, abilities, the subscription to the node's service events)"
	if s.mode == scaleBarePeers {
		what = "bare connections (`transport.Hub.Dial`: the handshake only, as a Titan client that subscribes to nothing)"
	}
	fmt.Fprintf(w, "**%s %s**, connected in %v (%.0f peers/s), measured after %v idle:\n\n",
		thousands(int64(s.n)), what, s.connect.Round(time.Millisecond), float64(s.n)/s.connect.Seconds(), s.idle)
	fmt.Fprintf(w, "| process | RSS before | RSS with peers | RSS per peer | RSS per peer after FreeOSMemory | heap in use per peer | stacks per peer | goroutines per peer |\n")
	fmt.Fprintf(w, "|---|--:|--:|--:|--:|--:|--:|--:|\n")
	row := func(name string, a, b memStats) {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %.1f |\n", name, mib(a.RSS), mib(b.RSS),
			perPeer(a.RSS, b.RSS, s.n), perPeer(a.RSSFreed, b.RSSFreed, s.n),
			perPeer(a.HeapInuse, b.HeapInuse, s.n), perPeer(a.StackInuse, b.StackInuse, s.n),
			float64(b.Goroutines-a.Goroutines)/float64(s.n))
	}
	row("node (accepting)", s.base, s.server)
	row("dialling process", s.clientBase, s.client)
	fmt.Fprintln(w)
}
