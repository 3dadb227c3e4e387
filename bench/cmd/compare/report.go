package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one line of the comparison table.
type row struct {
	key    string // stable name, checked by the test
	figure string
	unit   string
	lower  bool                 // lower is better (latency, allocations)
	val    map[string]float64   // median of the rounds
	rounds map[string][]float64 // every round, in order
	note   map[string]string
}

// peers are the columns of the main table after Netron.
var peers = []string{sysGRPC, sysNATS, sysWS}

var columnName = map[string]string{
	sysNetron: "Netron", sysGRPC: "gRPC", sysNATS: "NATS", sysWS: "WebSocket",
	sysGoChan: "Watermill gochannel", sysNetronWM: "Netron bus via Watermill API",
}

// mainRows derives the rows of the main table from the rounds.
func mainRows(res *results) []row {
	var rows []row
	seqRow := func(key, fig, unit string, lower bool, f func(seqResult) float64) {
		r := row{key: key, figure: fig, unit: unit, lower: lower, val: map[string]float64{}, rounds: map[string][]float64{}}
		for _, sys := range figureSystems["seq"] {
			if v, ok := median(res.seq[sys], f); ok {
				r.val[sys] = v
				for _, rr := range res.seq[sys] {
					r.rounds[sys] = append(r.rounds[sys], f(rr))
				}
			}
		}
		rows = append(rows, r)
	}
	rateRow := func(key, fig, src, unit string, lower bool, f func(rateResult) float64) {
		r := row{key: key, figure: fig, unit: unit, lower: lower, val: map[string]float64{}, rounds: map[string][]float64{}, note: map[string]string{}}
		for _, sys := range figureSystems[src] {
			if v, ok := median(res.rates[src][sys], f); ok {
				r.val[sys] = v
				for _, rr := range res.rates[src][sys] {
					r.rounds[sys] = append(r.rounds[sys], f(rr))
					if rr.note != "" {
						r.note[sys] = rr.note
					}
				}
			}
		}
		rows = append(rows, r)
	}
	seqRow("seq-rate", "Sequential RPC, 1 caller", "rt/s", false, seqResult.rate)
	seqRow("seq-p50", "Sequential RPC, p50 latency", "µs", true, func(r seqResult) float64 { return us(r.p50) })
	seqRow("seq-p99", "Sequential RPC, p99 latency", "µs", true, func(r seqResult) float64 { return us(r.p99) })
	seqRow("seq-allocs", "Allocations per round trip (both sides)", "allocs", true, func(r seqResult) float64 { return r.allocs })
	seqRow("seq-bytes", "Heap bytes per round trip (both sides)", "B", true, func(r seqResult) float64 { return r.bytes })
	rateRow("conc-rate", "16 concurrent callers, one connection", "conc", "rt/s", false, rateResult.rate)
	rateRow("conc-allocs", "16 callers, allocations per round trip", "conc", "allocs", true, func(r rateResult) float64 { return r.allocs })
	mb := func(r rateResult) float64 { return r.rate() / 1e6 }
	rateRow("down-rate", "64 KiB stream, server → client", "down", "MB/s", false, mb)
	rateRow("up-rate", "64 KiB stream, client → server", "up", "MB/s", false, mb)
	rateRow("events-rate", "Small events (16 B) to a subscriber", "events", "msgs/s", false, rateResult.rate)
	rateRow("events-allocs", "Events, allocations per message", "events", "allocs", true, func(r rateResult) float64 { return r.allocs })
	return rows
}

// busRows is the in-process bus table.
func busRows(res *results) []row {
	var rows []row
	for _, sys := range figureSystems["bus"] {
		r := row{key: "bus-" + sys, val: map[string]float64{}, rounds: map[string][]float64{}, note: map[string]string{}}
		if v, ok := median(res.rates["bus"][sys], rateResult.rate); ok {
			r.val["rate"] = v
			for _, rr := range res.rates["bus"][sys] {
				r.rounds["rate"] = append(r.rounds["rate"], rr.rate())
			}
			r.val["allocs"], _ = median(res.rates["bus"][sys], func(r rateResult) float64 { return r.allocs })
			disorder := ""
			for _, rr := range res.rates["bus"][sys] {
				if rr.note != "" {
					disorder = rr.note
				}
			}
			r.note["order"] = "kept"
			if disorder != "" {
				r.note["order"] = "NOT kept (" + disorder + ")"
			}
		}
		rows = append(rows, r)
	}
	return rows
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// format prints a value for a table.
func format(v float64, unit string) string {
	switch unit {
	case "µs", "allocs":
		return fmt.Sprintf("%.1f", v)
	case "MB/s":
		return fmt.Sprintf("%.0f", v)
	}
	return thousands(int64(math.Round(v)))
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// cell is the text of a value of row r for system sys.
func (r row) cell(sys string) string {
	if !slices.Contains(figureSystemsOfRow(r.key), sys) {
		return "n/a"
	}
	v, ok := r.val[sys]
	if !ok {
		return "–"
	}
	s := format(v, r.unit)
	if n := r.note[sys]; n != "" {
		s += " (" + n + ")"
	}
	return s
}

// ratio is Netron's value over sys's: above 1 is Netron ahead for rates,
// behind for latencies and allocations. It is the median of the ratios of
// each round (the two systems ran seconds apart, so a noisy neighbour
// disturbs both alike), or the ratio of the medians when rounds are
// missing.
func (r row) ratio(sys string) (float64, bool) {
	a, ok1 := r.val[sysNetron]
	b, ok2 := r.val[sys]
	if !ok1 || !ok2 || b == 0 {
		return 0, false
	}
	return ratioOf(r.rounds[sysNetron], r.rounds[sys], a/b), true
}

// ratioOf is the median of a[i]/b[i], or fallback when the rounds do not
// pair up.
func ratioOf(a, b []float64, fallback float64) float64 {
	q, ok := roundRatios(a, b)
	if !ok {
		return fallback
	}
	v, _ := median(q, func(x float64) float64 { return x })
	return v
}

// ratioSpread is the lowest and highest of the per-round ratios a[i]/b[i];
// ok is false when there are fewer than two rounds or they do not pair up.
func ratioSpread(a, b []float64) (lo, hi float64, ok bool) {
	q, ok := roundRatios(a, b)
	if !ok || len(q) < 2 {
		return 0, 0, false
	}
	return slices.Min(q), slices.Max(q), true
}

// roundRatios is a[i]/b[i] for each round; false when the rounds do not
// pair up or a b[i] is zero.
func roundRatios(a, b []float64) ([]float64, bool) {
	if len(a) == 0 || len(a) != len(b) {
		return nil, false
	}
	q := make([]float64, len(a))
	for i := range a {
		if b[i] == 0 {
			return nil, false
		}
		q[i] = a[i] / b[i]
	}
	return q, true
}

func (r row) ratioCell(sys string) string {
	if v, ok := r.ratio(sys); ok {
		return fmt.Sprintf("%.2f×", v)
	}
	return "–"
}

func figureSystemsOfRow(key string) []string {
	fig, _, _ := strings.Cut(key, "-")
	return figureSystems[fig]
}

// target is one goal of issue #21 (or one of issue #7 it keeps) and how
// this run did against it.
type target struct {
	name     string
	measured string
	met      string // "yes", "NO", or why it cannot be judged
}

func findRow(rows []row, key string) row {
	for _, r := range rows {
		if r.key == key {
			return r
		}
	}
	return row{val: map[string]float64{}}
}

// ratioTarget is a goal for Netron's ratio to a peer in one row of the
// main table; the ratio chart draws it on the peer's lane.
type ratioTarget struct {
	key, peer  string
	want       float64
	everyRound bool // met only when every round's ratio is, not only the median
	ordered    bool // met only when Netron's messages arrived in order
	name       string
}

// scaleGoalRSS is the target for the node's RSS with 10,000 idle Go peers.
const scaleGoalRSS = 200 << 20

// ratioTargets are the targets of issue #21 on ratios, with those of
// issue #7 it keeps (sequential ≥ 1.5× NATS) or raises.
var ratioTargets = []ratioTarget{
	{key: "seq-rate", peer: sysGRPC, want: 2.2, everyRound: true, name: "Sequential RPC ≥ 2.2× gRPC round trips/s, in every round"},
	{key: "seq-rate", peer: sysNATS, want: 1.5, name: "Sequential RPC ≥ 1.5× NATS round trips/s"},
	{key: "seq-rate", peer: sysWS, want: 0.85, name: "Sequential RPC ≥ 0.85× raw WebSocket round trips/s"},
	{key: "conc-rate", peer: sysNATS, want: 2, name: "16 callers on one connection ≥ 2× NATS"},
	{key: "conc-rate", peer: sysGRPC, want: 3.5, name: "16 callers on one connection ≥ 3.5× gRPC"},
	{key: "down-rate", peer: sysGRPC, want: 1.1, name: "64 KiB stream server → client ≥ 1.1× gRPC server streaming"},
	{key: "up-rate", peer: sysGRPC, want: 1, name: "64 KiB stream client → server ≥ 1.0× gRPC client streaming"},
	{key: "events-rate", peer: sysNATS, want: 1, ordered: true, name: "Small events ≥ 1.0× NATS pub/sub, in order, none lost"},
}

func targets(o *options, res *results, scs []*scaleResult) []target {
	judge := func(ok bool) string {
		if o.quick {
			return "not judged (quick run)"
		}
		if ok {
			return "yes"
		}
		return "NO"
	}
	var rows []row
	if res != nil {
		rows = mainRows(res)
	}
	var ts []target
	for _, rt := range ratioTargets {
		t := target{name: rt.name, measured: "not measured", met: "–"}
		r := findRow(rows, rt.key)
		if v, ok := r.ratio(rt.peer); ok {
			t.measured = fmt.Sprintf("%.2f×", v)
			met := v >= rt.want
			if lo, hi, spread := ratioSpread(r.rounds[sysNetron], r.rounds[rt.peer]); spread {
				// A target the rounds straddle is met in some runs only.
				t.measured += fmt.Sprintf(" (rounds %.2f–%.2f×)", lo, hi)
				if rt.everyRound {
					met = lo >= rt.want
				}
			}
			if n := r.note[sysNetron]; rt.ordered && n != "" {
				t.measured += ", " + n
				met = false
			}
			t.met = judge(met)
		}
		ts = append(ts, t)
	}

	t := target{name: "Sequential RPC p99 ≤ 2.5× its p50", measured: "not measured", met: "–"}
	if r := findRow(rows, "seq-p99"); r.val[sysNetron] > 0 {
		p50 := findRow(rows, "seq-p50")
		v := ratioOf(r.rounds[sysNetron], p50.rounds[sysNetron], r.val[sysNetron]/p50.val[sysNetron])
		t.measured = fmt.Sprintf("%.1f µs, %.2f× p50", r.val[sysNetron], v)
		if lo, hi, ok := ratioSpread(r.rounds[sysNetron], p50.rounds[sysNetron]); ok {
			t.measured += fmt.Sprintf(" (rounds %.2f–%.2f×)", lo, hi)
		}
		t.met = judge(v <= 2.5)
	}
	ts = append(ts, t)

	for _, a := range []struct {
		name, key string
		want      float64
	}{
		{"≤ 8 allocations per RPC round trip, both sides", "seq-allocs", 8},
		{"≤ 4 allocations per event, both sides", "events-allocs", 4},
	} {
		t := target{name: a.name, measured: "not measured", met: "–"}
		if v, ok := findRow(rows, a.key).val[sysNetron]; ok {
			t.measured = fmt.Sprintf("%.1f", v)
			t.met = judge(v <= a.want)
		}
		ts = append(ts, t)
	}

	t = target{name: "In-process bus ≥ 25× Watermill gochannel msgs/s, order kept", measured: "not measured", met: "–"}
	if res != nil {
		br := busRows(res)
		ours, gc := findRow(br, "bus-"+sysNetron), findRow(br, "bus-"+sysGoChan)
		if a, ok := ours.val["rate"]; ok {
			if b, ok := gc.val["rate"]; ok && b > 0 {
				q := ratioOf(ours.rounds["rate"], gc.rounds["rate"], a/b)
				t.measured = fmt.Sprintf("%.2f×, order %s", q, ours.note["order"])
				t.met = judge(q >= 25 && ours.note["order"] == "kept")
			}
		}
	}
	ts = append(ts, t)

	t = target{name: fmt.Sprintf("10,000 idle Go peers on one node ≤ %d MiB", scaleGoalRSS>>20), measured: "not measured (-scale)", met: "–"}
	if len(scs) > 0 {
		sc := scs[0] // Go peers, the heavier kind
		if len(scs) > 1 {
			t.name += " (bare connections in the full table)"
		}
		perPeer := sc.serverRSSPerPeer()
		t.measured = fmt.Sprintf("%s peers: node RSS %.0f MiB (%.0f MiB before; %.1f KiB per peer)",
			thousands(int64(sc.n)), float64(sc.server.RSS)/(1<<20), float64(sc.base.RSS)/(1<<20), perPeer/1024)
		switch {
		case sc.n >= 10000:
			t.met = judge(sc.server.RSS <= scaleGoalRSS)
		default:
			at10k := float64(sc.base.RSS) + perPeer*10000
			t.measured += fmt.Sprintf("; 10,000 ≈ %.0f MiB", at10k/(1<<20))
			t.met = "extrapolated: " + judge(at10k <= scaleGoalRSS)
		}
	}
	ts = append(ts, t)
	return ts
}

// writeText prints the tables to the terminal.
func writeText(w io.Writer, o *options, res *results) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "figure\tunit\tNetron\tgRPC\tNATS\tWebSocket\tNetron/gRPC\tNetron/NATS\tNetron/WS\t\n")
	for _, r := range mainRows(res) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.figure, r.unit,
			r.cell(sysNetron), r.cell(sysGRPC), r.cell(sysNATS), r.cell(sysWS),
			r.ratioCell(sysGRPC), r.ratioCell(sysNATS), r.ratioCell(sysWS))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "in-process bus\tmsgs/s\tallocs/msg\torder\t\n")
	for _, r := range busRows(res) {
		sys := strings.TrimPrefix(r.key, "bus-")
		if v, ok := r.val["rate"]; ok {
			fmt.Fprintf(tw, "%s\t%s\t%.1f\t%s\t\n", columnName[sys], thousands(int64(v)), r.val["allocs"], r.note["order"])
		} else {
			fmt.Fprintf(tw, "%s\t–\t–\t–\t\n", columnName[sys])
		}
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprint(tw, "target\tmeasured\tmet\n")
	for _, t := range targets(o, res, nil) {
		if strings.HasPrefix(t.name, "10,000") {
			continue // printed after the scale measure
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", t.name, t.measured, t.met)
	}
	tw.Flush()
}

// machine describes where the run happened.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d CPUs (GOMAXPROCS %d), %s %s/%s", cpu, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// writeMarkdown writes the report of the run; charts are the chart files
// the run wrote, which it shows.
func writeMarkdown(w io.Writer, o *options, res *results, scs []*scaleResult, charts []string) {
	fmt.Fprintf(w, "# Netron compared with gRPC, NATS and raw WebSocket\n\n")
	fmt.Fprintf(w, "Produced by `bench/cmd/compare` (issues #7 and #21) on %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "Command (in `bench/`): `go run ./cmd/compare %s`\n\n", strings.Join(o.args, " "))
	fmt.Fprintf(w, "Machine: %s.\n", machine())
	if o.quick {
		fmt.Fprintf(w, "\n**Quick (smoke) run: 150 ms per figure; the numbers are not meaningful.**\n")
	}
	fmt.Fprintln(w)
	if res != nil {
		fmt.Fprintf(w, "Each figure ran %v per system (after a warm-up), %d round(s), interleaved system by system; "+
			"the table shows the median of the rounds. The whole comparison took %v.\n\n", o.duration, o.count, res.took.Round(time.Second))
		fmt.Fprintf(w, "Everything runs in one process on loopback: clients, servers (and nats-server) share the CPU, and "+
			"allocations count both sides (and the NATS broker). Values are medians of the rounds; ratios are Netron / peer, "+
			"the median of each round's ratio: above 1× Netron is ahead for rates, behind for latencies and allocations. "+
			"Compare ratios of one run, not absolute numbers across runs.\n\n")
		if len(charts) > 0 {
			fmt.Fprintf(w, "The charts draw the table: the ratios per figure with each round's spread (for latencies and allocations "+
				"inverted, peer ÷ Netron, so that right of 1× is always Netron ahead) and the targets, then the latency "+
				"distribution of the sequential round trips.\n\n")
		}
		for _, c := range charts {
			writeChartLink(w, o.out, c)
		}
		writeMainTable(w, res)
		fmt.Fprintf(w, "\n### In-process bus\n\n| bus | msgs/s | allocs/msg | order |\n|---|--:|--:|---|\n")
		for _, r := range busRows(res) {
			sys := strings.TrimPrefix(r.key, "bus-")
			if v, ok := r.val["rate"]; ok {
				fmt.Fprintf(w, "| %s | %s | %.1f | %s |\n", columnName[sys], thousands(int64(v)), r.val["allocs"], r.note["order"])
			} else {
				fmt.Fprintf(w, "| %s | – | – | – |\n", columnName[sys])
			}
		}
	}
	fmt.Fprintf(w, "\n### Targets of issue #21\n\n")
	writeTargets(w, o, res, scs)
	if len(scs) > 0 {
		fmt.Fprintf(w, "\n### Idle peers on one node\n\n")
		fmt.Fprintf(w, "The node runs in a process of its own (this program, re-executed); the peers are dialled from "+
			"the comparison's process with 32 goroutines, left idle, and both processes are measured after a GC. "+
			"RSS is what the kernel counts resident; after `debug.FreeOSMemory` it leaves out freed heap not yet "+
			"returned; heap in use counts allocated spans, touched or not.\n\n")
		for _, sc := range scs {
			writeScaleMarkdown(w, sc)
		}
	}
	fmt.Fprint(w, workloads)
}

// chartAlt describes each chart for those who cannot see it.
var chartAlt = map[string]string{
	ratioChartFile:   "Netron's ratio to gRPC, NATS and raw WebSocket per figure: the median of the rounds, the lowest and highest round, the targets",
	latencyChartFile: "Latency percentiles of sequential round trips for Netron, gRPC, NATS and raw WebSocket, p50 and p99 marked",
}

// writeChartLink shows the chart at path in the markdown file md.
func writeChartLink(w io.Writer, md, path string) {
	rel, err := filepath.Rel(filepath.Dir(md), path)
	if err != nil {
		rel = path
	}
	fmt.Fprintf(w, "![%s](%s)\n\n", chartAlt[filepath.Base(path)], filepath.ToSlash(rel))
}

func writeMainTable(w io.Writer, res *results) {
	fmt.Fprintf(w, "| figure | unit | Netron | gRPC | NATS | WebSocket (ceiling) | Netron/gRPC | Netron/NATS | Netron/WS |\n")
	fmt.Fprintf(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range mainRows(res) {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.figure, r.unit,
			r.cell(sysNetron), r.cell(sysGRPC), r.cell(sysNATS), r.cell(sysWS),
			r.ratioCell(sysGRPC), r.ratioCell(sysNATS), r.ratioCell(sysWS))
	}
}

func writeTargets(w io.Writer, o *options, res *results, scs []*scaleResult) {
	fmt.Fprintf(w, "| target | measured | met |\n|---|---|---|\n")
	for _, t := range targets(o, res, scs) {
		fmt.Fprintf(w, "| %s | %s | %s |\n", t.name, t.measured, t.met)
	}
}

// The markers around the section of -doc that a run rewrites.
const (
	sectionBegin = "<!-- compare:begin -->"
	sectionEnd   = "<!-- compare:end -->"
)

// updateDoc rewrites the section of the markdown file path between
// sectionBegin and sectionEnd with the run's main table and targets; the
// rest of the file, written by hand, stays as it is.
func updateDoc(path string, o *options, res *results, scs []*scaleResult) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var sec bytes.Buffer
	fmt.Fprintf(&sec, "\nWritten by `bench/cmd/compare` on %s: `go run ./cmd/compare %s` (in `bench/`), %s. "+
		"Medians of the rounds; ratios are the median of each round's ratio. The full table, with the workloads: "+
		"[benchmarks-compare.md](benchmarks-compare.md).\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), strings.Join(o.args, " "), machine())
	if res != nil {
		writeMainTable(&sec, res)
		fmt.Fprintln(&sec)
	}
	writeTargets(&sec, o, res, scs)
	fmt.Fprintln(&sec)
	out, err := replaceSection(doc, sec.Bytes())
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, out, 0o644)
}

// replaceSection returns doc with what lies between its markers replaced
// by section.
func replaceSection(doc, section []byte) ([]byte, error) {
	i := bytes.Index(doc, []byte(sectionBegin))
	j := bytes.Index(doc, []byte(sectionEnd))
	if i < 0 || j < i || bytes.Count(doc, []byte(sectionBegin)) != 1 || bytes.Count(doc, []byte(sectionEnd)) != 1 {
		return nil, fmt.Errorf("want one %s followed by one %s", sectionBegin, sectionEnd)
	}
	i += len(sectionBegin)
	out := make([]byte, 0, len(doc)+len(section))
	out = append(out, doc[:i]...)
	out = append(out, section...)
	return append(out, doc[j:]...), nil
}

const workloads = `
### Workloads

- **Sequential RPC**: one caller, one round trip at a time: a request carrying two
  integers, the reply their sum. Netron: ` + "`rpc.Call[int64](ctx, svc, \"add\", a, b)`" + ` on a
  service of a second node, over one loopback WebSocket. gRPC: a unary method
  registered by hand (` + "`grpc.ServiceDesc`" + `) with a codec that passes []byte through
  (16-byte request, 8-byte reply; no protobuf). NATS: ` + "`Request`" + ` from one connection to
  a subscriber on another, through an embedded nats-server (requester → server →
  responder → server → requester). WebSocket: coder/websocket, one 16-byte binary
  message out, 8 bytes back, buffers reused (the transport ceiling, no protocol).
  p50/p99 are of every round trip of the run. Allocations: ` + "`runtime.MemStats.Mallocs`" + `
  over the run divided by round trips: client and server (and broker) together.
- **16 concurrent callers**: 16 goroutines calling as fast as they can on the same
  connection (Netron service handle, gRPC ClientConn, NATS connection). WebSocket:
  a minimal multiplexer (4-byte call id, one reader goroutine; the server answers
  in order).
- **64 KiB streams**: chunks of 64 KiB for the figure's duration, then the end of
  stream; MB/s = payload bytes the consumer got / time from the call to the end.
  Every sender writes the same reused 64 KiB buffer, one message per chunk.
  Netron: a method returning ` + "`iter.Seq2[[]byte, error]`" + ` read with ` + "`rpc.Stream[[]byte]`" + `
  (server → client), and a ` + "`stream.FromSeq`" + ` argument read by a ` + "`*stream.Reader[[]byte]`" + `
  parameter (client → server), with Netron's credit flow control (1 MiB window).
  gRPC: server streaming and client streaming, default flow control. WebSocket:
  one binary message per chunk with ` + "`Conn.Write`" + `, as Netron's connections write, on a
  connection dialled and accepted as Netron's are (no compression, coder/websocket's
  own 4 KiB buffers, through which a client masks what it sends); the receiver reads
  into a reused buffer. NATS has no stream: n/a.
- **Small events**: 16-byte payloads carrying a sequence number, one sender, one
  receiver, at most 512 in flight (the sender takes a credit per message, the
  receiver gives it back: every system gets the same window, which keeps
  Netron's per-peer event queue and NATS's slow-consumer limit from dropping).
  Every system is held to the same delivery guarantee: the receiver checks each
  sequence number (messages out of order are shown next to the figure) and a lost
  message fails the measure. Allocations per event count both sides (and the NATS
  broker) in one process.
  Netron: ` + "`node.Emit`" + ` on the server node → the client's ` + "`Peer.Subscribe`" + ` handler.
  NATS: core pub/sub between two connections. gRPC: ` + "`SendMsg`" + ` on the server end
  of a server stream. WebSocket: one message per event, server → client.
- **In-process bus**: one publisher, one subscriber, 8-byte sequence numbers,
  the same 512-message window. Netron: ` + "`bus.NewTopic[int64]`" + ` Publish → a
  Subscription's channel (Block policy, buffer 256). Netron via Watermill API:
  ` + "`Bus.Publish`" + ` → ` + "`Bus.Subscribe`" + ` with Ack. gochannel: the same through
  Watermill's GoChannel (output buffer 256) with Ack. "Order" counts messages
  that arrived out of sequence.
`
