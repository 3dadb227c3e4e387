// Package discovery is how Netron nodes find each other: a registry of nodes,
// the address each can be reached at, the versioned services each offers, and
// a stream of changes.
//
// # The interface
//
// Discovery has two halves. A node announces itself with Register (again with
// new details whenever its address or services change) and leaves with
// Deregister or Close; between the two, the backend keeps it alive with
// heartbeats. Everyone reads with Nodes, Find (by service name and semver
// range, latest version first) and Watch (NodeJoined, NodeUpdated,
// NodeLeft).
//
// A node is active while it is heard from: a node whose instance stops
// without deregistering (a crash, a partition) is reported left once its TTL
// has passed without a heartbeat (default 5 s heartbeats, 15 s TTL, the
// values of the original Netron). Heartbeats are never reported as changes;
// NodeUpdated means the details changed.
//
// # Backends
//
//   - Memory (this package): one registry per process, the embedded default.
//     Every Memory made with NewMemory() shares the process-wide Hub, so the
//     nodes of one process find each other with no configuration; WithHub
//     gives a test its own. It has the same heartbeat and TTL semantics as
//     the Redis backend (Memory.Kill simulates a crash).
//   - redisdisc: Redis Streams, for nodes in different processes and hosts.
//
// Both pass the same behaviour suite, package discoverytest.
//
// # Writing a backend
//
// A backend of your own (Config.DiscoveryBackend of package netron) is
// built from the same kit as these two, which is exported for that
// purpose and not needed otherwise: View holds the nodes a backend knows,
// with their TTLs, and orders their announcements by Revision (stamp each
// with an Incarnation, NewIncarnation for a process-local clock, and a
// Seq); View.NewWatchGroup gives every Watch its ordered event channel;
// ValidateNode checks what Register is given. discoverytest.Run runs the
// behaviour suite against it.
//
// # Versions
//
// Service versions are semantic versions, validated at Register. Find and
// MatchVersion take ranges: "1.2.3" (exact), "^1", "~1.2", ">=1.0 <2",
// "^1 || ^3", and "", "*" or "latest" for any version.
//
// # Watching
//
// Watch first delivers a NodeJoined for every node active when it is called,
// so a watcher's picture is complete without a separate Nodes call, then
// every change, in order. The channel is unbuffered; the backend never waits
// for a watcher. Instead each watch queues up to WatchBuffer changes; a
// watcher further behind than that stops receiving changes one by one and,
// once it has taken the queue, is resynchronised: one event per node whose
// state differs from what it was told, the first carrying the number of
// changes it missed (Event.Missed; a ChangesMissed event of its own when
// nothing differs). A backend that cannot read some changes one by one
// (redisdisc, when its stream was trimmed past its reader or Redis lost
// data) resynchronises its view the same way, through View.Resync, and its
// watchers get the count the same way. Memory per watcher is therefore
// bounded by WatchBuffer plus the number of nodes, and a watcher that
// misses changes loses intermediate states, never the final one, and is
// told how many.
//
// # Concurrency
//
// All methods of all types in this package are safe for concurrent use.
// Every goroutine belongs to an instance whose Close (or Kill) stops it and
// waits for it.
package discovery
