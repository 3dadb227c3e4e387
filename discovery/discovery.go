package discovery

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"time"
)

// ServiceInfo names one service a node offers, at one version.
type ServiceInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// NodeInfo describes a node as the cluster sees it.
type NodeInfo struct {
	// ID identifies the node in the cluster; it is the Netron node id.
	ID string `json:"id"`
	// Address is where peers can reach the node, for example "10.0.0.5:9000"
	// or "ws://10.0.0.5:9000"; empty for a client-only node (see ClientOnly).
	Address string `json:"address"`
	// Services are the services the node exposes, each with one version.
	Services []ServiceInfo `json:"services"`
	// Metadata is free-form, small key/value data about the node.
	Metadata map[string]string `json:"metadata,omitempty"`
	// LastSeen is when the observing instance last had evidence that the node
	// was alive (a heartbeat or an announcement), on the observer's clock. It
	// is filled in by the backend; Register ignores it.
	LastSeen time.Time `json:"lastSeen"`
}

// ClientOnly reports whether n is a client-only member: a node without a
// server, which has no address to be reached at. It is listed (it is part
// of the cluster, and its presence is watched), but nothing can dial it, so
// lookups and balancing skip it.
func (n NodeInfo) ClientOnly() bool { return n.Address == "" }

// Clone returns a deep copy of n.
func (n NodeInfo) Clone() NodeInfo {
	n.Services = slices.Clone(n.Services)
	n.Metadata = maps.Clone(n.Metadata)
	return n
}

// SameDetails reports whether n and o announce the same node: same id,
// address, services (in order) and metadata. LastSeen is not compared, and a
// nil map or slice equals an empty one.
func (n NodeInfo) SameDetails(o NodeInfo) bool {
	return n.ID == o.ID && n.Address == o.Address &&
		slices.Equal(n.Services, o.Services) && maps.Equal(n.Metadata, o.Metadata)
}

// Offers reports whether n offers service name at a version inside rng (see
// MatchVersion). It returns the highest such version.
func (n NodeInfo) Offers(name, rng string) (version string, ok bool, err error) {
	m, err := parseRange(rng)
	if err != nil {
		return "", false, err
	}
	return n.offers(name, m)
}

func (n NodeInfo) offers(name string, m matcher) (string, bool, error) {
	best, found := "", false
	for _, s := range n.Services {
		if s.Name != name || !m.match(s.Version) {
			continue
		}
		if !found || compareVersions(s.Version, best) > 0 {
			best, found = s.Version, true
		}
	}
	return best, found, nil
}

// EventKind says what happened to a node.
type EventKind int

// The kinds of Event.
const (
	// NodeJoined: a node the watcher did not know about is now active.
	NodeJoined EventKind = iota + 1
	// NodeUpdated: an active node re-registered with different details
	// (address, services or metadata). Heartbeats never produce it.
	NodeUpdated
	// NodeLeft: a node deregistered, or was not heard from for longer than its
	// TTL. Event.Node holds the last details known.
	NodeLeft
	// ChangesMissed: the watch skipped Event.Missed changes (see
	// Event.Missed), and what the consumer was told already matches the
	// current state, so no node event carries the count. Event.Node is
	// empty.
	ChangesMissed
)

// String returns "joined", "updated", "left" or "missed".
func (k EventKind) String() string {
	switch k {
	case NodeJoined:
		return "joined"
	case NodeUpdated:
		return "updated"
	case NodeLeft:
		return "left"
	case ChangesMissed:
		return "missed"
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event is one change in the set of active nodes, as delivered by Watch.
type Event struct {
	Kind EventKind
	Node NodeInfo
	// Missed counts the changes before this event that the watch did not
	// deliver one by one, and that a resync replaced by the difference
	// between what the consumer was told and the current state. This event
	// is the first of that resync; when nothing differs it is an event of
	// kind ChangesMissed of its own, so that the count never lands on a
	// later, unrelated change and is never lost. Two things cause a resync:
	// the consumer fell more than WatchBuffer changes behind (any backend),
	// or the backend itself could not read some changes one by one (for
	// redisdisc: its stream reader found a gap in the change numbers, the
	// stream having been trimmed past it, or it had to re-read the
	// membership; see that package). Zero when nothing was missed.
	Missed int
}

// Discovery is a registry of nodes and the services they offer.
//
// Every implementation in this module is safe for concurrent use, and the
// behaviour below is checked for each of them by the shared suite in package
// discoverytest.
type Discovery interface {
	// Register announces node, or updates it when this instance registered the
	// same id before (re-registration with new details). The instance then
	// keeps the node alive with heartbeats until Deregister, Close or Kill.
	// Registering identical details again is a no-op. The node's LastSeen is
	// ignored. Invalid nodes fail with ErrInvalidNode or ErrInvalidVersion.
	// A backend shared by several processes refuses an id that a live node
	// of another instance holds with ErrDuplicateID (redisdisc does, unless
	// it is the same node back at its address); Memory, within one
	// process, lets the newer registration replace the older.
	Register(ctx context.Context, node NodeInfo) error
	// Deregister removes a node this instance registered, at once: the other
	// instances report it left without waiting for the TTL. Deregistering an
	// id that is not registered here is a no-op that returns nil.
	Deregister(ctx context.Context, nodeID string) error
	// Nodes returns the active nodes (seen within their TTL), sorted by id.
	Nodes(ctx context.Context) ([]NodeInfo, error)
	// Find returns the active nodes that offer service at a version inside
	// versionRange (see MatchVersion; "" matches any). The node offering the
	// highest matching version comes first (latest wins); ties are sorted by
	// id. An unparsable range fails with ErrInvalidRange.
	Find(ctx context.Context, service string, versionRange string) ([]NodeInfo, error)
	// Watch returns a channel of changes. It first delivers a NodeJoined for
	// every node active at the time of the call, then every later change, in
	// order: a node that joined and left while the consumer was busy
	// arrives as a NodeJoined and then a NodeLeft. The channel is closed
	// when ctx ends or the instance is closed.
	//
	// Watch never blocks the instance on a slow consumer. It queues up to
	// WatchBuffer changes for it; past that it stops queueing and counts the
	// changes instead, and once the consumer has taken the queue it receives
	// one event per node whose state differs from what it was told (a
	// resync, in node id order), the first of them carrying the count in
	// Event.Missed (a ChangesMissed event when nothing differs). So a
	// watcher sees every change unless it falls that far behind, or its
	// backend has to resync (see Event.Missed), and then knows how many it
	// missed and still ends at the current state. Memory is bounded by
	// WatchBuffer plus the number of nodes.
	Watch(ctx context.Context) (<-chan Event, error)
	// Close stops the instance: it deregisters every node this instance
	// registered, ends all watches and waits for its goroutines. Close is
	// idempotent.
	Close() error
}
