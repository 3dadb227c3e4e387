// Command compare measures Netron for Go side by side with gRPC-go, NATS
// (an embedded nats-server), raw coder/websocket (the transport ceiling)
// and, for the in-process bus, Watermill's gochannel — in one run, on
// loopback, with the same workloads — and writes the table with
// Netron/peer ratios to a markdown file and, after a run of every figure of
// every system, draws it as two SVG charts (ratios, latency distribution).
//
//	go run ./cmd/compare                       # ~2 s per figure
//	go run ./cmd/compare -duration 3s -count 3 # medians of 3 interleaved rounds
//	go run ./cmd/compare -scale 10000          # also: 10,000 idle peers on one node
//	go run ./cmd/compare -quick                # smoke run (CI), writes no file
//
// Every system runs in this process, client and server both, so
// allocations per operation count both sides, and all share the CPU.
// Figures are interleaved (figure by figure, system by system) so that a
// noisy machine disturbs every column alike: compare ratios of one run,
// not absolute numbers across runs.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

var le = binary.LittleEndian

func main() {
	if os.Getenv(scaleChildEnv) != "" {
		if err := scaleChild(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "scale child:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	duration   time.Duration
	count      int
	out        string
	doc        string
	svg        string
	quick      bool
	scale      int
	compare    bool
	systems    map[string]bool
	figures    map[string]bool
	cpuProfile string
	memProfile string
	memRate    int
	scaleHeap  string
	args       []string
}

func parseFlags(args []string) (*options, error) {
	o := &options{args: args}
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.DurationVar(&o.duration, "duration", 2*time.Second, "measuring time of each figure for each system")
	fs.IntVar(&o.count, "count", 1, "rounds; each figure reports the median of its rounds")
	fs.StringVar(&o.out, "out", "../docs/benchmarks-compare.md", "markdown file to write (empty: none)")
	fs.StringVar(&o.doc, "doc", "../docs/benchmarks.md", "markdown file whose section between "+sectionBegin+" and "+sectionEnd+" gets the main table and the targets, after a run of every figure of every system (empty: none)")
	fs.StringVar(&o.svg, "svg", "../docs", "directory that gets "+ratioChartFile+" and "+latencyChartFile+" (the charts the -out file shows), after a run of every figure of every system (empty: none)")
	fs.BoolVar(&o.quick, "quick", false, "smoke run: 150 ms per figure, targets not judged, no markdown nor chart unless -out, -doc or -svg is given")
	fs.IntVar(&o.scale, "scale", 0, "also connect this many idle peers to one node and measure memory per peer")
	fs.BoolVar(&o.compare, "compare", true, "run the comparison (-compare=false with -scale: the scale measure only)")
	systems := fs.String("systems", "netron,grpc,nats,ws,gochannel", "systems to measure")
	figures := fs.String("figures", "seq,conc,down,up,events,bus", "figures to measure")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the measures to this file")
	fs.StringVar(&o.memProfile, "memprofile", "", "write an allocation profile to this file at the end")
	fs.StringVar(&o.scaleHeap, "scaleprofile", "", "with -scale: the node process writes its heap profile, with the peers connected, to this file")
	fs.IntVar(&o.memRate, "memprofilerate", 0, "runtime.MemProfileRate (1 records every allocation); 0 keeps the default")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.quick {
		o.duration, o.count = 150*time.Millisecond, 1
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		// A smoke run does not overwrite the recorded numbers.
		if !set["out"] {
			o.out = ""
		}
		if !set["doc"] {
			o.doc = ""
		}
		if !set["svg"] {
			o.svg = ""
		}
	}
	if o.count < 1 || o.duration <= 0 {
		return nil, errors.New("-count and -duration must be positive")
	}
	o.systems, o.figures = set(*systems), set(*figures)
	for s := range o.systems {
		if !slices.Contains(allSystems, s) {
			return nil, fmt.Errorf("unknown system %q (have %v)", s, allSystems)
		}
	}
	for f := range o.figures {
		if !slices.Contains(allFigures, f) {
			return nil, fmt.Errorf("unknown figure %q (have %v)", f, allFigures)
		}
	}
	return o, nil
}

// full reports whether the run measures every figure of every system:
// only such a run rewrites the table of -doc and the charts.
func (o *options) full() bool {
	return o.compare && len(o.systems) == len(allSystems) && len(o.figures) == len(allFigures)
}

var (
	allSystems = []string{"netron", "grpc", "nats", "ws", "gochannel"}
	allFigures = []string{"seq", "conc", "down", "up", "events", "bus"}
)

func set(list string) map[string]bool {
	m := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			m[s] = true
		}
	}
	return m
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	_, _, err := runResults(ctx, args, stdout)
	return err
}

// runResults is run, returning what it measured.
func runResults(ctx context.Context, args []string, stdout io.Writer) (*results, []*scaleResult, error) {
	o, err := parseFlags(args)
	if err != nil {
		return nil, nil, err
	}
	if o.memRate > 0 {
		runtime.MemProfileRate = o.memRate
	}
	raiseFileLimit(o.scale*2 + 4096)
	var res *results
	if o.compare {
		if o.cpuProfile != "" {
			f, err := os.Create(o.cpuProfile)
			if err != nil {
				return nil, nil, err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return nil, nil, err
			}
		}
		res, err = compare(ctx, o, stdout)
		if o.cpuProfile != "" {
			pprof.StopCPUProfile()
		}
		if err != nil {
			return nil, nil, err
		}
		if o.memProfile != "" {
			f, err := os.Create(o.memProfile)
			if err != nil {
				return nil, nil, err
			}
			runtime.GC() // the profile is as of the last GC
			err = pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
			if err != nil {
				return nil, nil, err
			}
		}
	}
	var scs []*scaleResult
	if o.scale > 0 {
		idle := 5 * time.Second
		if o.quick {
			idle = 500 * time.Millisecond
		}
		for _, mode := range []string{scaleGoPeers, scaleBarePeers} {
			fmt.Fprintf(stdout, "\nscale: connecting %d idle peers (%s) to one node…\n", o.scale, mode)
			profile := o.scaleHeap
			if profile != "" && mode != scaleGoPeers {
				profile += "." + mode
			}
			sc, err := measureScale(ctx, o.scale, mode, idle, profile, stdout)
			if err != nil {
				return res, nil, fmt.Errorf("scale (%s): %w", mode, err)
			}
			writeScaleText(stdout, sc)
			scs = append(scs, sc)
		}
	}
	if o.svg != "" || o.out != "" || o.doc != "" {
		fmt.Fprintln(stdout)
	}
	var charts []string // the chart files this run wrote
	switch {
	case o.svg == "":
	case !o.full():
		fmt.Fprintf(stdout, "the charts in %s left as they are: not every figure of every system was measured\n", o.svg)
	default:
		if charts, err = writeCharts(o, res, time.Now()); err != nil {
			return nil, nil, err
		}
		fmt.Fprintf(stdout, "wrote %s\n", strings.Join(charts, ", "))
	}
	if o.out != "" {
		var md bytes.Buffer
		writeMarkdown(&md, o, res, scs, charts)
		if err := os.WriteFile(o.out, md.Bytes(), 0o644); err != nil {
			return nil, nil, err
		}
		fmt.Fprintf(stdout, "wrote %s\n", o.out)
	}
	switch {
	case o.doc == "":
	case !o.full():
		fmt.Fprintf(stdout, "%s left as it is: not every figure of every system was measured\n", o.doc)
	default:
		if err := updateDoc(o.doc, o, res, scs); err != nil {
			return nil, nil, err
		}
		fmt.Fprintf(stdout, "updated %s\n", o.doc)
	}
	if res != nil && len(res.errs) > 0 {
		return res, scs, fmt.Errorf("%d measures failed: %v", len(res.errs), errors.Join(res.errs...))
	}
	return res, scs, nil
}
