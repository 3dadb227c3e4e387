package obs

import (
	"bytes"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestNamesBounded(t *testing.T) {
	n := NewNames(2)
	if n.Of("a") != "a" || n.Of("b") != "b" || n.Of("a") != "a" {
		t.Fatal("the first names keep their value")
	}
	if got := n.Of("c"); got != Other {
		t.Fatalf("third name = %q, want %q", got, Other)
	}
}

// A node keeps at most maxNames call series per side, however many names
// its peers' definitions carry.
func TestCallSeriesBounded(t *testing.T) {
	m := NewMetrics(nil, 3)
	for i := range 100 {
		m.Call(Client, "svc", strings.Repeat("m", i+1)).Start()
	}
	n := 0
	m.calls.Range(func(_, _ any) bool { n++; return true })
	if n != 4 { // 3 names and other
		t.Fatalf("%d call series, want 4", n)
	}
	if c := m.Call(Client, "svc", "zzz"); c.labels[1] != Other || c.labels[2] != Other {
		t.Fatalf("labels past the bound %v", c.labels)
	}
}

func TestCode(t *testing.T) {
	for code, want := range map[int]string{404: "404", 429: "429", 503: "503", 7: "error", 99999: "error"} {
		if got := Code(code); got != want {
			t.Errorf("Code(%d) = %q, want %q", code, got, want)
		}
	}
}

func TestTraceparentRoundTrip(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	b := AppendTraceparent(nil, sc)
	if len(b) != TraceparentSize || b[0] != 0xc7 || b[1] != TraceparentLen || b[2] != ExtTraceparent {
		t.Fatalf("header % x", b[:3])
	}
	// The W3C specification's example.
	if want := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"; string(b[3:]) != want {
		t.Fatalf("traceparent %s, want %s", b[3:], want)
	}
	got, ok := ParseTraceparent(b[3:])
	if !ok || got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() || !got.IsSampled() || !got.IsRemote() {
		t.Fatalf("parsed %v %v", got, ok)
	}
}

func TestTraceparentMalformed(t *testing.T) {
	good := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, s := range []string{
		"",
		good[:54],        // truncated
		good + "0",       // too long
		"01" + good[2:],  // another version
		"00_" + good[3:], // separator
		good[:3] + strings.Repeat("0", 32) + good[35:],  // zero trace id
		good[:36] + strings.Repeat("0", 16) + good[52:], // zero span id
		good[:3] + "xy" + good[5:],                      // not hex
		good[:53] + "zz",                                // flags not hex
	} {
		if sc, ok := ParseTraceparent([]byte(s)); ok {
			t.Errorf("ParseTraceparent(%q) = %v, ok", s, sc)
		}
	}
}

// FuzzParseTraceparent: bytes from a peer never panic the parser, and
// what it accepts encodes back to the same text (up to hex case and the
// flags it keeps).
func FuzzParseTraceparent(f *testing.F) {
	f.Add([]byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
	f.Add([]byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"))
	f.Add([]byte("00-00000000000000000000000000000000-00f067aa0ba902b7-01"))
	f.Add([]byte("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		sc, ok := ParseTraceparent(b)
		if !ok {
			return
		}
		out := AppendTraceparent(nil, sc)[3:]
		if !bytes.EqualFold(out[:53], b[:53]) {
			t.Fatalf("%s re-encodes as %s", b, out)
		}
	})
}

// BenchmarkCallMetrics measures what the metrics add to one round trip:
// the client's and the server's series looked up, started and ended (see
// docs/benchmarks.md, "Observability"; the server finds its series on the
// method instead of looking it up, so this is an upper bound).
func BenchmarkCallMetrics(b *testing.B) {
	m := NewMetrics(nil, 0)
	b.ReportAllocs()
	for b.Loop() {
		for _, side := range []Side{Client, Server} {
			c := m.Call(side, "calculator@1.0.0", "add")
			start := c.Start()
			c.End(m, start, 40, 12, "ok")
		}
	}
}
