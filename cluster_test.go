package netron_test

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/testredis"
)

// clusterLog records, per node, the cluster events it got: per source,
// the numbers in arrival order.
type clusterLog struct {
	mu    sync.Mutex
	total int
	by    map[string][]int
}

func (l *clusterLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// waitCount waits until the log has want events. 30,000 events through
// Redis under -race on a loaded machine take longer than any fixed bound
// one would pick for a quiet one, so it fails only when the count stops
// rising for 30 s, and says how far it got.
func (l *clusterLog) waitCount(t *testing.T, id string, n *netron.Node, want int) {
	t.Helper()
	last, since := -1, time.Now()
	for {
		c := l.count()
		if c >= want {
			return
		}
		if c != last {
			last, since = c, time.Now()
		}
		if time.Since(since) > 30*time.Second {
			t.Fatalf("%s saw %d of %d events and no more for 30 s; stats %+v", id, c, want, n.BusStats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recordCluster subscribes a handler to "cl:event" on n (Block: nothing
// is dropped locally) that records each event's source and number.
func recordCluster(t *testing.T, n *netron.Node) *clusterLog {
	t.Helper()
	l := &clusterLog{by: map[string][]int{}}
	on(t, n, "cl:event", func(e netron.Event) {
		var i int
		if err := e.Decode(0, &i); err != nil {
			t.Errorf("decode: %v", err)
			return
		}
		l.mu.Lock()
		l.by[e.Source] = append(l.by[e.Source], i)
		l.total++
		l.mu.Unlock()
	}, bus.WithPolicy(bus.Block))
	return l
}

// checkOrder checks that l holds, for every source, 0..each-1 in order.
func (l *clusterLog) checkOrder(t *testing.T, node string, sources []string, each int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, src := range sources {
		got := l.by[src]
		if len(got) != each {
			t.Fatalf("%s got %d events of %s, want %d", node, len(got), src, each)
		}
		for i, v := range got {
			if v != i {
				t.Fatalf("%s: event %d of %s is %d: out of order or duplicated", node, i, src, v)
			}
		}
	}
}

func redisClusterConfig(id string, srv *testredis.Server, stream string) netron.Config {
	host, portStr, _ := net.SplitHostPort(srv.Addr())
	port, _ := strconv.Atoi(portStr)
	cfg := nodeConfig(id, false)
	cfg.Discovery.Redis = netron.RedisConfig{Host: host, Port: port}
	cfg.ClusterEvents = netron.ClusterEventsConfig{Enabled: true, Topic: stream}
	return cfg
}

// emitAll emits each events "cl:event" 0..each-1 on every node at once.
func emitAll(t *testing.T, nodes []*netron.Node, each int) {
	t.Helper()
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			for i := range each {
				if err := n.Emit(context.Background(), "cl:event", i); err != nil {
					t.Errorf("%s emit %d: %v", n.ID(), i, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// Three nodes with no connection between them, 10,000 events each over
// a real Redis stream: every node sees all 30,000, each emitter's in order,
// none twice.
func TestClusterEventsRedis(t *testing.T) {
	srv := testredis.Start(t)
	const each = 10_000
	ids := []string{"n1", "n2", "n3"}
	var nodes []*netron.Node
	var logs []*clusterLog
	for _, id := range ids {
		n := startNode(t, redisClusterConfig(id, srv, "test:"+t.Name()))
		nodes = append(nodes, n)
		logs = append(logs, recordCluster(t, n))
	}
	emitAll(t, nodes, each)
	for i, l := range logs {
		l.waitCount(t, ids[i], nodes[i], 3*each)
	}
	for i, l := range logs {
		l.checkOrder(t, ids[i], ids, each)
		s := nodes[i].BusStats()
		if s.ClusterSent != each || s.ClusterReceived != 2*each || s.ClusterDuplicates != 0 || s.ClusterMissed != 0 {
			t.Errorf("%s stats %+v", ids[i], s)
		}
	}
}

// clusterPair starts nodes "a" and "b" with cluster events on srv, each
// recording what it gets; emit(from, to) emits events from..to-1 on a.
func clusterPair(t *testing.T, srv *testredis.Server) (ids []string, nodes []*netron.Node, logs []*clusterLog, emit func(from, to int)) {
	ids = []string{"a", "b"}
	for _, id := range ids {
		n := startNode(t, redisClusterConfig(id, srv, "test:"+t.Name()))
		nodes = append(nodes, n)
		logs = append(logs, recordCluster(t, n))
	}
	emit = func(from, to int) {
		for i := from; i < to; i++ {
			if err := nodes[0].Emit(context.Background(), "cl:event", i); err != nil {
				t.Fatal(err)
			}
		}
	}
	return ids, nodes, logs, emit
}

// Events emitted while Redis is down wait in the node and are published,
// in order, once it is back: the publish fails, is retried, succeeds.
func TestClusterEventsRedisDownWhilePublishing(t *testing.T) {
	srv := testredis.Start(t)
	ids, nodes, logs, emit := clusterPair(t, srv)
	emit(0, 50)
	logs[1].waitCount(t, "b", nodes[1], 50)
	srv.Stop()
	emit(50, 100)
	waitFor(t, "a publish to fail while Redis is down", func() bool { return nodes[0].BusStats().ClusterRetries > 0 })
	if s := nodes[0].BusStats(); s.ClusterSent >= 100 {
		t.Fatalf("all 100 events sent while Redis was down: %+v", s)
	}
	srv.Restart(t)
	logs[1].waitCount(t, "b", nodes[1], 100)
	logs[1].checkOrder(t, "b", ids[:1], 100)
	if s := nodes[1].BusStats(); s.ClusterMissed != 0 || s.ClusterDuplicates != 0 {
		t.Errorf("stats %+v", s)
	}
}

// A Redis restart (which loses the stream: no persistence) delays the
// events emitted meanwhile; it does not lose them.
func TestClusterEventsRedisRestart(t *testing.T) {
	srv := testredis.Start(t)
	ids, nodes, logs, emit := clusterPair(t, srv)
	emit(0, 100)
	waitFor(t, "b to get the first 100", func() bool { return logs[1].count() >= 100 })
	srv.Restart(t)
	emit(100, 200)
	waitFor(t, "b to get 200", func() bool { return logs[1].count() >= 200 })
	logs[1].checkOrder(t, "b", ids[:1], 200)
	if s := nodes[1].BusStats(); s.ClusterMissed != 0 || s.ClusterDuplicates != 0 {
		t.Errorf("stats %+v", s)
	}
}

// A message on the cluster topic that is not a cluster event is counted
// and dropped.
func TestClusterEventsForeignMessage(t *testing.T) {
	srv := testredis.Start(t)
	n := startNode(t, redisClusterConfig("solo", srv, "test:"+t.Name()))
	other := startNode(t, redisClusterConfig("other", srv, "test:"+t.Name()))
	l := recordCluster(t, n)
	// A foreign publisher on the same stream: through another node's
	// backend would need its Publisher; the Redis stream takes anything.
	_ = other
	pub := clusterPublisher(t, srv)
	if err := pub.Publish("test:"+t.Name(), message.NewMessage("foreign", []byte("hello"))); err != nil {
		t.Fatal(err)
	}
	if err := other.Emit(context.Background(), "cl:event", 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the well-formed event", func() bool { return l.count() == 1 })
	waitFor(t, "the rejection", func() bool { return n.BusStats().Rejected == 1 })
}

// clusterPublisher is a plain watermill-redisstream publisher on srv.
func clusterPublisher(t *testing.T, srv *testredis.Server) message.Publisher {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: client}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pub.Close()
		client.Close()
	})
	return pub
}

// The built-in stream stays bounded: MaxLen 100, 2,000 events.
func TestClusterEventsRedisBounded(t *testing.T) {
	srv := testredis.Start(t)
	stream := "test:" + t.Name()
	cfg := redisClusterConfig("bounded", srv, stream)
	cfg.ClusterEvents.MaxLen = 100
	n := startNode(t, cfg)
	for i := range 2000 {
		if err := n.Emit(context.Background(), "cl:event", i); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "2,000 events published", func() bool { return n.BusStats().ClusterSent == 2000 })
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer client.Close()
	// XADD MAXLEN ~ trims whole macro nodes (100 entries by default):
	// the stream holds MaxLen plus less than one node.
	if l, err := client.XLen(context.Background(), stream).Result(); err != nil || l < 100 || l > 300 {
		t.Fatalf("stream length %d, %v; want about 100", l, err)
	}
}
