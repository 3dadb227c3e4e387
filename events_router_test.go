package netron

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// countingTarget is a target that counts what is delivered to it.
func countingTarget(got map[*target]int) *target {
	t := &target{}
	t.inline = func(context.Context, Event) { got[t]++ }
	return t
}

// Routes removed in any order stop receiving at once, the others keep
// receiving exactly once per event, whether or not their list has been
// compacted yet.
func TestRouterRemove(t *testing.T) {
	var r router
	got := map[*target]int{}
	var routes []*route
	for range 100 {
		routes = append(routes, newRoute("a", countingTarget(got)))
	}
	for range 10 {
		routes = append(routes, newRoute("a*", countingTarget(got)))
	}
	other := newRoute("b", countingTarget(got))
	r.add(routes...)
	r.add(other)
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(routes), func(i, j int) { routes[i], routes[j] = routes[j], routes[i] })
	for i, rt := range routes {
		r.remove(rt)
		if i%7 == 0 {
			r.remove(rt) // removing twice changes nothing
		}
		clear(got)
		r.dispatch(context.Background(), Event{Name: "a"}, nil)
		live := routes[i+1:]
		if len(got) != len(live) {
			t.Fatalf("after %d removals: %d targets got the event, want %d", i+1, len(got), len(live))
		}
		for _, l := range live {
			if got[l.t] != 1 {
				t.Fatalf("after %d removals: a live route got the event %d times", i+1, got[l.t])
			}
		}
		if r.any("a") != (len(live) > 0) {
			t.Fatalf("after %d removals: any(a) = %v with %d live routes", i+1, r.any("a"), len(live))
		}
	}
	if !r.any("b") {
		t.Fatal("the route of another name went away")
	}
	if a, p := r.routesOf("a"), r.prefix.load(); len(a) != 0 || len(p) != 0 {
		t.Fatalf("emptied lists hold %d and %d routes", len(a), len(p))
	}
}

// N subscribers of one name leaving one by one cost O(N) memory, not
// O(N²): copying the list on every removal allocated 8·N²/2 bytes
// (64 MB for 4,000).
func TestRouterRemoveIsLinear(t *testing.T) {
	const n = 4000
	var r router
	got := map[*target]int{}
	routes := make([]*route, n)
	for i := range routes {
		routes[i] = newRoute("service.event", countingTarget(got))
	}
	r.add(routes...)
	checkAllocated(t, fmt.Sprintf("removing %d routes", n), 16<<20, func() {
		for _, rt := range routes {
			r.remove(rt)
		}
	})
}

// checkAllocated fails t if f allocates more than limit bytes.
func checkAllocated(t *testing.T, what string, limit uint64, f func()) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	if bytes := after.TotalAlloc - before.TotalAlloc; bytes > limit {
		t.Fatalf("%s allocated %d MB", what, bytes>>20)
	} else {
		t.Logf("%s allocated %d KB", what, bytes>>10)
	}
}

// N subscribers of N different names coming and going cost O(N) memory:
// copying the whole name → routes table on every change allocated O(N²).
func TestRouterManyNamesIsLinear(t *testing.T) {
	const n = 4000
	var r router
	got := map[*target]int{}
	routes := make([]*route, n)
	for i := range routes {
		routes[i] = newRoute(fmt.Sprintf("user.%d.updated", i), countingTarget(got))
	}
	checkAllocated(t, fmt.Sprintf("adding and removing %d routes of different names", n), 16<<20, func() {
		for _, rt := range routes {
			r.add(rt)
		}
		for _, rt := range routes {
			r.remove(rt)
		}
	})
	if r.any("user.1.updated") {
		t.Fatal("a removed name still has a route")
	}
}
