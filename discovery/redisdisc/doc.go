// Package redisdisc is the Redis backend of package discovery: nodes in
// different processes and hosts find each other through Redis (a server, a
// Sentinel-managed master or a Redis Cluster; Redis 6.2 or later, tested on
// 7.0), using Redis Streams via watermill-redisstream and go-redis.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", Password: pw})
//	d, err := redisdisc.New(rdb, redisdisc.WithPrefix("netron:discovery"))
//	...
//	defer d.Close()               // deregisters, stops; never closes rdb
//	err = d.Register(ctx, discovery.NodeInfo{ID: id, Address: addr, Services: svcs})
//	nodes, err := d.Find(ctx, "calculator", "^1")
//
// # Redis as deployed
//
// New takes any go-redis UniversalClient: a single server, Sentinel
// (redis.NewFailoverClient: master name and sentinel addresses) or Redis
// Cluster (redis.NewClusterClient: seed addresses). ConnectUniversal makes
// one from redis.UniversalOptions, and ParseURL reads those options from a
// URL (redis://, rediss://, with addr=, master_name=, cluster=). Every key
// of a prefix carries the prefix as a hash tag, so that on a Cluster all of
// them, and the scripts and transactions over them, live in one slot.
//
// # Keys
//
// Everything lives under a prefix (WithPrefix, default "netron:discovery"),
// in braces:
//
//	{prefix}:events  stream: one entry per change (join, update, leave, expiry)
//	{prefix}:nodes   hash: node id -> its latest entry (the snapshot)
//	{prefix}:alive   sorted set: node id -> deadline (last heartbeat + its TTL; ms, Redis clock)
//	{prefix}:meta    hash: gen (number of the last change), beat (last heartbeat), grace
//
// An entry is a small JSON document with a schema version, the node's
// details, its TTL and a revision (see Entry). Stream entries are written in
// watermill-redisstream's format (plus a netron_gen field), so any watermill
// subscriber can consume the announcements too.
//
// # How it works
//
// Changes go on the stream; liveness does not, and a heartbeat costs the
// same whatever the size of the cluster. Every write is one Lua script:
// Register stores the entry, sets the node's deadline, numbers the change
// (gen) and appends it to the stream, atomically. Every heartbeat, one
// script moves the deadlines of the instance's own nodes and expires, in
// Redis, every node whose deadline has passed: it removes the entry and
// appends a leave to the stream. Its reply is a few numbers: the Redis
// time, the earliest deadline and the last change's number. Each instance
// therefore sends one EVALSHA per heartbeat, plus the stream reader's idle
// XREAD, and both replies stay the same size with 10 or 10,000 nodes (see
// docs/bench-discovery.md). When the earliest deadline falls before an
// instance's next heartbeat, the instance runs an early one just after it
// (with jitter), so that a dead node is reported left when its TTL runs
// out.
//
// Every instance builds its own view. A starting instance reads, in one
// script, the entries, the deadlines, the change number and the stream's
// last id, then reads the stream with watermill-redisstream in fan-out mode
// (plain XREAD, no consumer group: every instance must see every entry)
// right after that id. So it knows the current members as soon as that
// round trip returns (Nodes waits for it), and nothing announced meanwhile
// is lost or applied twice. Each change carries the next number: a reader
// that sees any other (the stream was trimmed past it, or Redis lost
// changes in a restart or a failover) re-reads the membership (a resync,
// counted by Resyncs) and restarts after it, as it does when a heartbeat
// shows that it fell a heartbeat behind.
//
// Revisions (instance incarnation, sequence) order the entries of one node,
// so a replayed or stale copy never overwrites a newer one.
//
// # Node ids
//
// An id is held by one instance. Register refuses (discovery.ErrDuplicateID,
// naming the holder's address) an id whose holder is alive at another
// address; a holder at the same address is the same node back after a
// crash, and is replaced at once. An instance whose node was taken over
// meanwhile (it was silent past its TTL) logs an error and stops announcing
// it.
//
// # Trimming
//
// The stream only has to cover short reader outages, since the hash is the
// snapshot: each change trims it with MAXLEN ~ (WithMaxLen, default 1000),
// and each announcement also trims by age with XTRIM MINID ~ (WithMaxAge,
// default 10 min). A reader the trimming overtook resyncs.
//
// # Redis outages, restarts and failovers
//
// When Redis cannot be reached the instance keeps its last view: nobody is
// expired locally. Heartbeats are retried with exponential backoff (from 50
// ms, up to one heartbeat interval, with jitter). When Redis answers again
// the instance resyncs and announces anything Redis lost: a heartbeat that
// finds one of its nodes missing (a Redis restart without persistence, a
// flush, a failover to a replica that lagged) announces it again. A node the
// resync does not find in Redis is not reported left at once: it expires
// from the view a TTL later unless its instance announces it again.
//
// When every instance lost Redis at once (an outage, a Sentinel failover),
// the deadlines in Redis went stale meanwhile. The heartbeat script notices
// that nobody beat for longer than the TTL less one heartbeat and suspends
// expiry for a TTL, so that the live nodes refresh their deadlines before
// anyone is expired: nobody alive is reported left. Deadlines use the Redis
// clock; after a failover, the new master's clock should agree with the old
// one's to well within the TTL.
//
// A Register or Deregister that fails returns an error wrapping
// discovery.ErrUnavailable; the registration is kept and announced when
// Redis is back. Nothing Redis returns can crash the instance: malformed
// entries, in the stream or in the hash, are logged at Warn and skipped
// (DecodeEntry is strict and fuzzed).
//
// # Client ownership and logging
//
// New never closes the client it is given; Connect and ConnectUniversal
// make a client of their own and close it on Close. watermill-redisstream's
// Subscriber closes the client it is given, so it gets it behind a wrapper
// whose Close does nothing.
//
// go-redis logs through one process-wide logger (redis.SetLogger), to
// stderr by default, for example a line for every connection that could
// not be made during an outage. This package never replaces it, since that
// would change the logging of every other go-redis client of the program;
// it reports outages itself, once, on WithLogger's logger. A program that
// wants go-redis's lines in its slog logger instead calls, once, in main:
//
//	redisdisc.SetGoRedisLogger(logger, slog.LevelDebug)
//
// netron serve and the examples do.
//
// # Goroutines
//
// An instance runs a loop goroutine (snapshot, heartbeats, expiry probes,
// resyncs, recovery), a goroutine that applies stream entries, watermill's
// reader goroutines, and one goroutine per Watch. Close and Kill stop them all and
// wait for them, except watermill's XREAD goroutine, which watermill does not
// wait for; see Discovery.Close.
package redisdisc
