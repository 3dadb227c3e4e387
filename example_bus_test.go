package netron_test

import (
	"context"
	"fmt"

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
