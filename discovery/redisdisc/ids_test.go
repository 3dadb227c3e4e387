package redisdisc_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/redisdisc"
	"github.com/netron-go/netron/internal/testredis"
)

// An id held by a live node of another instance at another address is
// refused, and the refusal changes nothing; the same address is the same
// node back after a crash and takes the id over at once; a dead holder's id
// is free.
func TestNodeIDsAreUnique(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	prefix := uniquePrefix(t)
	long := []redisdisc.Option{redisdisc.WithTTL(time.Minute)}
	a, observer := newDisc(t, client, prefix, long...), newDisc(t, client, prefix, long...)
	holder := discovery.NodeInfo{ID: "n1", Address: "ws://10.0.0.1:9000/"}
	if err := a.Register(ctxT(t), holder); err != nil {
		t.Fatal(err)
	}
	waitListed(t, observer, "n1")

	b := newDisc(t, client, prefix, long...)
	err := b.Register(ctxT(t), discovery.NodeInfo{ID: "n1", Address: "ws://10.0.0.2:9000/"})
	if !errors.Is(err, discovery.ErrDuplicateID) || !strings.Contains(err.Error(), holder.Address) {
		t.Fatalf("Register of a held id: %v, want ErrDuplicateID naming %s", err, holder.Address)
	}
	if err := b.Register(ctxT(t), discovery.NodeInfo{ID: "n1"}); !errors.Is(err, discovery.ErrDuplicateID) {
		t.Fatalf("Register of a held id as a client-only node: %v", err)
	}
	ns, _ := observer.Nodes(ctxT(t))
	if len(ns) != 1 || ns[0].Address != holder.Address {
		t.Fatalf("after the refusals the observer lists %+v", ns)
	}
	// b holds nothing: closing it removes nothing.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitListed(t, observer, "n1")

	// a crashes; its node comes back at the same address within the TTL.
	if err := a.Kill(); err != nil {
		t.Fatal(err)
	}
	back := newDisc(t, client, prefix, long...)
	moved := holder
	moved.Services = []discovery.ServiceInfo{{Name: "svc", Version: "2.0.0"}}
	if err := back.Register(ctxT(t), moved); err != nil {
		t.Fatalf("the same node back at its address: %v", err)
	}
	waitNode(t, observer, moved)

	// Once a node is dead (its TTL ran out), anyone may take its id.
	short := newDisc(t, client, prefix, redisdisc.WithTTL(300*time.Millisecond))
	if err := short.Register(ctxT(t), discovery.NodeInfo{ID: "n2", Address: "ws://10.0.0.3:9000/"}); err != nil {
		t.Fatal(err)
	}
	waitListed(t, observer, "n1", "n2")
	if err := short.Kill(); err != nil {
		t.Fatal(err)
	}
	waitListed(t, observer, "n1")
	other := newDisc(t, client, prefix, long...)
	if err := other.Register(ctxT(t), discovery.NodeInfo{ID: "n2", Address: "ws://10.0.0.4:9000/"}); err != nil {
		t.Fatalf("the id of a dead node: %v", err)
	}
}

// An instance silent past its TTL whose node id was meanwhile taken by
// another instance gives the id up, with an error in its log, and never
// overwrites the new holder.
func TestSilentInstanceGivesUpATakenID(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	prefix := uniquePrefix(t)
	var logs logBuffer
	flaky := newClient(t, srv)
	h := &failHook{match: isScript(redisdisc.BeatScriptSHA)}
	flaky.AddHook(h)
	a := newDisc(t, flaky, prefix, redisdisc.WithTTL(300*time.Millisecond), redisdisc.WithLogger(logs.logger()))
	observer := newDisc(t, client, prefix)
	if err := a.Register(ctxT(t), discovery.NodeInfo{ID: "n1", Address: "ws://old:1/"}); err != nil {
		t.Fatal(err)
	}
	waitListed(t, observer, "n1")
	h.remain.Store(1 << 30) // a's heartbeats fail: it is silent
	waitListed(t, observer)
	b := newDisc(t, client, prefix, redisdisc.WithTTL(time.Minute))
	taker := discovery.NodeInfo{ID: "n1", Address: "ws://new:1/", Services: []discovery.ServiceInfo{}}
	if err := b.Register(ctxT(t), taker); err != nil {
		t.Fatal(err)
	}
	h.remain.Store(0) // a is back
	eventually(t, settle, "a gives the id up", func() string {
		if !strings.Contains(logs.String(), "no longer announces a node") {
			return "not yet"
		}
		return ""
	})
	time.Sleep(300 * time.Millisecond) // several of a's heartbeats
	waitNode(t, observer, taker)
}

func waitNode(t testing.TB, d discovery.Discovery, want discovery.NodeInfo) {
	t.Helper()
	eventually(t, settle, "node "+want.ID, func() string {
		ns, err := d.Nodes(ctxT(t))
		if err != nil {
			return err.Error()
		}
		for _, n := range ns {
			if n.ID == want.ID && n.SameDetails(want) {
				return ""
			}
		}
		return "not there or not up to date"
	})
}
