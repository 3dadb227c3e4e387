// Package redisdisc is the Redis backend of package discovery: nodes in
// different processes and hosts find each other through one Redis server
// (Redis 6.2 or later; tested on 7.0), using Redis Streams via
// watermill-redisstream and go-redis.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", Password: pw})
//	d, err := redisdisc.New(rdb, redisdisc.WithPrefix("netron:discovery"))
//	...
//	defer d.Close()               // deregisters, stops; never closes rdb
//	err = d.Register(ctx, discovery.NodeInfo{ID: id, Address: addr, Services: svcs})
//	nodes, err := d.Find(ctx, "calculator", "^1")
//
// # Keys
//
// Everything lives under a prefix (WithPrefix, default "netron:discovery"):
//
//	<prefix>:events  stream: one entry per change (join, update, leave)
//	<prefix>:nodes   hash: node id -> its latest entry (the snapshot)
//	<prefix>:alive   sorted set: node id -> time of its last heartbeat (ms, Redis clock)
//
// An entry is a small JSON document with a schema version, the node's
// details, its TTL and a revision (see Entry). Stream entries are written by
// watermill-redisstream's Publisher in watermill's format, so any watermill
// subscriber can consume the announcements too.
//
// # How it works
//
// Changes go on the stream; liveness does not. Register writes the entry to
// the hash, marks the node alive in the sorted set (one Lua script) and
// appends the entry to the stream. Every heartbeat, one Lua script refreshes
// the instance's own nodes in the sorted set and returns the whole set with
// the Redis time: that single EVALSHA is the instance's only command per
// heartbeat besides the stream reader's idle XREAD (see docs/bench-discovery.md
// for measured counts). The original Netron published an update on every
// beat; here a quiet cluster writes nothing to the stream.
//
// Every instance builds its own view. It reads the stream with
// watermill-redisstream in fan-out mode (plain XREAD, no consumer group:
// every instance must see every entry, and groups would load-balance them and
// leave PELs behind). Liveness comes from the sorted set: a node's last-seen
// time is its score, taken on Redis's clock so host clocks do not matter, and
// a node not refreshed within its own TTL is reported left, by every
// instance, at the moment its TTL runs out. The instances that notice remove
// it from the hash and the sorted set (a Lua script that re-checks the score,
// so racing instances and a node that just came back are safe).
//
// A starting instance first reads, in one MULTI, the stream's last entry id,
// the hash, the sorted set and the time; it then starts the stream reader
// right after that id. So it knows the current members as soon as that round
// trip returns (Nodes waits for it), and nothing announced meanwhile is lost.
// watermill-redisstream's fan-out mode would start at "$", the moment its
// first XREAD happens to run; the explicit id closes that gap.
//
// Revisions (instance incarnation, sequence) order the entries of one node,
// so a replayed or stale copy never overwrites a newer one.
//
// # Trimming
//
// The stream only has to cover short reader outages, since the hash is the
// snapshot: each XADD trims it with MAXLEN ~ (WithMaxLen, default 1000), and
// each announcement also trims by age with XTRIM MINID ~ (WithMaxAge, default
// 10 min). watermill-redisstream never trims unless told to, and cannot trim
// by age.
//
// # Redis outages and restarts
//
// When Redis cannot be reached the instance keeps its last view: it expires
// nobody, since it cannot tell a dead node from its own lost connection.
// Heartbeats are retried with exponential backoff (from 50 ms, up to one
// heartbeat interval, with jitter). When Redis answers again every known node
// gets a full TTL to show it is alive, the snapshot is read again, and the
// instance announces anything Redis lost: a heartbeat that finds one of its
// nodes missing from the sorted set or the hash (a Redis restart without
// persistence, a flush) announces it again, which rebuilds the snapshot. A
// Register or Deregister that fails returns an error wrapping
// discovery.ErrUnavailable; the registration is kept and announced when Redis
// is back. Nothing Redis returns can crash the instance: malformed entries,
// in the stream or in the hash, are logged at Warn and skipped (DecodeEntry
// is strict and fuzzed).
//
// # Client ownership
//
// New never closes the client it is given; Connect makes a client of its
// own (address, password, database) and closes it on Close. watermill-redisstream's Publisher
// and Subscriber close the client they are given, so they get it behind a
// wrapper whose Close does nothing. Any redis.UniversalClient works (single,
// Sentinel, Cluster, Ring); on Redis Cluster the prefix needs a hash tag
// ("{netron:discovery}") so that the three keys share a slot for the scripts
// and the MULTI.
//
// # Goroutines
//
// An instance runs a loop goroutine (snapshot, heartbeats, expiry,
// recovery), a goroutine that applies stream entries, watermill's reader
// goroutines, and one goroutine per Watch. Close and Kill stop them all and
// wait for them, except watermill's XREAD goroutine, which watermill does not
// wait for; see Discovery.Close.
package redisdisc
