// Package redisdisc is the Redis backend of package discovery: nodes in
// different processes and hosts find each other through Redis (a server, a
// Sentinel-managed master or a Redis Cluster; Redis 6.2 or later, tested on
// 7.0), using Redis Streams via watermill-redisstream and go-redis.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", Password: pw, ContextTimeoutEnabled: true})
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
// Cluster (redis.NewClusterClient: seed addresses); set
// ContextTimeoutEnabled in its options, so that the deadlines the instance
// gives its round trips hold on a Redis that stops answering (New logs a
// warning when a client's options lack it).
// ConnectUniversal makes one from redis.UniversalOptions (and sets
// ContextTimeoutEnabled), ParseURL reads those options from a URL
// (redis://, rediss://, with addr=, master_name=, cluster=), and Endpoint
// adds TLS settings (a CA file, a client certificate, a server name; by
// default every address dialled, each Cluster node and each Sentinel, is
// checked by its own host name). Every key of a prefix carries the prefix
// as a hash tag, so that on a Cluster all of them, and the scripts over
// them, live in one slot.
//
// # Keys
//
// Everything lives under a prefix (WithPrefix, default "netron:discovery"),
// in braces:
//
//	{prefix}:events  stream: one entry per change (join, update, leave, expiry)
//	{prefix}:nodes   hash: node id -> its latest entry (the snapshot)
//	{prefix}:alive   sorted set: node id -> deadline (last heartbeat + its TTL; ms, Redis clock)
//	{prefix}:meta    hash: gen (number of the last change), beat (last heartbeat), grace,
//	                 maxttl (the largest TTL announced under the prefix),
//	                 incs (incarnations handed out)
//
// An entry is a small JSON document with a schema version, the node's
// details, its TTL, its instance's heartbeat and a revision (its JSON form is
// documented in entry.go; it is not part of the API).
// Stream entries are written in watermill-redisstream's format (plus a
// netron_gen field), so any watermill subscriber can consume the
// announcements too.
//
// These keys replaced, before any release, a layout without braces
// (prefix:nodes, prefix:events, prefix:alive) whose instances do not see
// these, nor these them: moving a cluster from it is stop-the-world (stop
// every node, then start the new version; delete the old keys). An
// instance that finds keys of the old layout under its prefix logs a
// warning at start.
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
// docs/bench-discovery.md). Regular heartbeats keep one phase, a heartbeat
// apart, from the instance's start. When the earliest deadline falls
// before an instance's next regular heartbeat, the instance runs an extra
// one (a probe) just after it, with up to min(heartbeat/10, 50 ms) of
// jitter, so that a dead node is reported left when its TTL runs out; an
// instance whose probe comes after the node's leave has reached it skips
// it, and no probe moves the regular heartbeats, so the instances'
// heartbeats stay spread over the interval.
//
// Every instance builds its own view. A starting instance reads, in one
// script, the entries, the deadlines, the change number and the stream's
// last id, then reads the stream with watermill-redisstream in fan-out mode
// (plain XREAD, no consumer group: every instance must see every entry)
// right after that id. So it knows the current members as soon as that
// round trip returns (Nodes waits for it), and nothing announced meanwhile
// is lost or applied twice. Each change carries the next number. A reader
// that loses Redis for a while resumes where it was, and its watchers get
// every change made meanwhile, one by one. A reader that sees any other
// number (the stream was trimmed past it, or Redis lost changes in a
// restart or a failover), or that has not moved for two heartbeats (at
// least 2 s) although changes are waiting, re-reads the membership (a
// resync, counted by Resyncs; at most one a heartbeat) and restarts after
// it. The first event a resync causes on a watch carries in Event.Missed
// the number of changes the reader did not apply one by one (a
// ChangesMissed event when nothing differs; see discovery.Event). A resync
// that fails is tried again at the next heartbeat.
//
// Revisions (instance incarnation, sequence) order the entries of one node,
// so a replayed or stale copy never overwrites a newer one. An instance
// gets its incarnation from Redis when it first reaches it (its first
// Register or its first snapshot, whichever comes first): the Redis clock
// (TIME) in Unix nanoseconds, to the microsecond, whose last three digits
// are a count of the incarnations handed out under the prefix, so that
// two instances never share one. The clocks of the hosts play no part: a
// node id registered again by an instance on another host, whose clock
// may be behind, is ordered after the instance that held it before. (A
// Register made before the instance reached Redis is kept, and announced
// with the incarnation once Redis answers.)
//
// # Node ids
//
// An id is held by one instance. A holder that has heartbeated within 1.5
// of its heartbeat intervals (by the Redis clock) is live, and a live
// holder is never taken over, whatever its address: Register refuses its
// id (discovery.ErrDuplicateID, naming the holder's address). A holder
// silent for longer (a process that crashed, whose registration has not
// expired yet) is taken over: Register waits, within its context, until
// the holder has been silent that long, so a node restarted right after a
// crash starts within about 1.5 heartbeats, and a live duplicate, which
// beats meanwhile, is refused. An instance whose node was taken over while
// it could not reach Redis logs an error and stops announcing it.
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
// ms, up to one heartbeat interval, with jitter), but never later than a
// margin (half a heartbeat, at most 1 s) before the deadline of the
// instance's own nodes (its last successful heartbeat plus the TTL), and
// from there every 50 ms until that deadline: an instance that gets Redis
// back before its nodes' deadline refreshes them in time. So an instance
// that loses Redis (alone or with the others) for less than the TTL less
// one heartbeat (less 50 ms and a round trip) keeps its nodes. When Redis answers again the instance
// announces anything Redis lost: a heartbeat that finds one of its nodes
// missing (a Redis restart without persistence, a flush, a failover to a
// replica that lagged) announces it again. After a resync that finds that
// Redis lost data, a node of the view missing in Redis is not reported
// left at once: it leaves the view a TTL later unless its instance
// announces it again (after any other resync it leaves at once).
//
// When every instance lost Redis at once (an outage, a Sentinel failover),
// the deadlines in Redis went stale meanwhile. The first heartbeat script
// that finds that nobody has run one (or made a change) for longer than
// 1.5 of its caller's heartbeats suspends expiry until the largest TTL announced under the
// prefix (meta maxttl, which never decreases) has passed, so that every
// live node refreshes its deadline before anyone is expired: nobody alive
// is reported left. With the default TTL of three heartbeats the two rules
// cover every outage: one shorter than 1.5 heartbeats is shorter than the
// TTL less one heartbeat. A TTL under 2.5 heartbeats leaves a gap between
// them. Instances of one prefix should share the heartbeat interval: the
// pause is measured against the interval of the instance that comes back
// first, so an outage longer than the TTL less one heartbeat of a fast
// instance but shorter than 1.5 heartbeats of a slow one that comes back
// first can cost the fast one its nodes. Deadlines use the Redis clock;
// after a failover, the new master's clock should agree with the old one's
// to well within the TTL.
//
// A Register or Deregister that fails returns an error wrapping
// discovery.ErrUnavailable; the registration is kept and announced when
// Redis is back. Nothing Redis returns can crash the instance: malformed
// entries, in the stream or in the hash, are logged at Warn and skipped
// (decodeEntry is strict and fuzzed).
//
// # Client ownership and logging
//
// New never closes the client it is given; Connect and ConnectUniversal
// make a client of their own and close it on Close. Deregister and
// CloseContext keep their context's deadline even on a Redis that does not
// answer: a Close of an instance with a client of its own closes that
// client when the deadline comes, which ends the round trip that waits. watermill-redisstream's
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
// resyncs, retries), a goroutine that applies stream entries, watermill's
// reader goroutines, and one goroutine per Watch. Close and Kill stop them
// all and wait for them, except watermill's XREAD goroutine, which
// watermill does not wait for; see Discovery.CloseContext.
package redisdisc
