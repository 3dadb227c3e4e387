package rpc

import "testing"

// Packet ids wrap after 2³²: a request still pending when its id comes
// round again keeps it, and the new request takes the next free id. A
// request that gives up removes only its own entry.
func TestPendingIDsAfterWrap(t *testing.T) {
	ps := &pendingSet{calls: make(map[uint32]chan response)}
	ids := []uint32{7, 8, 7, 8, 9}
	next := func() uint32 { id := ids[0]; ids = ids[1:]; return id }
	old1, old2, fresh := make(chan response, 1), make(chan response, 1), make(chan response, 1)
	if id, ok := ps.reserve(next, old1); !ok || id != 7 {
		t.Fatalf("first: %d %v", id, ok)
	}
	if id, ok := ps.reserve(next, old2); !ok || id != 8 {
		t.Fatalf("second: %d %v", id, ok)
	}
	// The counter wrapped: 7 and 8 again, both still pending.
	id, ok := ps.reserve(next, fresh)
	if !ok || id != 9 {
		t.Fatalf("after the wrap: id %d (%v), want 9, the first free one", id, ok)
	}
	if ps.calls[7] != old1 || ps.calls[8] != old2 || ps.calls[9] != fresh {
		t.Fatal("a pending request lost its entry")
	}
	c := &Client{}
	c.forget(ps, 9, old1) // a stale channel removes nothing
	if ps.calls[9] != fresh {
		t.Fatal("forget with another request's channel removed its entry")
	}
	c.forget(ps, 7, old1)
	if _, ok := ps.calls[7]; ok {
		t.Fatal("forget did not remove its own entry")
	}
	ps.closed = true
	if _, ok := ps.reserve(func() uint32 { return 1 }, fresh); ok {
		t.Fatal("reserve on a closed connection")
	}
}
