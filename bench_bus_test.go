package netron_test

import (
	"context"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/rpc"
)

// BenchmarkRPCSequentialStuckTap is BenchmarkRPCSequential with a Watermill
// Router on the server whose handlers, on the requests and the outbound
// topics, are stuck in their first message for the whole run: its figures
// beside BenchmarkRPCSequential's show what an attached tap costs (the
// marshaling of every packet into a message, then dropped), and that it
// does not hold the calls up.
func BenchmarkRPCSequentialStuckTap(b *testing.B) {
	server := startNode(b, nodeConfig("server", true))
	if err := server.Expose("calculator@1.0.0", benchCalc{}); err != nil {
		b.Fatal(err)
	}
	r, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	release := make(chan struct{})
	sc := server.Bus().Scope()
	for _, topic := range []string{netron.TopicRequests, netron.TopicOutbound} {
		r.AddNoPublisherHandler("stuck "+topic, topic, sc, func(*message.Message) error {
			<-release
			return nil
		})
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	<-r.Running()
	defer func() {
		close(release)
		r.Close()
		<-done
	}()
	client := startNode(b, nodeConfig("client", false))
	p, err := client.Connect(context.Background(), server.URL())
	if err != nil {
		b.Fatal(err)
	}
	svc, err := p.Service(context.Background(), "calculator@1.0.0")
	if err != nil {
		b.Fatal(err)
	}
	n := sequentialRoundTrips(b, func(ctx context.Context, i int) error {
		_, err := rpc.Call[int](ctx, svc, "add", i, 1)
		return err
	})
	b.ReportMetric(float64(sc.Dropped())/float64(n), "dropped/op")
}
