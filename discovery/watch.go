package discovery

import (
	"context"
	"sync"
)

// WatchGroup owns the watches one backend instance hands out over a View, so
// that the instance can end them all on Close. Create it with
// View.NewWatchGroup.
type WatchGroup struct {
	v      *View
	mu     sync.Mutex
	closed bool
	stop   chan struct{}
	wg     sync.WaitGroup
}

// NewWatchGroup returns a WatchGroup whose watches observe v.
func (v *View) NewWatchGroup() *WatchGroup {
	return &WatchGroup{v: v, stop: make(chan struct{})}
}

// Watch implements Discovery.Watch over the group's View: a NodeJoined for
// every current node, then every change, on an unbuffered channel that is
// closed when ctx ends or the group is closed. Changes a slow consumer has
// not taken yet are merged per node (see Discovery.Watch). After Close it
// fails with ErrClosed.
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
		pending: make(map[string]pendingState),
		known:   make(map[string]NodeInfo),
		wake:    make(chan struct{}, 1),
		out:     make(chan Event),
	}
	g.v.mu.Lock()
	for _, n := range g.v.nodes {
		w.push(n.info, true)
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

type pendingState struct {
	info    NodeInfo
	present bool
}

// watcher holds, per node, the newest state its consumer has not received
// yet, in the order the nodes first changed, and what the consumer last
// received about each node. push never blocks.
type watcher struct {
	mu      sync.Mutex
	order   []string
	pending map[string]pendingState
	known   map[string]NodeInfo // only touched by run
	wake    chan struct{}
	out     chan Event
}

func (w *watcher) push(info NodeInfo, present bool) {
	w.mu.Lock()
	if _, ok := w.pending[info.ID]; !ok {
		w.order = append(w.order, info.ID)
	}
	w.pending[info.ID] = pendingState{info: info.Clone(), present: present}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watcher) pop() (pendingState, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.order) == 0 {
		return pendingState{}, false
	}
	id := w.order[0]
	w.order[0] = ""
	w.order = w.order[1:]
	if len(w.order) == 0 {
		w.order = nil // let the backing array go
	}
	p := w.pending[id]
	delete(w.pending, id)
	return p, true
}

func (w *watcher) run(ctx context.Context, stop <-chan struct{}) {
	for {
		p, ok := w.pop()
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
		last, knew := w.known[p.info.ID]
		var ev Event
		switch {
		case p.present && !knew:
			ev = Event{Kind: NodeJoined, Node: p.info}
		case p.present && knew:
			if last.SameDetails(p.info) {
				continue
			}
			ev = Event{Kind: NodeUpdated, Node: p.info}
		case knew:
			ev = Event{Kind: NodeLeft, Node: p.info}
		default:
			continue // joined and left before the consumer heard of it
		}
		switch w.send(ctx, stop, ev) {
		case sendStopped:
			return
		case sendStale:
			continue // a newer state of the node is pending: it replaces ev
		}
		if ev.Kind == NodeLeft {
			delete(w.known, p.info.ID)
		} else {
			w.known[p.info.ID] = p.info
		}
	}
}

const (
	sendDone = iota
	sendStale
	sendStopped
)

// send delivers ev, or gives it up as stale when a newer state of its node
// arrives while the consumer is not reading: the consumer then gets one
// event from what it knew to the newest state, not the stale one first.
func (w *watcher) send(ctx context.Context, stop <-chan struct{}, ev Event) int {
	for {
		select {
		case w.out <- ev:
			return sendDone
		case <-w.wake:
			w.mu.Lock()
			_, newer := w.pending[ev.Node.ID]
			w.mu.Unlock()
			if newer {
				return sendStale
			}
		case <-ctx.Done():
			return sendStopped
		case <-stop:
			return sendStopped
		}
	}
}
