package netron_test

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/bus"
)

// A call injected through Watermill: published on TopicCalls, answered on
// TopicReplies with the call's correlation id.
func ExampleNewCallMessage() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, _ := netron.New(netron.Config{ID: "calc-node"})
	_ = n.Start(ctx)
	defer n.Stop(context.Background())
	_ = n.Expose("calculator@1.0.0", Calculator{})

	replies, err := n.Bus().Scope(bus.WithPolicy(bus.Block)).Subscribe(ctx, netron.TopicReplies)
	if err != nil {
		panic(err)
	}
	call, _ := netron.NewCallMessage("calculator@1.0.0", "add", 2, 3)
	if err := n.Bus().Publish(netron.TopicCalls, call); err != nil {
		panic(err)
	}
	reply := <-replies
	reply.Ack()
	var sum float64
	err = netron.DecodeResult(reply, &sum)
	fmt.Println(sum, err, reply.Metadata.Get(netron.MetaCorrelationID) == call.UUID)
	// Output: 5 <nil> true
}

// Cluster-wide events through a Watermill Publisher and Subscriber: here
// Watermill's in-process GoChannel, shared by two nodes that have no
// connection between them; Redis Streams is the built-in backend.
func ExampleClusterEventsConfig() {
	ctx := context.Background()
	backend := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, watermill.NopLogger{})
	defer backend.Close()
	start := func(id string) *netron.Node {
		n, _ := netron.New(netron.Config{ID: id, ClusterEvents: netron.ClusterEventsConfig{
			Enabled: true, Publisher: backend, Subscriber: backend,
		}})
		if err := n.Start(ctx); err != nil {
			panic(err)
		}
		return n
	}
	a, b := start("node-a"), start("node-b")
	defer a.Stop(ctx)
	defer b.Stop(ctx)

	got := make(chan netron.Event, 1)
	sub, _ := b.On("order:created", func(e netron.Event) { got <- e })
	defer sub.Close()
	_ = a.Emit(ctx, "order:created", "A-17")
	e := <-got
	fmt.Println(e.Name, e.Args, e.Source)
	// Output: order:created [A-17] node-a
}
