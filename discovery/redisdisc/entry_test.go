package redisdisc_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/redisdisc"
)

func sampleEntry() redisdisc.Entry {
	return redisdisc.Entry{
		Op: redisdisc.OpJoin,
		Node: discovery.NodeInfo{
			ID:       "node-1",
			Address:  "10.0.0.5:9000",
			Services: []discovery.ServiceInfo{{Name: "calculator", Version: "1.2.0"}},
			Metadata: map[string]string{"zone": "a"},
		},
		TTL:       15 * time.Second,
		Heartbeat: 5 * time.Second,
		Rev:       discovery.Revision{Incarnation: 1732680000123456789, Seq: 1},
	}
}

func TestEntryRoundTrip(t *testing.T) {
	for _, e := range []redisdisc.Entry{
		sampleEntry(),
		{Op: redisdisc.OpUpdate, Node: discovery.NodeInfo{ID: "x", Services: []discovery.ServiceInfo{}}, TTL: time.Millisecond, Rev: discovery.Revision{Incarnation: 1, Seq: 9}},
		{Op: redisdisc.OpLeave, Node: discovery.NodeInfo{ID: "x", Services: []discovery.ServiceInfo{}}, TTL: time.Hour, Rev: discovery.Revision{Incarnation: 2, Seq: 3}},
	} {
		b, err := redisdisc.EncodeEntry(e)
		if err != nil {
			t.Fatalf("EncodeEntry(%+v): %v", e, err)
		}
		got, err := redisdisc.DecodeEntry(b)
		if err != nil {
			t.Fatalf("DecodeEntry(%s): %v", b, err)
		}
		if got.Op != e.Op || got.TTL != e.TTL || got.Heartbeat != e.Heartbeat || got.Rev != e.Rev || !got.Node.SameDetails(e.Node) {
			t.Fatalf("round trip: got %+v, want %+v", got, e)
		}
	}
}

func TestEntryWireFormat(t *testing.T) {
	b, err := redisdisc.EncodeEntry(sampleEntry())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"op":"join","id":"node-1","addr":"10.0.0.5:9000","svcs":[{"name":"calculator","version":"1.2.0"}],"meta":{"zone":"a"},"ttl":15000,"hb":5000,"inc":1732680000123456789,"seq":1}`
	if string(b) != want {
		t.Fatalf("wire form:\n got %s\nwant %s", b, want)
	}
}

func TestDecodeEntryRejects(t *testing.T) {
	valid := `"op":"join","id":"x","ttl":1000,"inc":1,"seq":1`
	for _, in := range []string{
		``,
		`null`,
		`{}`,
		`[]`,
		`"str"`,
		`{"v":1,` + valid,
		`{"v":2,` + valid + `}`,
		`{"v":"1",` + valid + `}`,
		`{"v":1,` + valid + `,"zzz":1}`,
		`{"v":1,` + valid + `} {}`,
		`{"v":1,` + valid + `}x`,
		`{"v":1,"op":"join","id":"","ttl":1000,"inc":1,"seq":1}`,
		`{"v":1,"op":"leave","id":"","ttl":1000,"inc":1,"seq":1}`,
		`{"v":1,"op":"nope","id":"x","ttl":1000,"inc":1,"seq":1}`,
		`{"v":1,"op":"join","id":"x","ttl":0,"inc":1,"seq":1}`,
		`{"v":1,"op":"join","id":"x","ttl":86400001,"inc":1,"seq":1}`,
		`{"v":1,"op":"join","id":"x","ttl":1000,"inc":0,"seq":1}`,
		`{"v":1,"op":"join","id":"x","ttl":1000,"inc":1,"seq":0}`,
		`{"v":1,"op":"join","id":"x","ttl":1000,"inc":1,"seq":-1}`,
		`{"v":1,"op":"join","id":"x","ttl":1e400,"inc":1,"seq":1}`,
		`{"v":1,"op":"join","id":"x","ttl":1000,"hb":1000,"inc":1,"seq":1}`,
		`{"v":1,"op":"join","id":"x","ttl":1000,"hb":-1,"inc":1,"seq":1}`,
		`{"v":1,"op":"join","id":"x","ttl":1000,"hb":"5","inc":1,"seq":1}`,
		`{"v":1,"op":"join","id":"x","svcs":[{"name":"","version":"1.0.0"}],"ttl":1000,"inc":1,"seq":1}`,
		`{"v":1,"op":"join","id":"x","svcs":[{"name":"a","version":"x"}],"ttl":1000,"inc":1,"seq":1}`,
		`{"v":1,"op":"join","id":"x","svcs":[{"name":"a","version":"1.0.0","x":1}],"ttl":1000,"inc":1,"seq":1}`,
		`{"v":1,"op":"join","id":"x","meta":{"":"v"},"ttl":1000,"inc":1,"seq":1}`,
		`{"v":1,"op":"join","id":"\xff","ttl":1000,"inc":1,"seq":1}`,
		`{"v":1,"op":"join","id":"` + strings.Repeat("x", 300) + `","ttl":1000,"inc":1,"seq":1}`,
		`{"v":1,"op":"join","id":"x","addr":"` + strings.Repeat("x", 70<<10) + `","ttl":1000,"inc":1,"seq":1}`,
	} {
		if _, err := redisdisc.DecodeEntry([]byte(in)); !errors.Is(err, redisdisc.ErrMalformedEntry) {
			short := in
			if len(short) > 80 {
				short = short[:80] + "…"
			}
			t.Errorf("DecodeEntry(%q): err = %v, want ErrMalformedEntry", short, err)
		}
	}
}

func TestEncodeEntryValidates(t *testing.T) {
	e := sampleEntry()
	e.Node.ID = ""
	if _, err := redisdisc.EncodeEntry(e); !errors.Is(err, redisdisc.ErrMalformedEntry) {
		t.Fatalf("EncodeEntry of an invalid node: %v", err)
	}
	e = sampleEntry()
	e.Rev = discovery.Revision{}
	if _, err := redisdisc.EncodeEntry(e); !errors.Is(err, redisdisc.ErrMalformedEntry) {
		t.Fatalf("EncodeEntry without a revision: %v", err)
	}
}

// FuzzDecodeEntry checks that DecodeEntry never panics, that everything it
// accepts re-encodes, and that the re-encoding decodes to the same entry.
func FuzzDecodeEntry(f *testing.F) {
	if b, err := redisdisc.EncodeEntry(sampleEntry()); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"op":"leave","id":"n","ttl":1,"inc":1,"seq":1}`))
	f.Add([]byte(`{"v":1,"op":"join","id":"n","svcs":[{"name":"a","version":"1.0.0-rc.1+b"}],"ttl":1,"inc":1,"seq":1}`))
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte("\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := redisdisc.DecodeEntry(b)
		if err != nil {
			if !errors.Is(err, redisdisc.ErrMalformedEntry) {
				t.Fatalf("error does not wrap ErrMalformedEntry: %v", err)
			}
			return
		}
		again, err := redisdisc.EncodeEntry(e)
		if err != nil {
			t.Fatalf("accepted entry does not re-encode: %v (%+v)", err, e)
		}
		e2, err := redisdisc.DecodeEntry(again)
		if err != nil {
			t.Fatalf("re-encoded entry does not decode: %v (%s)", err, again)
		}
		if e2.Op != e.Op || e2.TTL != e.TTL || e2.Rev != e.Rev || !e2.Node.SameDetails(e.Node) {
			t.Fatalf("round trip changed the entry: %+v vs %+v", e, e2)
		}
	})
}

// TestDecodeEntryDocumented decodes the entry of the package doc, and
// rejects one without a TTL (it was ExampleDecodeEntry while the codec was
// exported).
func TestDecodeEntryDocumented(t *testing.T) {
	e, err := redisdisc.DecodeEntry([]byte(`{"v":1,"op":"join","id":"node-1","addr":"10.0.0.5:9000",` +
		`"svcs":[{"name":"calculator","version":"1.2.0"}],"ttl":15000,"inc":1732680000123456789,"seq":1}`))
	if err != nil || e.Op != redisdisc.OpJoin || e.Node.ID != "node-1" || e.Node.Address != "10.0.0.5:9000" ||
		len(e.Node.Services) != 1 || e.Node.Services[0] != (discovery.ServiceInfo{Name: "calculator", Version: "1.2.0"}) ||
		e.TTL != 15*time.Second || e.Rev.Incarnation != 1732680000123456789 || e.Rev.Seq != 1 {
		t.Fatalf("%+v, %v", e, err)
	}
	_, err = redisdisc.DecodeEntry([]byte(`{"v":1,"op":"join","id":"node-1"}`))
	if !errors.Is(err, redisdisc.ErrMalformedEntry) || err.Error() != "redisdisc: malformed entry: ttl 0 ms outside 1 ms..24 h" {
		t.Fatalf("no ttl: %v", err)
	}
}
