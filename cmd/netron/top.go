package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

const topDescription = `
Shows the busiest services and peers of a node, refreshed every second:
calls and errors per second per service (the calls the node handled and
the ones it made), and calls per second per peer. It reads the snapshots
of a node run with netron serve --http ADDR (or --ui), at
http://ADDR/api/snapshot; the first screen shows totals, the next ones
rates. It stops on Ctrl-C, or after -n screens.

Examples:
  netron serve --demo-services --http 127.0.0.1:9090 &
  netron top --http http://127.0.0.1:9090
  netron top -n 3 --interval 500ms
`

// topSnapshot is the part of a node's snapshot (GET /api/snapshot, see
// netron.Node.UIHandler) that top shows.
type topSnapshot struct {
	Node     string `json:"node"`
	Time     int64  `json:"time"`
	Services []struct {
		Name    string `json:"name"`
		Side    string `json:"side"`
		Calls   uint64 `json:"calls"`
		Errors  uint64 `json:"errors"`
		Running int64  `json:"running"`
	} `json:"services"`
	Peers []struct {
		ID        string `json:"id"`
		Direction string `json:"direction"`
		Kind      string `json:"kind"`
		Calls     uint64 `json:"calls"`
	} `json:"peers"`
	Nodes []struct {
		ID string `json:"id"`
	} `json:"nodes"`
}

func runTop(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("top", "[flags]", topDescription, stderr)
	base := fs.String("http", envOr("NETRON_HTTP", "http://127.0.0.1:9090"), "`URL` of the node's --http address (default $NETRON_HTTP or http://127.0.0.1:9090)")
	interval := fs.Duration("interval", time.Second, "refresh every `duration`")
	count := fs.Int("n", 0, "stop after `count` screens (0: never)")
	rows := fs.Int("rows", 10, "show the busiest `rows` services and peers")
	pos, err := parse(fs, args, stdout)
	switch {
	case err != nil:
	case len(pos) > 0:
		err = usageError("unexpected argument %q", pos[0])
	case *count < 0 || *rows < 1 || *interval <= 0:
		err = usageError("-n must not be negative, -rows and -interval must be positive")
	}
	if err != nil {
		return exit(stderr, "top", err)
	}
	url := strings.TrimSuffix(*base, "/")
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	clear := isTerminal(stdout)
	var prev *topSnapshot
	for n := 0; *count == 0 || n < *count; n++ {
		if n > 0 {
			select {
			case <-time.After(*interval):
			case <-ctx.Done():
				return exitOK
			}
		}
		s, err := fetchSnapshot(ctx, url+"/api/snapshot")
		if err != nil {
			if ctx.Err() != nil {
				return exitOK
			}
			return exit(stderr, "top", err)
		}
		if clear {
			fmt.Fprint(stdout, "\x1b[H\x1b[2J")
		} else if n > 0 {
			fmt.Fprintln(stdout)
		}
		printTop(stdout, s, prev, *rows)
		prev = s
	}
	return exitOK
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// isTerminal reports whether w is a character device (a terminal): top
// then redraws in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func fetchSnapshot(ctx context.Context, url string) (*topSnapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, usageError("%v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s (is the node run with --http?)", url, resp.Status)
	}
	var s topSnapshot
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return &s, nil
}

// printTop prints one screen: s's services and peers, busiest first, with
// rates since prev (nil: totals only).
func printTop(w io.Writer, s, prev *topSnapshot, rows int) {
	dt := 0.0
	if prev != nil {
		dt = float64(s.Time-prev.Time) / 1000
	}
	rate := func(now, before uint64, known bool) (float64, string) {
		if !known || dt <= 0 {
			return 0, "-"
		}
		r := float64(now-min(before, now)) / dt
		return r, fmt.Sprintf("%.1f", r)
	}
	fmt.Fprintf(w, "node %s   %d nodes in the cluster   %s\n\n", s.Node, len(s.Nodes), time.UnixMilli(s.Time).Format(time.TimeOnly))

	type row struct {
		cells []string
		rate  float64
		total uint64
	}
	before := map[string][2]uint64{}
	if prev != nil {
		for _, x := range prev.Services {
			before[x.Side+" "+x.Name] = [2]uint64{x.Calls, x.Errors}
		}
	}
	var svcs []row
	for _, x := range s.Services {
		b, ok := before[x.Side+" "+x.Name]
		ok = ok || prev != nil
		r, rs := rate(x.Calls, b[0], ok)
		_, es := rate(x.Errors, b[1], ok)
		svcs = append(svcs, row{[]string{x.Name, x.Side, rs, es, fmt.Sprint(x.Calls), fmt.Sprint(x.Errors), fmt.Sprint(x.Running)}, r, x.Calls})
	}
	busiest := func(a, b row) int {
		return cmp.Or(cmp.Compare(b.rate, a.rate), cmp.Compare(b.total, a.total), strings.Compare(a.cells[0], b.cells[0]))
	}
	slices.SortFunc(svcs, busiest)
	table(w, []string{"SERVICE", "SIDE", "CALLS/S", "ERRORS/S", "CALLS", "ERRORS", "RUNNING"}, 2, svcs[:min(rows, len(svcs))], func(r row) []string { return r.cells })

	fmt.Fprintln(w)
	pbefore := map[string]uint64{}
	if prev != nil {
		for _, p := range prev.Peers {
			pbefore[p.ID] = p.Calls
		}
	}
	var peers []row
	for _, p := range s.Peers {
		r, rs := rate(p.Calls, pbefore[p.ID], prev != nil)
		peers = append(peers, row{[]string{p.ID, p.Direction, p.Kind, rs, fmt.Sprint(p.Calls)}, r, p.Calls})
	}
	slices.SortFunc(peers, busiest)
	table(w, []string{"PEER", "DIRECTION", "KIND", "CALLS/S", "CALLS"}, 3, peers[:min(rows, len(peers))], func(r row) []string { return r.cells })
}

// table prints rows in columns under head, the first left of them
// aligned left (text), the others right (numbers).
func table[R any](w io.Writer, head []string, left int, rows []R, cells func(R) []string) {
	width := make([]int, len(head))
	all := [][]string{head}
	for _, r := range rows {
		all = append(all, cells(r))
	}
	for _, c := range all {
		for i, s := range c {
			width[i] = max(width[i], len(s))
		}
	}
	for _, c := range all {
		var b strings.Builder
		for i, s := range c {
			if i > 0 {
				b.WriteString("  ")
			}
			if i < left {
				fmt.Fprintf(&b, "%-*s", width[i], s)
			} else {
				fmt.Fprintf(&b, "%*s", width[i], s)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	if len(rows) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
}
