package redisdisc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/netron-go/netron/discovery"
)

// entryVersion is the schema version this package writes and reads.
const entryVersion = 1

// maxEntrySize bounds an encoded entry. decodeEntry rejects larger input
// before parsing it.
const maxEntrySize = 64 << 10

// Limits on the timing an entry may announce.
const (
	minEntryTTL = time.Millisecond
	maxEntryTTL = 24 * time.Hour
)

// entryOp says what an entry announces.
type entryOp string

// The operations.
const (
	opJoin   entryOp = "join"   // first announcement of a node by an instance, or after Redis lost it
	opUpdate entryOp = "update" // re-registration with new details
	opLeave  entryOp = "leave"  // deregistration
)

// entry is one presence announcement. It is the JSON payload of a stream
// entry on {prefix}:events and the value of a field of the {prefix}:nodes
// hash, for example:
//
//	{"v":1,"op":"join","id":"node-1","addr":"10.0.0.5:9000",
//	 "svcs":[{"name":"calculator","version":"1.2.0"}],"meta":{"zone":"a"},
//	 "ttl":15000,"hb":5000,"inc":1732680000123456789,"seq":1}
type entry struct {
	// Op is what happened.
	Op entryOp
	// Node is the node's details; for opLeave only Node.ID is required.
	// Node.LastSeen is not part of an entry.
	Node discovery.NodeInfo
	// TTL is how long receivers keep the node active without hearing from
	// it; each node announces its own.
	TTL time.Duration
	// Heartbeat is the interval of the announcing instance's heartbeats
	// (0: not announced; then a third of the TTL is assumed). Another
	// instance may take the node id over once the node has been silent
	// for 1.5 of them.
	Heartbeat time.Duration
	// Rev orders the entries of one node id.
	Rev discovery.Revision
}

// wireEntry is the JSON form of entry.
type wireEntry struct {
	V    int                     `json:"v"`
	Op   entryOp                 `json:"op"`
	ID   string                  `json:"id"`
	Addr string                  `json:"addr,omitempty"`
	Svcs []discovery.ServiceInfo `json:"svcs,omitempty"`
	Meta map[string]string       `json:"meta,omitempty"`
	TTL  int64                   `json:"ttl"`
	HB   int64                   `json:"hb,omitempty"`
	Inc  int64                   `json:"inc"`
	Seq  uint64                  `json:"seq"`
}

// encodeEntry returns the JSON form of e. It validates e as decodeEntry
// would, so that what this package writes it can always read back.
func encodeEntry(e entry) ([]byte, error) {
	w := wireEntry{
		V:    entryVersion,
		Op:   e.Op,
		ID:   e.Node.ID,
		Addr: e.Node.Address,
		Svcs: e.Node.Services,
		Meta: e.Node.Metadata,
		TTL:  e.TTL.Milliseconds(),
		HB:   e.Heartbeat.Milliseconds(),
		Inc:  e.Rev.Incarnation,
		Seq:  e.Rev.Seq,
	}
	if err := w.validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformedEntry, err)
	}
	if len(b) > maxEntrySize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", errMalformedEntry, len(b), maxEntrySize)
	}
	return b, nil
}

// decodeEntry parses and validates one entry. It is strict: it rejects input
// over maxEntrySize, invalid JSON, unknown fields, trailing data, a schema
// version other than entryVersion, an unknown op, a node that would not pass
// discovery.ValidateNode (a leave needs only the id), a TTL outside 1 ms–24 h,
// a heartbeat that is negative or not below the TTL, and a zero revision. Every error wraps errMalformedEntry. It never panics,
// whatever the input (see FuzzDecodeEntry).
func decodeEntry(b []byte) (entry, error) {
	if len(b) == 0 {
		return entry{}, fmt.Errorf("%w: empty", errMalformedEntry)
	}
	if len(b) > maxEntrySize {
		return entry{}, fmt.Errorf("%w: %d bytes, at most %d", errMalformedEntry, len(b), maxEntrySize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var w wireEntry
	if err := dec.Decode(&w); err != nil {
		return entry{}, fmt.Errorf("%w: %w", errMalformedEntry, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return entry{}, fmt.Errorf("%w: trailing data", errMalformedEntry)
	}
	if err := w.validate(); err != nil {
		return entry{}, err
	}
	e := entry{
		Op:        w.Op,
		TTL:       time.Duration(w.TTL) * time.Millisecond,
		Heartbeat: time.Duration(w.HB) * time.Millisecond,
		Rev:       discovery.Revision{Incarnation: w.Inc, Seq: w.Seq},
		Node: discovery.NodeInfo{
			ID:       w.ID,
			Address:  w.Addr,
			Services: w.Svcs,
			Metadata: w.Meta,
		},
	}
	if e.Node.Services == nil {
		e.Node.Services = []discovery.ServiceInfo{}
	}
	if len(e.Node.Metadata) == 0 {
		e.Node.Metadata = nil
	}
	return e, nil
}

func (w *wireEntry) validate() error {
	if w.V != entryVersion {
		return fmt.Errorf("%w: schema version %d, want %d", errMalformedEntry, w.V, entryVersion)
	}
	switch w.Op {
	case opJoin, opUpdate:
		n := discovery.NodeInfo{ID: w.ID, Address: w.Addr, Services: w.Svcs, Metadata: w.Meta}
		if err := discovery.ValidateNode(n); err != nil {
			return fmt.Errorf("%w: %w", errMalformedEntry, err)
		}
	case opLeave:
		if err := discovery.ValidateNode(discovery.NodeInfo{ID: w.ID}); err != nil {
			return fmt.Errorf("%w: %w", errMalformedEntry, err)
		}
	default:
		return fmt.Errorf("%w: unknown op %q", errMalformedEntry, w.Op)
	}
	if ttl := time.Duration(w.TTL) * time.Millisecond; w.TTL <= 0 || w.TTL > maxEntryTTL.Milliseconds() || ttl < minEntryTTL {
		return fmt.Errorf("%w: ttl %d ms outside 1 ms..24 h", errMalformedEntry, w.TTL)
	}
	if w.HB < 0 || w.HB >= w.TTL {
		return fmt.Errorf("%w: heartbeat %d ms not below the ttl %d ms", errMalformedEntry, w.HB, w.TTL)
	}
	if w.Inc <= 0 || w.Seq == 0 {
		return fmt.Errorf("%w: missing revision (inc %d, seq %d)", errMalformedEntry, w.Inc, w.Seq)
	}
	return nil
}
