package discovery_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/discoverytest"
)

func TestMemorySuite(t *testing.T) {
	discoverytest.Run(t, func(t *testing.T, cfg discoverytest.Config) discoverytest.Cluster {
		hub := discovery.NewHub()
		return discoverytest.Cluster{
			New: func(t *testing.T) discovery.Discovery {
				return discovery.NewMemory(discovery.WithHub(hub),
					discovery.WithHeartbeat(cfg.Heartbeat), discovery.WithTTL(cfg.TTL))
			},
		}
	})
}

func TestMemoryDefaultHubIsShared(t *testing.T) {
	a, b := discovery.NewMemory(), discovery.NewMemory()
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	n := discovery.NodeInfo{ID: "default-hub-test", Address: "h:1"}
	if err := a.Register(ctx, n); err != nil {
		t.Fatal(err)
	}
	ns, err := b.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, x := range ns {
		found = found || x.ID == n.ID
	}
	if !found {
		t.Fatalf("an instance on the default hub does not see another's node: %v", ns)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	ns, _ = b.Nodes(ctx)
	for _, x := range ns {
		if x.ID == n.ID {
			t.Fatal("Close did not deregister from the default hub")
		}
	}
}

// A TTL not longer than the heartbeat becomes three heartbeats, so the
// node survives its own heartbeat period. In a synctest bubble: the
// heartbeats come on time whatever else the machine does.
func TestMemoryTTLDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub := discovery.NewHub()
		a := discovery.NewMemory(discovery.WithHub(hub), discovery.WithHeartbeat(50*time.Millisecond), discovery.WithTTL(10*time.Millisecond))
		defer a.Close()
		if err := a.Register(context.Background(), discovery.NodeInfo{ID: "n"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // twenty heartbeats
		ns, _ := a.Nodes(context.Background())
		if len(ns) != 1 {
			t.Fatalf("node expired although heartbeating: %v", ns)
		}
	})
}

func TestMemoryContextErrors(t *testing.T) {
	m := discovery.NewMemory(discovery.WithHub(discovery.NewHub()))
	defer m.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Register(ctx, discovery.NodeInfo{ID: "n"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Register with a cancelled ctx: %v", err)
	}
	if _, err := m.Nodes(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Nodes with a cancelled ctx: %v", err)
	}
}

func TestKillAfterCloseIsNoop(t *testing.T) {
	m := discovery.NewMemory(discovery.WithHub(discovery.NewHub()))
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
}
