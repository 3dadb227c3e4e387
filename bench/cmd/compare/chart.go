package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The charts of a full run, drawn as SVG with the standard library: the
// ratio chart (a row per figure of the main table, a lane per peer: the
// median of the rounds' ratios, a whisker from the lowest to the highest
// round, 1× and the targets) and the latency chart (the percentile curve
// of the sequential round trips of each system). The same results give the
// same bytes: the tests compare them with golden files.

// The files a full run writes into the -svg directory.
const (
	ratioChartFile   = "bench-ratios.svg"
	latencyChartFile = "bench-latency.svg"
)

// chartWidth fits the column of a README on GitHub.
const chartWidth = 800

// ratioLane is one peer's ratio in one row of the ratio chart, oriented so
// that above 1 Netron is ahead.
type ratioLane struct {
	peer        string
	applies     bool // the figure has this peer (NATS has no stream)
	ok          bool // measured in every round
	med, lo, hi float64
	targets     []float64
}

// ratioChartRow is one figure of the ratio chart.
type ratioChartRow struct {
	label    string
	inverted bool // lower is better: the lanes are peer ÷ Netron
	lanes    []ratioLane
}

// chartRows are the rows of the main table the ratio chart draws, with
// their labels there: all but heap bytes per round trip, which go with the
// allocations.
var chartRows = []struct{ key, label string }{
	{"seq-rate", "Sequential RPC, round trips/s"},
	{"seq-p50", "Sequential RPC, p50 latency"},
	{"seq-p99", "Sequential RPC, p99 latency"},
	{"seq-allocs", "Allocations per round trip"},
	{"conc-rate", "16 callers, round trips/s"},
	{"conc-allocs", "16 callers, allocations per call"},
	{"down-rate", "64 KiB stream server → client"},
	{"up-rate", "64 KiB stream client → server"},
	{"events-rate", "Small events (16 B), msgs/s"},
	{"events-allocs", "Events, allocations per event"},
}

// ratioChartRows derives the ratio chart from the rounds.
func ratioChartRows(res *results) []ratioChartRow {
	rows := mainRows(res)
	var out []ratioChartRow
	for _, cr := range chartRows {
		r := findRow(rows, cr.key)
		row := ratioChartRow{label: cr.label, inverted: r.lower}
		for _, p := range peers {
			lane := ratioLane{peer: p, applies: slices.Contains(figureSystemsOfRow(cr.key), p)}
			a, b := r.rounds[sysNetron], r.rounds[p]
			if r.lower {
				a, b = b, a
			}
			if q, ok := roundRatios(a, b); ok && positive(q) {
				lane.ok = true
				lane.med, _ = median(q, func(x float64) float64 { return x })
				lane.lo, lane.hi = slices.Min(q), slices.Max(q)
			}
			for _, t := range ratioTargets {
				if t.key == cr.key && t.peer == p {
					want := t.want
					if r.lower {
						want = 1 / want
					}
					lane.targets = append(lane.targets, want)
				}
			}
			row.lanes = append(row.lanes, lane)
		}
		out = append(out, row)
	}
	return out
}

// positive reports whether every value can go on a log scale.
func positive(v []float64) bool {
	for _, x := range v {
		if !(x > 0) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// latencyCurve is one system's latency distribution, in µs at latencyPPM.
type latencyCurve struct {
	sys         string
	med, lo, hi []float64 // median, lowest and highest round at each percentile
	p50, p99    float64   // the table's (medians of the rounds)
	p99overP50  float64   // median of the rounds' p99 ÷ p50
	rounds      int
	ok          bool // every round kept its quantiles
}

// latencyCurves derives the latency chart from the sequential rounds.
func latencyCurves(res *results) []latencyCurve {
	var out []latencyCurve
	for _, sys := range figureSystems["seq"] {
		rounds := res.seq[sys]
		c := latencyCurve{sys: sys, rounds: len(rounds)}
		c.ok = len(rounds) > 0
		for _, r := range rounds {
			c.ok = c.ok && len(r.quantiles) == len(latencyPPM) && r.p50 > 0
		}
		if c.ok {
			for i := range latencyPPM {
				at := func(r seqResult) float64 { return us(r.quantiles[i]) }
				m, _ := median(rounds, at)
				lo, hi := math.Inf(1), math.Inf(-1)
				for _, r := range rounds {
					lo, hi = min(lo, at(r)), max(hi, at(r))
				}
				c.med, c.lo, c.hi = append(c.med, m), append(c.lo, lo), append(c.hi, hi)
			}
			c.p50, _ = median(rounds, func(r seqResult) float64 { return us(r.p50) })
			c.p99, _ = median(rounds, func(r seqResult) float64 { return us(r.p99) })
			c.p99overP50, _ = median(rounds, func(r seqResult) float64 { return float64(r.p99) / float64(r.p50) })
			c.ok = positive(c.lo)
		}
		out = append(out, c)
	}
	return out
}

// writeCharts writes the two charts into o.svg and returns their paths.
func writeCharts(o *options, res *results, when time.Time) ([]string, error) {
	caption := chartCaption(o, when)
	var paths []string
	for _, c := range []struct {
		file string
		draw func(io.Writer) error
	}{
		{ratioChartFile, func(w io.Writer) error { return writeRatioChart(w, ratioChartRows(res), o.count, caption) }},
		{latencyChartFile, func(w io.Writer) error { return writeLatencyChart(w, latencyCurves(res), o.count, caption) }},
	} {
		var b bytes.Buffer
		if err := c.draw(&b); err != nil {
			return nil, err
		}
		path := filepath.Join(o.svg, c.file)
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			return nil, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// chartCaption says where the charts come from: command, date, machine.
func chartCaption(o *options, when time.Time) string {
	return fmt.Sprintf("go run ./cmd/compare %s · %s · %s",
		strings.Join(o.args, " "), when.UTC().Format("2006-01-02 15:04 UTC"), machine())
}

// The look of the systems, the same in both charts: colours that stay
// apart in grayscale (dark blue, light orange, near black, vermillion with
// the heaviest line), each with a marker shape and a dash pattern of its
// own so that nothing rests on colour alone.
var sysStyle = map[string]struct {
	name, short, colour, shape, dash string
	width                            float64
}{
	sysNetron: {"Netron", "Netron", "#D55E00", "triangle", "", 2.6},
	sysGRPC:   {"gRPC", "gRPC", "#0072B2", "circle", "7 4", 1.8},
	sysNATS:   {"NATS", "NATS", "#E69F00", "square", "2 3", 2.2},
	sysWS:     {"raw WebSocket", "raw WS", "#222222", "diamond", "10 3 2 3", 1.4},
}

// svgDoc accumulates an SVG document.
type svgDoc struct{ bytes.Buffer }

func (d *svgDoc) printf(format string, a ...any) { fmt.Fprintf(&d.Buffer, format, a...) }

// num prints a coordinate with one decimal at most.
func num(v float64) string {
	r := math.Round(v*10) / 10
	if r == 0 {
		r = 0 // no "-0"
	}
	return strconv.FormatFloat(r, 'f', -1, 64)
}

// esc escapes text for XML.
func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func (d *svgDoc) begin(height int, label string) {
	d.printf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s">`+"\n",
		chartWidth, height, chartWidth, height, esc(label))
	d.printf("<title>%s</title>\n", esc(label))
	d.printf("<style>text{font-family:-apple-system,BlinkMacSystemFont,'Segoe UI',Helvetica,Arial,sans-serif;fill:#222}" +
		".t{font-size:17px;font-weight:600}.s{font-size:12px;fill:#444}.c{font-size:10.5px;fill:#777}" +
		".l{font-size:12.5px}.h{font-size:10.5px;fill:#666}.a{font-size:11px;fill:#444}.v{font-size:11.5px;font-weight:600}</style>\n")
	// An opaque background: the chart stays readable on a dark page.
	d.printf(`<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", chartWidth, height)
}

func (d *svgDoc) end() { d.printf("</svg>\n") }

// text writes a text element; anchor is start, middle or end.
func (d *svgDoc) text(x, y float64, class, anchor, s string) {
	d.printf(`<text x="%s" y="%s" class="%s" text-anchor="%s">%s</text>`+"\n", num(x), num(y), class, anchor, esc(s))
}

func (d *svgDoc) line(x1, y1, x2, y2 float64, stroke string, width float64, extra string) {
	d.printf(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="%s"%s/>`+"\n",
		num(x1), num(y1), num(x2), num(y2), stroke, num(width), extra)
}

// marker draws a system's marker centred on x, y.
func (d *svgDoc) marker(shape string, x, y, r float64, fill, stroke string) {
	paint := fmt.Sprintf(` fill="%s" stroke="%s" stroke-width="1.2"`, fill, stroke)
	switch shape {
	case "circle":
		d.printf(`<circle cx="%s" cy="%s" r="%s"%s/>`+"\n", num(x), num(y), num(r), paint)
	case "square":
		s := r * 0.9
		d.printf(`<rect x="%s" y="%s" width="%s" height="%s"%s/>`+"\n", num(x-s), num(y-s), num(2*s), num(2*s), paint)
	case "diamond":
		s := r * 1.25
		d.printf(`<path d="M%s %sL%s %sL%s %sL%s %sZ"%s/>`+"\n", num(x), num(y-s), num(x+s), num(y), num(x), num(y+s), num(x-s), num(y), paint)
	case "triangle":
		s := r * 1.2
		d.printf(`<path d="M%s %sL%s %sL%s %sZ"%s/>`+"\n", num(x), num(y-s), num(x+s), num(y+s*0.8), num(x-s), num(y+s*0.8), paint)
	}
}

// logAxis maps values to pixels on a log scale.
type logAxis struct {
	lo, hi float64 // the values at the ends
	p0, p1 float64 // their pixels
}

func (a logAxis) pos(v float64) float64 {
	l0, l1 := math.Log10(a.lo), math.Log10(a.hi)
	return a.p0 + (math.Log10(v)-l0)/(l1-l0)*(a.p1-a.p0)
}

// ticks125 are the values 1, 2 and 5 times a power of ten, from 10⁻³ to
// 5·10⁸, from which axes take their ends and ticks.
var ticks125 = func() []float64 {
	var t []float64
	for e := -3; e <= 8; e++ {
		for _, m := range []float64{1, 2, 5} {
			t = append(t, m*math.Pow10(e))
		}
	}
	return t
}()

// niceRange is the axis from the largest tick at or below lo to the
// smallest above it at or above hi, and the ticks in between.
func niceRange(lo, hi float64) (float64, float64, []float64) {
	a, b := ticks125[0], ticks125[len(ticks125)-1]
	for _, t := range ticks125 {
		if t <= lo {
			a = t
		}
	}
	for i := len(ticks125) - 1; i >= 0; i-- {
		if t := ticks125[i]; t >= hi && t > a {
			b = t
		}
	}
	var ts []float64
	for _, t := range ticks125 {
		if t >= a && t <= b {
			ts = append(ts, t)
		}
	}
	return a, b, ts
}

// Ratio chart geometry.
const (
	rcLabelX   = 240 // row labels end here
	rcPlotL    = 252
	rcPlotR    = 684
	rcValueX   = 700 // the value column: marker, peer, ratio
	rcTop      = 112
	rcLaneH    = 15
	rcGroupPad = 9
)

// writeRatioChart draws Netron's ratio to each peer, figure by figure.
func writeRatioChart(w io.Writer, rows []ratioChartRow, rounds int, caption string) error {
	// The axis spans every whisker and target, and 1×, with a margin.
	lo, hi := 1.0, 1.0
	for _, r := range rows {
		for _, l := range r.lanes {
			if l.ok {
				lo, hi = min(lo, l.lo), max(hi, l.hi)
			}
			for _, t := range l.targets {
				lo, hi = min(lo, t), max(hi, t)
			}
		}
	}
	a0, a1, ticks := niceRange(lo/1.15, hi*1.15)
	groupH := float64(len(peers)*rcLaneH + 2*rcGroupPad)
	bottom := rcTop + groupH*float64(len(rows))
	height := int(bottom) + 62
	ax := logAxis{lo: a0, hi: a1, p0: rcPlotL, p1: rcPlotR}

	var d svgDoc
	d.begin(height, "Netron's ratio to gRPC, NATS and raw WebSocket per figure")
	d.text(16, 28, "t", "start", "Netron against gRPC, NATS and raw WebSocket")
	how := "Marker: the ratio of the one round."
	if rounds > 1 {
		how = fmt.Sprintf("Marker: median of the %d rounds' ratios; whisker: lowest to highest round.", rounds)
	}
	d.text(16, 48, "s", "start", "Ratio per figure, right of 1× Netron is ahead. "+how)
	d.text(16, 64, "c", "start", fitText(caption, captionRunes))

	// Legend.
	x := 16.0
	for _, p := range peers {
		st := sysStyle[p]
		d.marker(st.shape, x+5, 87, 4.5, st.colour, "#ffffff")
		name := st.name
		if p == sysWS {
			name += " (the transport's ceiling)"
		}
		d.text(x+14, 91, "a", "start", name)
		x += 14 + float64(len([]rune(name)))*5.8 + 24
	}
	d.line(x+4, 80, x+4, 94, "#000000", 2.5, "")
	d.text(x+12, 91, "a", "start", "target (issue #21)")

	// Row backgrounds, grid, 1×.
	for i := range rows {
		if i%2 == 0 {
			d.printf(`<rect x="8" y="%s" width="%d" height="%s" fill="#f3f4f6"/>`+"\n", num(rcTop+groupH*float64(i)), chartWidth-16, num(groupH))
		}
	}
	for _, t := range ticks {
		xt := ax.pos(t)
		if t == 1 {
			continue
		}
		d.line(xt, rcTop, xt, bottom, "#d5d8dc", 1, "")
	}
	x1 := ax.pos(1)
	d.line(x1, rcTop, x1, bottom, "#333333", 1.4, "")
	for _, t := range ticks {
		label := strconv.FormatFloat(t, 'f', -1, 64) + "×"
		d.text(ax.pos(t), rcTop-5, "a", "middle", label)
		d.text(ax.pos(t), bottom+16, "a", "middle", label)
	}
	d.text(x1-10, bottom+36, "a", "end", "◀ the peer ahead")
	d.text(x1+10, bottom+36, "a", "start", "Netron ahead ▶")

	for i, r := range rows {
		top := rcTop + groupH*float64(i)
		mid := top + groupH/2
		d.text(rcLabelX, mid-3, "l", "end", r.label)
		how := "Netron ÷ peer"
		if r.inverted {
			how = "peer ÷ Netron (lower is better)"
		}
		d.text(rcLabelX, mid+12, "h", "end", how)
		for j, l := range r.lanes {
			st := sysStyle[l.peer]
			cy := top + rcGroupPad + rcLaneH*float64(j) + rcLaneH/2
			d.marker(st.shape, rcValueX+4, cy, 3.5, st.colour, "#ffffff")
			d.text(rcValueX+12, cy+4, "h", "start", st.short)
			switch {
			case !l.applies:
				d.text(chartWidth-14, cy+4, "h", "end", "n/a")
				continue
			case !l.ok:
				d.text(chartWidth-14, cy+4, "h", "end", "–")
				continue
			}
			xm := ax.pos(l.med)
			d.printf(`<rect x="%s" y="%s" width="%s" height="8" fill="%s" fill-opacity="0.28"/>`+"\n",
				num(min(x1, xm)), num(cy-4), num(math.Abs(xm-x1)), st.colour)
			xl, xh := ax.pos(l.lo), ax.pos(l.hi)
			d.line(xl, cy, xh, cy, st.colour, 1.6, "")
			d.line(xl, cy-3.5, xl, cy+3.5, st.colour, 1.6, "")
			d.line(xh, cy-3.5, xh, cy+3.5, st.colour, 1.6, "")
			for _, t := range l.targets {
				xt := ax.pos(t)
				d.line(xt, cy-7, xt, cy+7, "#ffffff", 4.5, "")
				d.line(xt, cy-7, xt, cy+7, "#000000", 2.5, "")
			}
			d.marker(st.shape, xm, cy, 4.5, st.colour, "#ffffff")
			d.text(chartWidth-14, cy+4, "v", "end", fmt.Sprintf("%.2f×", l.med))
		}
	}
	d.end()
	_, err := w.Write(d.Bytes())
	return err
}

// captionRunes is about what fits the width of a chart in the caption's
// font.
const captionRunes = 140

// fitText shortens s to n runes, marking the cut with "…".
func fitText(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// Latency chart geometry.
const (
	lcPlotL   = 78
	lcPlotR   = 784
	lcTop     = 84
	lcBottom  = 404
	lcHeight  = 458
	lcDecades = 4 // 0 % to 99.99 %
)

// percentileX is where a percentile (in ppm) goes: -log10(1 - p), so that
// each step toward the tail (90, 99, 99.9, 99.99 %) gets the same room.
func percentileX(ppm int64) float64 {
	x := -math.Log10(float64(1e6-ppm) / 1e6)
	return lcPlotL + x/lcDecades*(lcPlotR-lcPlotL)
}

// formatMicros prints a latency given in µs.
func formatMicros(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(math.Round(v/100)/10, 'f', -1, 64) + " ms"
	case v >= 100:
		return fmt.Sprintf("%.0f µs", v)
	}
	return fmt.Sprintf("%.1f µs", v)
}

// writeLatencyChart draws the percentile curves of the sequential round
// trips.
func writeLatencyChart(w io.Writer, curves []latencyCurve, rounds int, caption string) error {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, c := range curves {
		if c.ok {
			lo, hi = min(lo, slices.Min(c.lo)), max(hi, slices.Max(c.hi))
		}
	}
	if math.IsInf(lo, 0) {
		lo, hi = 1, 1000
	}
	a0, a1, ticks := niceRange(lo, hi)
	ay := logAxis{lo: a0, hi: a1, p0: lcBottom, p1: lcTop}

	var d svgDoc
	d.begin(lcHeight, "Latency of sequential round trips: Netron, gRPC, NATS and raw WebSocket")
	d.text(16, 28, "t", "start", "Sequential RPC: the latency of each round trip")
	how := "Percentile curve of one caller's round trips, one round."
	if rounds > 1 {
		how = fmt.Sprintf("Percentile curve of one caller's round trips: the median of %d rounds at each percentile; band: lowest to highest round.", rounds)
	}
	d.text(16, 48, "s", "start", how)
	d.text(16, 64, "c", "start", fitText(caption, captionRunes))

	// Grid and axes.
	for _, t := range ticks {
		y := ay.pos(t)
		d.line(lcPlotL, y, lcPlotR, y, "#e1e4e8", 1, "")
		label := strconv.FormatFloat(t, 'f', -1, 64) + " µs"
		if t >= 1000 {
			label = strconv.FormatFloat(t/1000, 'f', -1, 64) + " ms"
		}
		d.text(lcPlotL-6, y+4, "a", "end", label)
	}
	for _, p := range []struct {
		ppm   int64
		label string
	}{{0, "0 %"}, {500000, "50 %"}, {900000, "90 %"}, {990000, "99 %"}, {999000, "99.9 %"}, {999900, "99.99 %"}} {
		x := percentileX(p.ppm)
		stroke, extra := "#e1e4e8", ""
		if p.ppm == 500000 || p.ppm == 990000 {
			stroke, extra = "#888888", ` stroke-dasharray="3 3"`
			name := "p50"
			if p.ppm == 990000 {
				name = "p99"
			}
			d.text(x, lcTop-6, "a", "middle", name)
		}
		d.line(x, lcTop, x, lcBottom, stroke, 1, extra)
		anchor := "middle"
		if p.ppm == 999900 {
			anchor = "end"
		}
		d.text(x, lcBottom+16, "a", anchor, p.label)
	}
	d.printf(`<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#bbbbbb"/>`+"\n", lcPlotL, lcTop, lcPlotR-lcPlotL, lcBottom-lcTop)
	d.text((lcPlotL+lcPlotR)/2, lcBottom+38, "a", "middle", "percentile of the round trips (each step to the right: ten times rarer)")
	d.printf(`<text x="0" y="0" class="a" text-anchor="middle" transform="translate(18 %s) rotate(-90)">latency (log scale)</text>`+"\n", num((lcTop+lcBottom)/2))

	// Bands first, then curves, then markers, so that no curve hides
	// another's marker.
	points := func(v []float64) []string {
		var ps []string
		for i, ppm := range latencyPPM {
			ps = append(ps, num(percentileX(ppm))+","+num(ay.pos(v[i])))
		}
		return ps
	}
	for _, c := range curves {
		if !c.ok || c.rounds < 2 {
			continue
		}
		up, down := points(c.hi), points(c.lo)
		slices.Reverse(down)
		d.printf(`<polygon points="%s" fill="%s" fill-opacity="0.13" stroke="none"/>`+"\n", strings.Join(append(up, down...), " "), sysStyle[c.sys].colour)
	}
	for i := len(curves) - 1; i >= 0; i-- { // Netron last: on top
		c := curves[i]
		if !c.ok {
			continue
		}
		st := sysStyle[c.sys]
		dash := ""
		if st.dash != "" {
			dash = fmt.Sprintf(` stroke-dasharray="%s"`, st.dash)
		}
		d.printf(`<polyline points="%s" fill="none" stroke="%s" stroke-width="%s" stroke-linejoin="round" stroke-linecap="round"%s/>`+"\n",
			strings.Join(points(c.med), " "), st.colour, num(st.width), dash)
	}
	for _, c := range curves {
		if !c.ok {
			continue
		}
		st := sysStyle[c.sys]
		d.marker(st.shape, percentileX(500000), ay.pos(c.p50), 4.5, st.colour, "#ffffff")
		d.marker(st.shape, percentileX(990000), ay.pos(c.p99), 4.5, st.colour, "#ffffff")
	}

	// Legend, top left of the plot, where the curves are not.
	lx, ly := float64(lcPlotL+14), float64(lcTop+12)
	const p50X, p99X, ratioX = 182, 250, 322
	d.printf(`<rect x="%s" y="%s" width="%d" height="%s" fill="#ffffff" fill-opacity="0.92" stroke="#cccccc"/>`+"\n",
		num(lx-8), num(ly-6), ratioX+18, num(float64(len(curves))*18+26))
	d.text(lx+p50X, ly+10, "h", "end", "p50")
	d.text(lx+p99X, ly+10, "h", "end", "p99")
	d.text(lx+ratioX, ly+10, "h", "end", "p99 ÷ p50")
	for i, c := range curves {
		st := sysStyle[c.sys]
		y := ly + 28 + 18*float64(i)
		dash := ""
		if st.dash != "" {
			dash = fmt.Sprintf(` stroke-dasharray="%s"`, st.dash)
		}
		d.line(lx, y-4, lx+30, y-4, st.colour, st.width, dash+` stroke-linecap="round"`)
		d.marker(st.shape, lx+15, y-4, 3.5, st.colour, "#ffffff")
		d.text(lx+40, y, "a", "start", st.name)
		if !c.ok {
			d.text(lx+p50X, y, "a", "end", "not measured")
			continue
		}
		d.text(lx+p50X, y, "a", "end", formatMicros(c.p50))
		d.text(lx+p99X, y, "a", "end", formatMicros(c.p99))
		d.text(lx+ratioX, y, "a", "end", fmt.Sprintf("%.1f×", c.p99overP50))
	}
	d.end()
	_, err := w.Write(d.Bytes())
	return err
}
