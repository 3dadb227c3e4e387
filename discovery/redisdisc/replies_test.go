package redisdisc

import (
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
)

// The heartbeat's reply: the well-formed one parses; truncated, oversized
// and malformed ones are errors, never panics or garbage.
func TestParseBeat(t *testing.T) {
	good := []any{int64(1000), []any{"m"}, []any{"l"}, []any{"e1", "e2"}, int64(1500), int64(7), int64(0), "n1"}
	r, err := parseBeat(good)
	if err != nil || r.now != 1000 || r.earliest != 1500 || r.earliestID != "n1" || r.gen != 7 || r.grace != 0 ||
		strings.Join(r.missing, ",") != "m" || strings.Join(r.lost, ",") != "l" || strings.Join(r.expired, ",") != "e1,e2" {
		t.Fatalf("parseBeat(good) = %+v, %v", r, err)
	}
	none := []any{int64(1000), []any{}, []any{}, []any{}, int64(-1), int64(0), int64(0), ""}
	if r, err := parseBeat(none); err != nil || r.earliest != -1 || len(r.expired) != 0 {
		t.Fatalf("parseBeat(none) = %+v, %v", r, err)
	}
	with := func(i int, v any) []any {
		c := append([]any(nil), good...)
		c[i] = v
		return c
	}
	for name, res := range map[string][]any{
		"nil":               nil,
		"empty":             {},
		"truncated":         good[:7],
		"truncated to one":  good[:1],
		"oversized":         append(append([]any(nil), good...), int64(1)),
		"old seven":         append([]any(nil), good[:7]...),
		"now a string":      with(0, "1000"),
		"earliest nil":      with(4, nil),
		"earliest below -1": with(4, int64(-2)),
		"gen negative":      with(5, int64(-1)),
		"grace a list":      with(6, []any{}),
		"grace negative":    with(6, int64(-5)),
		"id a number":       with(7, int64(3)),
		"id nil":            with(7, nil),
	} {
		if r, err := parseBeat(res); err == nil {
			t.Errorf("parseBeat(%s) = %+v, want an error", name, r)
		}
	}
	// Members of the lists that are not strings are dropped, not fatal.
	if r, err := parseBeat(with(3, []any{"a", int64(1), nil, []any{}, "b"})); err != nil || strings.Join(r.expired, ",") != "a,b" {
		t.Fatalf("mixed list: %+v %v", r, err)
	}
	if r, err := parseBeat(with(1, "not a list")); err != nil || len(r.missing) != 0 {
		t.Fatalf("missing not a list: %+v %v", r, err)
	}
}

// The snapshot's reply: entries alive are kept, dead and malformed ones
// skipped (malformed reported), the shape checked.
func TestParseSnapshot(t *testing.T) {
	ok := `{"v":1,"op":"join","id":"n1","ttl":1000,"hb":300,"inc":1,"seq":1}`
	res := func(nodes, alive []any) []any {
		return []any{int64(10_000), int64(5), "1-0", nodes, alive, int64(0)}
	}
	now := time.Unix(100, 0)
	s, bad, err := parseSnapshot(res(
		[]any{"n1", ok, "n2", "garbage", "n3", ok, "n4", strings.Replace(ok, "join", "leave", 1), "dead", ok},
		[]any{"n1", "10500", "n2", "10500", "n3", "10500", "n4", "10500", "dead", "9000", "orphan", "10500", "n1", "10900"},
	), now)
	if err != nil || s.gen != 5 || s.pos != "1-0" || s.redisNow != 10_000 {
		t.Fatalf("parseSnapshot: %+v %v", s, err)
	}
	if len(s.nodes) != 1 || s.nodes[0].ID != "n1" || !s.present["n1"] {
		t.Fatalf("nodes %+v: want n1 only (n2 garbage, n3 stored under another id, n4 a leave, dead past its deadline, orphan without entry)", s.nodes)
	}
	if want := now.Add(-500 * time.Millisecond); !s.seen[0].Equal(want) {
		t.Fatalf("n1 seen %v, want %v (deadline 10500 - ttl 1000 = beat 9500, now 10000)", s.seen[0], want)
	}
	if len(bad) != 3 {
		t.Fatalf("malformed entries reported: %+v, want n2, n3, n4", bad)
	}
	// During a grace period a passed deadline means nothing yet.
	grace := res([]any{"dead", strings.Replace(ok, "n1", "dead", 1)}, []any{"dead", "9000"})
	grace[5] = int64(20_000)
	if s, _, err := parseSnapshot(grace, now); err != nil || len(s.nodes) != 1 {
		t.Fatalf("grace: %+v %v", s, err)
	}
	if s, _, err := parseSnapshot([]any{int64(1), int64(0), nil, nil, nil, nil}, now); err != nil || s.pos != "0-0" || len(s.nodes) != 0 {
		t.Fatalf("empty: %+v %v", s, err)
	}
	for name, r := range map[string][]any{
		"nil":       nil,
		"truncated": res(nil, nil)[:5],
		"oversized": append(res(nil, nil), int64(1)),
	} {
		if _, _, err := parseSnapshot(r, now); err == nil {
			t.Errorf("parseSnapshot(%s): want an error", name)
		}
	}
	// Odd lists, wrong types, unparsable scores: skipped, no panic.
	for _, r := range [][]any{
		res([]any{"n1"}, []any{"n1"}),
		res([]any{"n1", int64(3)}, []any{"n1", "10500"}),
		res([]any{int64(1), ok}, []any{int64(1), "x"}),
		res([]any{"n1", ok}, []any{"n1", "not a number"}),
		res([]any{"n1", ok}, []any{"n1", []any{}}),
		{"now", "gen", int64(3), "nodes", "alive", "grace"},
	} {
		if s, _, err := parseSnapshot(r, now); err != nil || len(s.nodes) != 0 {
			t.Errorf("parseSnapshot(%v) = %+v %v, want no node", r, s.nodes, err)
		}
	}
}

// The announcement's reply: "ok" with a number, or "taken" with the
// holder's entry and three numbers; anything else is an error.
func TestParsePut(t *testing.T) {
	holder := `{"v":1,"op":"join","id":"n1","addr":"ws://h:1/","ttl":3000,"hb":1000,"inc":1,"seq":1}`
	if taken, err := parsePut([]any{"ok", int64(3)}); taken != nil || err != nil {
		t.Fatalf("ok: %v %v", taken, err)
	}
	taken, err := parsePut([]any{"taken", holder, int64(2500), int64(1000), int64(12345)})
	if err != nil || taken == nil || taken.holder.Address != "ws://h:1/" || taken.hb != time.Second ||
		taken.left != 2500*time.Millisecond || taken.silentIn != time.Second || taken.last != 12345 {
		t.Fatalf("taken: %+v %v", taken, err)
	}
	// A holder whose entry does not decode is still a holder.
	if taken, err := parsePut([]any{"taken", "garbage", int64(1), int64(1), int64(1)}); err != nil || taken == nil || taken.holder.Address != "" {
		t.Fatalf("taken, bad entry: %+v %v", taken, err)
	}
	for name, res := range map[string][]any{
		"nil":              nil,
		"empty":            {},
		"ok truncated":     {"ok"},
		"ok oversized":     {"ok", int64(1), int64(2)},
		"ok not a number":  {"ok", "3"},
		"taken truncated":  {"taken", holder, int64(1), int64(1)},
		"taken oversized":  {"taken", holder, int64(1), int64(1), int64(1), int64(1)},
		"taken bad types":  {"taken", int64(1), int64(1), int64(1), int64(1)},
		"taken negative":   {"taken", holder, int64(-1), int64(1), int64(1)},
		"taken huge wait":  {"taken", holder, int64(1), int64(1) << 50, int64(1)},
		"unknown":          {"maybe", int64(1)},
		"status not a str": {int64(1), int64(1)},
	} {
		if taken, err := parsePut(res); err == nil {
			t.Errorf("parsePut(%s) = %+v, want an error", name, taken)
		}
	}
}

// The incarnation's reply: {seconds, microseconds, count} makes Unix
// nanoseconds whose last three digits are the count; anything else, an
// incarnation that would not fit in an int64 included, is an error.
func TestParseInc(t *testing.T) {
	inc, err := parseInc([]any{int64(1_700_000_000), int64(123_456), int64(4_321)})
	if err != nil || inc != 1_700_000_000_123_456_321 {
		t.Fatalf("parseInc = %d, %v", inc, err)
	}
	if inc, err := parseInc([]any{int64(1), int64(0), int64(1)}); err != nil || inc != 1_000_000_001 {
		t.Fatalf("smallest: %d, %v", inc, err)
	}
	for name, res := range map[string][]any{
		"nil":              nil,
		"empty":            {},
		"truncated":        {int64(1_700_000_000), int64(1)},
		"oversized":        {int64(1_700_000_000), int64(1), int64(1), int64(1)},
		"strings":          {"1700000000", "1", "1"},
		"zero seconds":     {int64(0), int64(1), int64(1)},
		"negative seconds": {int64(-1), int64(1), int64(1)},
		"seconds overflow": {int64(9_223_372_037), int64(0), int64(1)},
		"microseconds 1e6": {int64(1_700_000_000), int64(1_000_000), int64(1)},
		"negative micros":  {int64(1_700_000_000), int64(-1), int64(1)},
		"zero count":       {int64(1_700_000_000), int64(1), int64(0)},
		"count a list":     {int64(1_700_000_000), int64(1), []any{}},
		"nested":           {[]any{int64(1)}, int64(1), int64(1)},
	} {
		if inc, err := parseInc(res); err == nil {
			t.Errorf("parseInc(%s) = %d, want an error", name, inc)
		}
	}
}

// The stream unmarshaller never fails: a bad entry becomes a message
// marked malformed, which the reader logs and skips.
func TestUnmarshaller(t *testing.T) {
	m, err := unmarshaller{}.Unmarshal(map[string]any{redisstream.UUIDHeaderKey: "u", "payload": "p", genKey: "7"})
	if err != nil || m.UUID != "u" || string(m.Payload) != "p" || m.Metadata.Get(genKey) != "7" || m.Metadata.Get(malformedKey) != "" {
		t.Fatalf("good entry: %+v %v", m, err)
	}
	for _, v := range []map[string]any{
		nil,
		{},
		{"payload": int64(3)},
		{"payload": nil, genKey: int64(2)},
		{"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "6", "g": "7", "h": "8", "i": "9"},
	} {
		m, err := unmarshaller{}.Unmarshal(v)
		if err != nil || m.Metadata.Get(malformedKey) == "" {
			t.Errorf("Unmarshal(%v) = %+v, %v: want a message marked malformed", v, m, err)
		}
	}
}

// While Redis fails, the next attempt is the backoff's, but never later
// than a margin before the deadline of the instance's nodes, and from
// there every retryMin until that deadline; past it, the backoff again.
func TestRetryAt(t *testing.T) {
	cfg := defaultConfig()
	cfg.heartbeat, cfg.ttl = time.Second, 3*time.Second
	if err := cfg.finish(); err != nil {
		t.Fatal(err)
	}
	d := &Discovery{cfg: cfg}
	t0 := time.Unix(1000, 0) // last successful heartbeat; deadline t0+3s, margin 500 ms
	at := func(sinceBeat, backoff time.Duration) time.Duration {
		return d.retryAt(t0.Add(sinceBeat), backoff, t0).Sub(t0)
	}
	for _, tc := range []struct {
		since, backoff, want time.Duration
	}{
		{time.Second, 400 * time.Millisecond, 1400 * time.Millisecond}, // well before: the backoff
		{2 * time.Second, time.Second, 2500 * time.Millisecond},        // would overshoot: deadline - margin
		{2400 * time.Millisecond, 1200 * time.Millisecond, 2500 * time.Millisecond},
		{2500 * time.Millisecond, time.Second, 2550 * time.Millisecond}, // in the margin: every retryMin
		{2900 * time.Millisecond, time.Second, 2950 * time.Millisecond},
		{2900 * time.Millisecond, 10 * time.Millisecond, 2910 * time.Millisecond}, // a shorter backoff stays
		{3100 * time.Millisecond, time.Second, 4100 * time.Millisecond},           // past the deadline: the backoff
	} {
		if got := at(tc.since, tc.backoff); got != tc.want {
			t.Errorf("%v after the last heartbeat, backoff %v: retry at %v, want %v", tc.since, tc.backoff, got, tc.want)
		}
	}
}
