package discovery

import (
	"cmp"
	"context"
	"slices"
	"sync"
)

// WatchBuffer is how many changes a watch queues for a consumer that is not
// reading before it stops queueing and counts them instead (see
// Discovery.Watch).
const WatchBuffer = 4096

// WatchGroup owns the watches one backend instance hands out over a View, so
// that the instance can end them all on Close. Create it with
// View.NewWatchGroup.
type WatchGroup struct {
	v      *View
	limit  int // WatchBuffer; tests lower it
	mu     sync.Mutex
	closed bool
	stop   chan struct{}
	wg     sync.WaitGroup
}

// NewWatchGroup returns a WatchGroup whose watches observe v.
func (v *View) NewWatchGroup() *WatchGroup {
	return &WatchGroup{v: v, limit: WatchBuffer, stop: make(chan struct{})}
}

// Watch implements Discovery.Watch over the group's View: a NodeJoined for
// every current node, then every change in order, on an unbuffered channel
// that is closed when ctx ends or the group is closed. A consumer more than
// WatchBuffer changes behind is resynchronised (see Discovery.Watch). After
// Close it fails with ErrClosed.
func (g *WatchGroup) Watch(ctx context.Context) (<-chan Event, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w := &watcher{
		v:     g.v,
		limit: g.limit,
		tail:  make(map[string]NodeInfo),
		wake:  make(chan struct{}, 1),
		out:   make(chan Event),
	}
	g.v.mu.Lock()
	ids := make([]string, 0, len(g.v.nodes))
	for id := range g.v.nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		w.push(g.v.nodes[id].info, true)
	}
	g.v.watchers[w] = struct{}{}
	g.v.mu.Unlock()

	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer close(w.out)
		defer func() {
			g.v.mu.Lock()
			delete(g.v.watchers, w)
			g.v.mu.Unlock()
		}()
		w.run(ctx, g.stop)
	}()
	return w.out, nil
}

// Close ends every watch of the group, waits for their goroutines and makes
// later Watch calls fail with ErrClosed. It is idempotent.
func (g *WatchGroup) Close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.stop)
	}
	g.mu.Unlock()
	g.wg.Wait()
}

// watcher queues the changes of the View for one consumer, in order. push
// never blocks: past limit queued changes it stops queueing and counts what
// it drops, and once the consumer has taken the queue it hands over the
// difference between what the consumer knows and the View (a resync).
type watcher struct {
	v     *View
	limit int

	mu       sync.Mutex
	queue    []Event
	tail     map[string]NodeInfo // what the consumer knows once it has the queue
	overflow bool                // changes are being dropped and counted
	missed   int                 // changes dropped since the overflow began
	// pend is, during View.Resync, the count of changes the backend skipped
	// that no event of the resync has carried yet.
	pend int

	wake chan struct{}
	out  chan Event
}

// push records a change of info (present: joined or updated; else left).
// The View's lock is held.
func (w *watcher) push(info NodeInfo, present bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.overflow {
		w.missed += 1 + w.pend
		w.pend = 0
		return
	}
	ev, ok := w.change(info, present)
	if !ok {
		return
	}
	if len(w.queue) >= w.limit {
		w.overflow = true
		w.missed += 1 + w.pend
		w.pend = 0
		return
	}
	ev.Missed, w.pend = w.pend, 0
	w.enqueue(ev)
}

// beginResync starts a View.Resync that replaces missed changes. The
// View's lock is held.
func (w *watcher) beginResync(missed int) {
	w.mu.Lock()
	w.pend = missed
	w.mu.Unlock()
}

// endResync ends a View.Resync: a count no event of it carried goes on a
// ChangesMissed event (or into the overflow count). The View's lock is
// held.
func (w *watcher) endResync() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pend == 0 {
		return
	}
	switch {
	case w.overflow:
		w.missed += w.pend
	case len(w.queue) >= w.limit:
		w.overflow = true
		w.missed += w.pend
	default:
		w.enqueue(Event{Kind: ChangesMissed, Missed: w.pend})
	}
	w.pend = 0
}

// change is the event that takes the consumer from the tail state of the
// node to info; ok is false when there is no difference. w.mu is held.
func (w *watcher) change(info NodeInfo, present bool) (Event, bool) {
	last, knew := w.tail[info.ID]
	switch {
	case present && !knew:
		return Event{Kind: NodeJoined, Node: info.Clone()}, true
	case present && !last.SameDetails(info):
		return Event{Kind: NodeUpdated, Node: info.Clone()}, true
	case !present && knew:
		return Event{Kind: NodeLeft, Node: info.Clone()}, true
	}
	return Event{}, false
}

// enqueue appends ev and moves the tail state. w.mu is held.
func (w *watcher) enqueue(ev Event) {
	switch ev.Kind {
	case NodeLeft:
		delete(w.tail, ev.Node.ID)
	case NodeJoined, NodeUpdated:
		w.tail[ev.Node.ID] = ev.Node
	}
	w.queue = append(w.queue, ev)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// pop takes the next event; after an overflow, once the queue is empty, it
// first resynchronises with the View.
func (w *watcher) pop() (Event, bool) {
	w.mu.Lock()
	overflow := w.overflow && len(w.queue) == 0
	w.mu.Unlock()
	if overflow {
		w.resync()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		w.queue = nil // let the backing array go
		return Event{}, false
	}
	ev := w.queue[0]
	w.queue[0] = Event{}
	w.queue = w.queue[1:]
	return ev, true
}

// resync queues, in id order, the difference between what the consumer
// knows and the View's nodes, the first event carrying the count of the
// changes dropped (on a ChangesMissed event when nothing differs), and
// queues changes again.
func (w *watcher) resync() {
	w.v.mu.Lock()
	defer w.v.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	var evs []Event
	for id, last := range w.tail {
		if _, ok := w.v.nodes[id]; !ok {
			evs = append(evs, Event{Kind: NodeLeft, Node: last})
		}
	}
	for _, n := range w.v.nodes {
		if ev, ok := w.change(n.info, true); ok {
			evs = append(evs, ev)
		}
	}
	slices.SortFunc(evs, func(a, b Event) int { return cmp.Compare(a.Node.ID, b.Node.ID) })
	if len(evs) == 0 {
		// Nothing differs: the count goes on an event of its own, never on
		// a later, unrelated change.
		evs = append(evs, Event{Kind: ChangesMissed})
	}
	evs[0].Missed = w.missed
	for _, ev := range evs {
		w.enqueue(ev)
	}
	w.overflow = false
	w.missed = 0
}

func (w *watcher) run(ctx context.Context, stop <-chan struct{}) {
	for {
		ev, ok := w.pop()
		if !ok {
			select {
			case <-w.wake:
				continue
			case <-ctx.Done():
				return
			case <-stop:
				return
			}
		}
		select {
		case w.out <- ev:
		case <-ctx.Done():
			return
		case <-stop:
			return
		}
	}
}
