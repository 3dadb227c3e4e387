package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the node process of the
// scale measure, which re-executes the running program.
func TestMain(m *testing.M) {
	if os.Getenv(scaleChildEnv) != "" {
		if err := scaleChild(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "scale child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestQuick runs the whole suite in -quick mode, with a small scale
// measure, and checks that every figure of every system produced a number
// and that the markdown has every row: a broken suite fails here, in CI,
// rather than on the day someone wants the numbers. It asserts nothing
// about speed.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	out := filepath.Join(dir, "compare.md")
	doc := filepath.Join(t.TempDir(), "benchmarks.md")
	const before, after = "# Benchmarks\n\nWritten by hand.\n\n", "\n\nAlso by hand.\n"
	if err := os.WriteFile(doc, []byte(before+sectionBegin+"\nthe last run\n"+sectionEnd+after), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	start := time.Now()
	res, scs, err := runResults(ctx, []string{"-quick", "-scale", "20", "-out", out, "-doc", doc, "-svg", dir}, &stdout)
	t.Logf("quick run took %v", time.Since(start))
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stdout.String())
	}
	text := stdout.String()
	if strings.Contains(text, "ERROR") {
		t.Fatalf("a measure failed:\n%s", text)
	}
	md, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if res == nil || len(scs) != 2 {
		t.Fatal("run measured nothing")
	}
	for _, r := range mainRows(res) {
		for _, sys := range figureSystemsOfRow(r.key) {
			if sys == sysNetronWM || sys == sysGoChan {
				continue
			}
			if _, ok := r.val[sys]; !ok {
				t.Errorf("row %s has no value for %s", r.key, sys)
			}
		}
		if !bytes.Contains(md, []byte("| "+r.figure+" |")) {
			t.Errorf("the markdown has no row %q", r.figure)
		}
		if !strings.Contains(text, r.figure) {
			t.Errorf("the printed table has no row %q", r.figure)
		}
	}
	for _, r := range busRows(res) {
		if _, ok := r.val["rate"]; !ok {
			t.Errorf("bus row %s has no value", r.key)
		}
		if !bytes.Contains(md, []byte("| "+columnName[strings.TrimPrefix(r.key, "bus-")]+" |")) {
			t.Errorf("the markdown has no bus row %s", r.key)
		}
	}
	for _, tg := range targets(&options{quick: true}, res, scs) {
		if !bytes.Contains(md, []byte("| "+tg.name+" |")) {
			t.Errorf("the markdown has no target %q", tg.name)
		}
	}
	for _, want := range []string{"### Idle peers on one node", "| node (accepting) |", "| dialling process |", "20 Go peers", "20 bare connections"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("the markdown has no %q", want)
		}
	}
	// The charts: well-formed, drawn from this run, shown by the markdown.
	for _, name := range []string{ratioChartFile, latencyChartFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		checkSVG(t, name, b)
		if !bytes.Contains(md, []byte("]("+name+")")) {
			t.Errorf("the markdown does not show %s", name)
		}
	}
	if !strings.Contains(text, "idle peers (go-peers) on one node: 20") || !strings.Contains(text, "idle peers (bare) on one node: 20") {
		t.Errorf("the scale measure printed nothing:\n%s", text)
	}
	// The doc's section has the main table and the targets, and nothing
	// else of the doc changed.
	d, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	sec, ok := bytes.CutPrefix(d, []byte(before+sectionBegin))
	if !ok || !bytes.HasSuffix(sec, []byte(sectionEnd+after)) {
		t.Fatalf("the doc changed outside its section:\n%s", d)
	}
	if bytes.Contains(sec, []byte("the last run")) {
		t.Error("the section still has the previous run")
	}
	for _, want := range []string{"| " + mainRows(res)[0].figure + " |", "| " + targets(&options{quick: true}, res, scs)[0].name + " |", "-doc " + doc} {
		if !bytes.Contains(sec, []byte(want)) {
			t.Errorf("the doc's section has no %q:\n%s", want, sec)
		}
	}
}

func TestReplaceSection(t *testing.T) {
	got, err := replaceSection([]byte("a"+sectionBegin+"old"+sectionEnd+"b"), []byte("new"))
	if err != nil || string(got) != "a"+sectionBegin+"new"+sectionEnd+"b" {
		t.Fatalf("replaceSection = %q, %v", got, err)
	}
	for _, doc := range []string{
		"no markers",
		"a" + sectionBegin + "b", // no end
		"a" + sectionEnd + "b" + sectionBegin + "c",        // the wrong way round
		sectionBegin + sectionBegin + "x" + sectionEnd,     // two begins
		sectionBegin + "x" + sectionEnd + "y" + sectionEnd, // two ends
	} {
		if _, err := replaceSection([]byte(doc), []byte("new")); err == nil {
			t.Errorf("replaceSection(%q) accepted it", doc)
		}
	}
}

func TestRatioSpread(t *testing.T) {
	lo, hi, ok := ratioSpread([]float64{40, 42, 44}, []float64{20, 21, 20})
	if !ok || lo != 2 || hi != 2.2 {
		t.Fatalf("ratioSpread = %v, %v, %v; want 2, 2.2, true", lo, hi, ok)
	}
	for _, c := range [][2][]float64{
		{{40}, {20}},        // one round: no spread
		{{40, 42}, {20}},    // rounds do not pair up
		{{40, 42}, {20, 0}}, // a zero
	} {
		if _, _, ok := ratioSpread(c[0], c[1]); ok {
			t.Fatalf("ratioSpread(%v, %v) ok", c[0], c[1])
		}
	}
}

// Only a run of every figure of every system rewrites the doc's table: a
// profile of one figure must not replace it with a partial one.
func TestOnlyFullRunsWriteTheDoc(t *testing.T) {
	for _, c := range []struct {
		args []string
		full bool
	}{
		{nil, true},
		{[]string{"-duration", "3s", "-count", "3", "-scale", "10000"}, true},
		{[]string{"-figures", "seq"}, false},
		{[]string{"-systems", "netron,grpc"}, false},
		{[]string{"-compare=false", "-scale", "10"}, false},
	} {
		o, err := parseFlags(c.args)
		if err != nil {
			t.Fatal(err)
		}
		if o.full() != c.full {
			t.Errorf("%q: full = %v, want %v", c.args, o.full(), c.full)
		}
	}
}

// A partial run draws no chart, and its markdown shows none: the charts
// in the directory are another run's.
func TestPartialRunDrawsNoChart(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	out := filepath.Join(dir, "compare.md")
	var stdout bytes.Buffer
	if _, _, err := runResults(ctx, []string{"-quick", "-figures", "bus", "-systems", "netron,gochannel", "-out", out, "-svg", dir}, &stdout); err != nil {
		t.Fatalf("run: %v\n%s", err, stdout.String())
	}
	for _, name := range []string{ratioChartFile, latencyChartFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("a partial run wrote %s (%v)", name, err)
		}
	}
	md, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(md, []byte(".svg")) {
		t.Errorf("the markdown of a partial run shows a chart:\n%s", md)
	}
	if !strings.Contains(stdout.String(), "charts in "+dir+" left as they are") {
		t.Errorf("the run did not say it left the charts:\n%s", stdout.String())
	}
}
