package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fixedResults are three rounds of every figure with made-up numbers, in
// integers so that every platform computes the same charts from them.
func fixedResults() *results {
	res := &results{seq: map[string][]seqResult{}, rates: map[string]map[string][]rateResult{}}
	roundFactor := []int64{97, 100, 104}
	seq := map[string]struct {
		rate, base, allocs int64 // rt/s, p0 latency in ns, allocations
	}{
		sysNetron: {45000, 17000, 13},
		sysGRPC:   {22800, 28000, 152},
		sysNATS:   {18200, 33000, 20},
		sysWS:     {62000, 13500, 2},
	}
	for _, sys := range figureSystems["seq"] {
		s := seq[sys]
		for _, f := range roundFactor {
			q := make([]time.Duration, len(latencyPPM))
			for i := range q {
				k := int64(i)
				q[i] = time.Duration(s.base * f / 100 * (100 + k*k*k/60) / 100)
			}
			res.seq[sys] = append(res.seq[sys], seqResult{
				calls:     int(s.rate * 3 * f / 100),
				elapsed:   3 * time.Second,
				p50:       q[5],
				p99:       q[19],
				allocs:    float64(s.allocs),
				bytes:     float64(s.allocs * 25),
				quantiles: q,
			})
		}
	}
	rates := map[string]map[string]int64{
		"conc":   {sysNetron: 188000, sysGRPC: 48000, sysNATS: 93500, sysWS: 105800},
		"down":   {sysNetron: 2126e6, sysGRPC: 1866e6, sysWS: 2916e6},
		"up":     {sysNetron: 908e6, sysGRPC: 1866e6, sysWS: 792e6},
		"events": {sysNetron: 834600, sysGRPC: 1145400, sysNATS: 1698000, sysWS: 176800},
		"bus":    {sysNetron: 10973000, sysNetronWM: 937000, sysGoChan: 462600},
	}
	allocs := map[string]float64{sysNetron: 11.2, sysGRPC: 13, sysNATS: 4, sysWS: 1, sysNetronWM: 10, sysGoChan: 28.3}
	for _, fig := range []string{"conc", "down", "up", "events", "bus"} {
		for _, sys := range figureSystems[fig] {
			for i, f := range roundFactor {
				// The peers' rounds vary the other way: spread in the ratios.
				g := roundFactor[len(roundFactor)-1-i]
				if sys == sysNetron {
					g = f
				}
				res.addRate(fig, sys, rateResult{count: rates[fig][sys] * g / 100, elapsed: time.Second, allocs: allocs[sys]})
			}
		}
	}
	return res
}

const fixedCaption = "go run ./cmd/compare -duration 3s -count 3 · 2026-01-02 03:04 UTC · a test machine"

// checkSVG fails unless b is a well-formed SVG document of chartWidth.
func checkSVG(t *testing.T, name string, b []byte) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	var root *xml.StartElement
	elements := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v", name, err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			elements++
			if root == nil {
				root = &se
			}
		}
	}
	if root == nil || root.Name.Space != "http://www.w3.org/2000/svg" || root.Name.Local != "svg" {
		t.Fatalf("%s: the root element is not an svg element: %v", name, root)
	}
	width := ""
	for _, a := range root.Attr {
		if a.Name.Local == "width" {
			width = a.Value
		}
	}
	if width != "800" {
		t.Errorf("%s: width %q, want 800", name, width)
	}
	if elements < 50 {
		t.Errorf("%s: only %d elements", name, elements)
	}
	for _, bad := range []string{"NaN", "Inf", "%!"} {
		if bytes.Contains(b, []byte(bad)) {
			t.Errorf("%s contains %q", name, bad)
		}
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run %s -update writes it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		gotPath := filepath.Join(t.TempDir(), name)
		os.WriteFile(gotPath, got, 0o644)
		t.Errorf("%s differs from %s (this run's is %s; go test -run %s -update rewrites it)", name, path, gotPath, t.Name())
	}
}

func TestRatioChartGolden(t *testing.T) {
	draw := func() []byte {
		var b bytes.Buffer
		if err := writeRatioChart(&b, ratioChartRows(fixedResults()), 3, fixedCaption); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	got := draw()
	if again := draw(); !bytes.Equal(got, again) {
		t.Fatal("two charts of the same results differ")
	}
	checkSVG(t, ratioChartFile, got)
	golden(t, "ratios.svg", got)
}

func TestLatencyChartGolden(t *testing.T) {
	draw := func() []byte {
		var b bytes.Buffer
		if err := writeLatencyChart(&b, latencyCurves(fixedResults()), 3, fixedCaption); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	got := draw()
	if again := draw(); !bytes.Equal(got, again) {
		t.Fatal("two charts of the same results differ")
	}
	checkSVG(t, latencyChartFile, got)
	golden(t, "latency.svg", got)
}

// The chart draws the table's numbers: its ratios are the table's (the
// inverse for lower-is-better rows), its whiskers the rounds' extremes, its
// p50 and p99 the table's, and its targets those the targets table judges.
func TestChartsDrawTheTable(t *testing.T) {
	res := fixedResults()
	rows := mainRows(res)
	for i, cr := range ratioChartRows(res) {
		r := findRow(rows, chartRows[i].key)
		for _, l := range cr.lanes {
			want, ok := r.ratio(l.peer)
			if ok != l.ok || ok != l.applies {
				t.Errorf("%s %s: chart ok=%v applies=%v, table ok=%v", r.key, l.peer, l.ok, l.applies, ok)
				continue
			}
			if !ok {
				continue
			}
			if cr.inverted {
				want = 1 / want
			}
			if diff := l.med/want - 1; diff > 1e-9 || diff < -1e-9 {
				t.Errorf("%s %s: chart %v, table %v", r.key, l.peer, l.med, want)
			}
			lo, hi, _ := ratioSpread(r.rounds[sysNetron], r.rounds[l.peer])
			if cr.inverted {
				lo, hi = 1/hi, 1/lo
			}
			if l.lo > l.med || l.med > l.hi || l.lo/lo-1 > 1e-9 || l.hi/hi-1 > 1e-9 || lo/l.lo-1 > 1e-9 || hi/l.hi-1 > 1e-9 {
				t.Errorf("%s %s: whisker %v–%v around %v, rounds %v–%v", r.key, l.peer, l.lo, l.hi, l.med, lo, hi)
			}
		}
	}
	drawn := 0
	for _, cr := range ratioChartRows(res) {
		for _, l := range cr.lanes {
			drawn += len(l.targets)
		}
	}
	if drawn != len(ratioTargets) {
		t.Errorf("the chart draws %d targets, there are %d", drawn, len(ratioTargets))
	}
	if latencyPPM[5] != 500000 || latencyPPM[19] != 990000 {
		t.Fatal("latencyPPM moved: the fixed results' p50 and p99 are at 5 and 19")
	}
	for _, c := range latencyCurves(res) {
		if !c.ok {
			t.Fatalf("%s: no curve", c.sys)
		}
		p50 := findRow(rows, "seq-p50").val[c.sys]
		p99 := findRow(rows, "seq-p99").val[c.sys]
		if c.p50 != p50 || c.p99 != p99 || c.med[5] != p50 || c.med[19] != p99 {
			t.Errorf("%s: chart p50 %v p99 %v (curve %v, %v), table %v, %v", c.sys, c.p50, c.p99, c.med[5], c.med[19], p50, p99)
		}
	}
}

// A quantile is the same element of the sorted latencies as the table's
// p50 (len/2) and p99 (len*99/100), whatever the count.
func TestQuantileIndex(t *testing.T) {
	for n := 1; n < 2000; n++ {
		lat := make([]time.Duration, n)
		for i := range lat {
			lat[i] = time.Duration(i)
		}
		if quantile(lat, 500000) != lat[n/2] || quantile(lat, 990000) != lat[n*99/100] || quantile(lat, 999900) > lat[n-1] {
			t.Fatalf("n=%d: quantiles %v %v, want %v %v", n, quantile(lat, 500000), quantile(lat, 990000), lat[n/2], lat[n*99/100])
		}
	}
}

func TestNiceRange(t *testing.T) {
	lo, hi, ticks := niceRange(0.3, 11)
	if got := fmtFloats(ticks); lo != 0.2 || hi != 20 || got != "0.2 0.5 1 2 5 10 20" {
		t.Fatalf("niceRange(0.3, 11) = %v, %v, %s", lo, hi, got)
	}
	// An axis has a length, even for one value.
	if lo, hi, _ := niceRange(1, 1); lo != 1 || hi != 2 {
		t.Fatalf("niceRange(1, 1) = %v, %v", lo, hi)
	}
}

func fmtFloats(v []float64) string {
	var s []string
	for _, x := range v {
		s = append(s, num(x))
	}
	return strings.Join(s, " ")
}
