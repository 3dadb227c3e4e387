// Package clusternats_test runs Netron's cluster-wide events over a
// second real Watermill backend: NATS JetStream through watermill-nats,
// with an embedded nats-server. It lives in the bench module, which
// already carries nats-server for the comparison programs, so that the
// root module does not depend on NATS.
package clusternats_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/bus"
)

const topic = "netron_cluster_events"

func startNATS(t *testing.T) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats-server not ready within 30 s")
	}
	t.Cleanup(s.Shutdown)
	return s.ClientURL()
}

// backend returns the Publisher and Subscriber of one node: a JetStream
// stream for the topic, a durable consumer per node (every node gets
// every message), one subscriber goroutine (in order).
func backend(t *testing.T, url, node string) (*wmnats.Publisher, *wmnats.Subscriber) {
	t.Helper()
	js := wmnats.JetStreamConfig{
		AutoProvision: true,
		TrackMsgId:    true,
		DurablePrefix: node,
		SubscribeOptions: []nats.SubOpt{
			nats.DeliverNew(),
			nats.AckExplicit(),
			// Few unacknowledged messages in flight: what waits in the
			// client counts against AckWait, and a slow machine would
			// have JetStream redeliver it (the node drops such
			// duplicates, by their sequence number).
			nats.MaxAckPending(64),
		},
	}
	pub, err := wmnats.NewPublisher(wmnats.PublisherConfig{URL: url, Marshaler: &wmnats.NATSMarshaler{}, JetStream: js}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := wmnats.NewSubscriber(wmnats.SubscriberConfig{
		URL: url, Unmarshaler: &wmnats.NATSMarshaler{}, SubscribersCount: 1,
		AckWaitTimeout: 30 * time.Second, CloseTimeout: 5 * time.Second, JetStream: js,
	}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sub.Close()
		pub.Close()
	})
	return pub, sub
}

// Three nodes, 10,000 events each, over JetStream: every node sees all
// 30,000, each emitter's in order, none twice.
func TestClusterEventsNATSJetStream(t *testing.T) {
	url := startNATS(t)
	const each = 10_000
	ids := []string{"n1", "n2", "n3"}
	var nodes []*netron.Node
	type log struct {
		mu    sync.Mutex
		total int
		by    map[string][]int
	}
	var logs []*log
	for _, id := range ids {
		pub, sub := backend(t, url, id)
		n, err := netron.New(netron.Config{ID: id, ClusterEvents: netron.ClusterEventsConfig{
			Enabled: true, Topic: topic, Publisher: pub, Subscriber: sub,
		}})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Stop(context.Background()) })
		l := &log{by: map[string][]int{}}
		if _, err := n.On("cl:event", func(e netron.Event) {
			var i int
			if err := e.Decode(0, &i); err != nil {
				t.Errorf("decode: %v", err)
				return
			}
			l.mu.Lock()
			l.by[e.Source] = append(l.by[e.Source], i)
			l.total++
			l.mu.Unlock()
		}, bus.WithPolicy(bus.Block)); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
		logs = append(logs, l)
	}
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
	for i, l := range logs {
		deadline := time.Now().Add(120 * time.Second)
		for {
			l.mu.Lock()
			total := l.total
			l.mu.Unlock()
			if total >= 3*each {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s saw %d of %d events", ids[i], total, 3*each)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for i, l := range logs {
		l.mu.Lock()
		for _, src := range ids {
			got := l.by[src]
			if len(got) != each {
				t.Fatalf("%s got %d events of %s, want %d", ids[i], len(got), src, each)
			}
			for j, v := range got {
				if v != j {
					t.Fatalf("%s: event %d of %s is %d", ids[i], j, src, v)
				}
			}
		}
		l.mu.Unlock()
		// Redeliveries (ClusterDuplicates) may happen on a loaded machine;
		// the order check above shows none reached a handler.
		if s := nodes[i].BusStats(); s.ClusterMissed != 0 || s.ClusterReceived != 2*each {
			t.Errorf("%s stats %+v", ids[i], s)
		} else if s.ClusterDuplicates > 0 {
			t.Logf("%s: %d redeliveries dropped", ids[i], s.ClusterDuplicates)
		}
	}
}
