package redisdisc

import (
	"strconv"
	"time"
)

// Script hashes, for fault injection in tests (EVALSHA's first argument).
var (
	BeatScriptSHA     = beatScript.Hash()
	PutScriptSHA      = putScript.Hash()
	DelScriptSHA      = delScript.Hash()
	SnapshotScriptSHA = snapshotScript.Hash()
)

// BeatScript is the heartbeat script, for BenchmarkBeatScript.
var BeatScript = beatScript

// Beats returns the instance's successful heartbeats (regular, probes and
// retries).
func (d *Discovery) Beats() int64 { return d.beats.Load() }

// Probes returns the expiry probes the instance ran, and those it did not
// run because the node had already left.
func (d *Discovery) Probes() (run, saved int64) { return d.probes.Load(), d.probesSaved.Load() }

// NextRegularBeat returns when the instance's next regular heartbeat is
// due (zero before the first snapshot).
func (d *Discovery) NextRegularBeat() time.Time {
	ns := d.nextRegular.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// AppliedGen returns the number of the last change the instance applied.
func (d *Discovery) AppliedGen() int64 { return d.lastGen.Load() }

// Heartbeat returns the instance's heartbeat interval.
func (d *Discovery) Heartbeat() time.Duration { return d.cfg.heartbeat }

// Incarnation returns the instance's incarnation, as its scripts send it.
func (d *Discovery) Incarnation() string { return strconv.FormatInt(d.inc.Load(), 10) }

// The entry codec, for entry_test.go, FuzzDecodeEntry and the tests that
// read or write Redis directly; users never see it.
type (
	Entry   = entry
	EntryOp = entryOp
)

const (
	EntryVersion = entryVersion
	MaxEntrySize = maxEntrySize
	OpJoin       = opJoin
	OpUpdate     = opUpdate
	OpLeave      = opLeave
)

var (
	EncodeEntry       = encodeEntry
	DecodeEntry       = decodeEntry
	ErrMalformedEntry = errMalformedEntry
)

// Keys returns the Redis keys the instance uses: the stream, the hash of
// entries, the sorted set of deadlines and the hash of counters. For the
// default prefix they are {netron:discovery}:events, …:nodes, …:alive and
// …:meta.
func (d *Discovery) Keys() (events, nodes, alive, meta string) {
	return d.events, d.nodes, d.alive, d.meta
}
