package netron_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/testredis"
)

// Discovery's changes on a real Redis reach the bus: typed NodeChanges and
// Watermill messages with their metadata, for a join, an update (a new
// service) and a leave.
func TestPresenceOnBus(t *testing.T) {
	srv := testredis.Start(t)
	host, portStr, _ := net.SplitHostPort(srv.Addr())
	port, _ := strconv.Atoi(portStr)
	cfg := func(id string) netron.Config {
		return netron.Config{ID: id, Host: "127.0.0.1", Server: true, Discovery: netron.DiscoveryConfig{
			Enabled: true, Redis: netron.RedisConfig{Host: host, Port: port},
			Interval: 100 * time.Millisecond, TTL: 1500 * time.Millisecond, Prefix: "test:" + t.Name(),
		}}
	}
	watcher := startNode(t, cfg("watcher"))
	changes, err := netron.Subscribe[netron.NodeChange](watcher, bus.WithPolicy(bus.Block))
	if err != nil {
		t.Fatal(err)
	}
	defer changes.Close()
	tp := startRouter(t, watcher, netron.TopicPresence)

	b := startNode(t, cfg("node-b"))
	if err := b.Expose("greeter@1.0.0", Greeter{"b"}); err != nil {
		t.Fatal(err)
	}
	next := func() netron.NodeChange {
		t.Helper()
		select {
		case c := <-changes.C():
			return c
		case <-time.After(30 * time.Second):
			t.Fatal("no presence change within 30 s")
		}
		return netron.NodeChange{}
	}
	if c := next(); c.Change != netron.ChangeJoined || c.NodeID != "node-b" || c.Address != b.URL() {
		t.Fatalf("first change %+v", c)
	}
	for {
		c := next()
		if c.Change != netron.ChangeUpdated || c.NodeID != "node-b" {
			t.Fatalf("change %+v, want an update of node-b", c)
		}
		if len(c.Services) == 1 && c.Services[0] == "greeter@1.0.0" {
			break
		}
	}
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := next(); c.Change != netron.ChangeLeft || c.NodeID != "node-b" {
		t.Fatalf("last change %+v", c)
	}
	for _, change := range []string{netron.ChangeJoined, netron.ChangeUpdated, netron.ChangeLeft} {
		m := tp.find(t, netron.TopicPresence, netron.MetaKind, netron.KindPresence, netron.MetaNode, "node-b", netron.MetaChange, change)
		var c netron.NodeChange
		if err := netron.DecodeResult(m, &c); err != nil || c.NodeID != "node-b" || c.Change != change {
			t.Fatalf("%s message: %+v, %v", change, c, err)
		}
	}
}
