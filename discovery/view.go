package discovery

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// Revision orders the announcements of one node id. Backends stamp every
// announcement with one so that a stale copy (a replayed stream entry, a
// snapshot read while a newer update was in flight) never overwrites a newer
// one.
type Revision struct {
	// Incarnation identifies the registering instance; an instance that
	// registers later has a larger one: a clock reading, strictly
	// increasing within the process for Memory (NewIncarnation), the
	// Redis clock when the instance first reached Redis for redisdisc.
	Incarnation int64
	// Seq counts the announcements of that instance.
	Seq uint64
}

// Compare returns -1, 0 or +1 as r is older than, equal to or newer than o.
func (r Revision) Compare(o Revision) int {
	if c := cmp.Compare(r.Incarnation, o.Incarnation); c != 0 {
		return c
	}
	return cmp.Compare(r.Seq, o.Seq)
}

// IsZero reports whether r is the zero Revision.
func (r Revision) IsZero() bool { return r == Revision{} }

// View is the local picture of the cluster that a backend keeps: the active
// nodes with their last-seen times and TTLs, expiry, queries, and fan-out of
// changes to watchers. Memory and redisdisc are built on it; it is exported
// for other backends. Its methods are safe for concurrent use.
//
// A View never looks at the clock by itself: callers pass the times, which
// keeps backends testable and lets a backend suspend expiry (redisdisc does
// while Redis is unreachable, to keep its last view).
type View struct {
	mu       sync.Mutex
	nodes    map[string]*viewNode
	tombs    map[string]tomb
	watchers map[*watcher]struct{}
}

type viewNode struct {
	info NodeInfo // LastSeen kept up to date
	ttl  time.Duration
	rev  Revision
}

// tomb remembers the revision of a node that left, so that an older
// announcement arriving late does not bring it back.
type tomb struct {
	rev   Revision
	until time.Time
}

// NewView returns an empty View.
func NewView() *View {
	return &View{
		nodes:    make(map[string]*viewNode),
		tombs:    make(map[string]tomb),
		watchers: make(map[*watcher]struct{}),
	}
}

// Put records that node, announced at revision rev with time-to-live ttl, was
// alive at seen. It returns NodeJoined or NodeUpdated when watchers were told
// about a change, and 0 when only the last-seen time moved or when the
// announcement was older than what the view holds (including a node that
// left at a newer revision).
func (v *View) Put(node NodeInfo, ttl time.Duration, rev Revision, seen time.Time) EventKind {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.putLocked(node, ttl, rev, seen)
}

// putLocked is Put; v.mu is held.
func (v *View) putLocked(node NodeInfo, ttl time.Duration, rev Revision, seen time.Time) EventKind {
	if t, ok := v.tombs[node.ID]; ok {
		if rev.Compare(t.rev) <= 0 {
			return 0
		}
		delete(v.tombs, node.ID)
	}
	n, ok := v.nodes[node.ID]
	if !ok {
		info := node.Clone()
		info.LastSeen = seen
		v.nodes[node.ID] = &viewNode{info: info, ttl: ttl, rev: rev}
		v.emit(NodeJoined, info)
		return NodeJoined
	}
	if rev.Compare(n.rev) < 0 {
		return 0
	}
	n.rev, n.ttl = rev, ttl
	if seen.After(n.info.LastSeen) {
		n.info.LastSeen = seen
	}
	if n.info.SameDetails(node) {
		return 0
	}
	last := n.info.LastSeen
	n.info = node.Clone()
	n.info.LastSeen = last
	v.emit(NodeUpdated, n.info)
	return NodeUpdated
}

// Announcement is one node as a backend read it: its details, its TTL,
// the revision of its announcement and when it was last seen alive.
type Announcement struct {
	Node NodeInfo
	TTL  time.Duration
	Rev  Revision
	Seen time.Time
}

// Resync makes the view agree with a complete reading of the membership
// that replaces changes the backend could not apply one by one (missed of
// them; 0 when it knows of none). Every announcement is put as by Put, and
// every other node for which drop returns true is removed (drop may be
// nil: nothing is removed). Watchers receive the resulting changes in
// order, the first carrying Event.Missed = missed; when there is none and
// missed is not 0, they receive one ChangesMissed event that carries it.
// The whole resync happens under the view's lock, so no other change
// comes between its events.
func (v *View) Resync(anns []Announcement, missed int, drop func(id string) bool, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for w := range v.watchers {
		w.beginResync(missed)
	}
	in := make(map[string]bool, len(anns))
	for _, a := range anns {
		in[a.Node.ID] = true
		v.putLocked(a.Node, a.TTL, a.Rev, a.Seen)
	}
	if drop != nil {
		var gone []string
		for id := range v.nodes {
			if !in[id] && drop(id) {
				gone = append(gone, id)
			}
		}
		slices.Sort(gone)
		for _, id := range gone {
			v.drop(v.nodes[id], Revision{}, now)
		}
	}
	for w := range v.watchers {
		w.endResync()
	}
}

// Touch moves the last-seen time of a known node forward to seen (never
// back). It reports whether the node is known.
func (v *View) Touch(id string, seen time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	n, ok := v.nodes[id]
	if ok && seen.After(n.info.LastSeen) {
		n.info.LastSeen = seen
	}
	return ok
}

// TouchAll moves the last-seen time of every node forward to seen. A backend
// calls it when it gets its connection back after an outage, so that nodes
// get a full TTL to show they are still alive.
func (v *View) TouchAll(seen time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, n := range v.nodes {
		if seen.After(n.info.LastSeen) {
			n.info.LastSeen = seen
		}
	}
}

// Remove deletes the node id because it deregistered at revision rev (the
// zero Revision removes unconditionally). now dates the tombstone that keeps
// older announcements of the node out for one TTL. It reports whether the
// node was present, and tells watchers NodeLeft if so.
func (v *View) Remove(id string, rev Revision, now time.Time) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	n, ok := v.nodes[id]
	if ok && !rev.IsZero() && rev.Compare(n.rev) < 0 {
		return false
	}
	if !ok {
		if !rev.IsZero() {
			if t, had := v.tombs[id]; !had || rev.Compare(t.rev) > 0 {
				v.tombs[id] = tomb{rev: rev, until: now.Add(time.Minute)}
			}
		}
		return false
	}
	v.drop(n, laterRev(rev, n.rev), now)
	return true
}

func laterRev(a, b Revision) Revision {
	if a.Compare(b) >= 0 {
		return a
	}
	return b
}

// drop removes n and emits NodeLeft; with a non-zero rev it leaves a
// tombstone. v.mu is held.
func (v *View) drop(n *viewNode, rev Revision, now time.Time) {
	delete(v.nodes, n.info.ID)
	if !rev.IsZero() {
		v.tombs[n.info.ID] = tomb{rev: rev, until: now.Add(max(n.ttl, time.Second))}
	}
	v.emit(NodeLeft, n.info)
}

// Expire removes every node whose last-seen time is more than its TTL before
// now, tells watchers NodeLeft for each, and returns them sorted by id.
// Unlike Remove it leaves no tombstone: a node that was only silent comes
// back with its next announcement, even at the same revision.
func (v *View) Expire(now time.Time) []NodeInfo {
	v.mu.Lock()
	defer v.mu.Unlock()
	var gone []NodeInfo
	for _, n := range v.nodes {
		if now.Sub(n.info.LastSeen) > n.ttl {
			gone = append(gone, n.info.Clone())
		}
	}
	slices.SortFunc(gone, func(a, b NodeInfo) int { return cmp.Compare(a.ID, b.ID) })
	for _, g := range gone {
		v.drop(v.nodes[g.ID], Revision{}, now)
	}
	for id, t := range v.tombs {
		if now.After(t.until) {
			delete(v.tombs, id)
		}
	}
	return gone
}

// NextExpiry returns the earliest time at which a node would expire if it is
// not seen again, and false when the view is empty.
func (v *View) NextExpiry() (time.Time, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var next time.Time
	for _, n := range v.nodes {
		at := n.info.LastSeen.Add(n.ttl)
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next, !next.IsZero()
}

// Get returns a copy of the node id.
func (v *View) Get(id string) (NodeInfo, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	n, ok := v.nodes[id]
	if !ok {
		return NodeInfo{}, false
	}
	return n.info.Clone(), true
}

// Revision returns the revision the view holds for the node id.
func (v *View) Revision(id string) (Revision, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	n, ok := v.nodes[id]
	if !ok {
		return Revision{}, false
	}
	return n.rev, true
}

// TTL returns the time-to-live the view holds for the node id.
func (v *View) TTL(id string) (time.Duration, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	n, ok := v.nodes[id]
	if !ok {
		return 0, false
	}
	return n.ttl, true
}

// Len returns the number of nodes in the view.
func (v *View) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.nodes)
}

// Nodes returns copies of all nodes, sorted by id. The result is never nil.
func (v *View) Nodes() []NodeInfo {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]NodeInfo, 0, len(v.nodes))
	for _, n := range v.nodes {
		out = append(out, n.info.Clone())
	}
	slices.SortFunc(out, func(a, b NodeInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Find returns the nodes that offer service at a version inside rng, the
// highest matching version first, ties by id. The result is never nil.
func (v *View) Find(service, rng string) ([]NodeInfo, error) {
	m, err := parseRange(rng)
	if err != nil {
		return nil, err
	}
	type hit struct {
		node    NodeInfo
		version string
	}
	v.mu.Lock()
	var hits []hit
	for _, n := range v.nodes {
		if ver, ok, _ := n.info.offers(service, m); ok {
			hits = append(hits, hit{n.info.Clone(), ver})
		}
	}
	v.mu.Unlock()
	slices.SortFunc(hits, func(a, b hit) int {
		if c := compareVersions(b.version, a.version); c != 0 {
			return c
		}
		return cmp.Compare(a.node.ID, b.node.ID)
	})
	out := make([]NodeInfo, len(hits))
	for i, h := range hits {
		out[i] = h.node
	}
	return out, nil
}

// emit hands a change to every watcher. v.mu is held; watchers never block.
func (v *View) emit(kind EventKind, info NodeInfo) {
	for w := range v.watchers {
		w.push(info, kind != NodeLeft)
	}
}
