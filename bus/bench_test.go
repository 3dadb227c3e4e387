package bus_test

import (
	"context"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/netron-go/netron/bus"
)

// The benchmarks measure end to end: the timer stops once the subscriber
// has received (and, for Watermill, acked) all b.N messages.

var benchPayload = []byte(`{"id":42,"method":"add","args":[1,2],"pad":"0123456789abcdef"}`)

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkTyped is typed Publish -> one typed Subscription (Block, 256).
func BenchmarkTyped(b *testing.B) {
	ctx := context.Background()
	bs := bus.New()
	defer bs.Close()
	topic := bus.NewTopic[seq](bs, "t")
	sub, err := topic.Subscribe()
	if err != nil {
		b.Fatal(err)
	}
	n := b.N
	done := make(chan struct{})
	go func() {
		for range n {
			<-sub.C()
		}
		close(done)
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range n {
		if err := topic.Publish(ctx, seq{1, i}); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	reportRate(b)
}

// BenchmarkTypedFanOut4 is typed Publish -> four typed Subscriptions.
func BenchmarkTypedFanOut4(b *testing.B) {
	ctx := context.Background()
	bs := bus.New()
	defer bs.Close()
	topic := bus.NewTopic[seq](bs, "t")
	n := b.N
	var wg sync.WaitGroup
	for range 4 {
		sub, err := topic.Subscribe()
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			for range n {
				<-sub.C()
			}
		})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range n {
		if err := topic.Publish(ctx, seq{1, i}); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.StopTimer()
	reportRate(b)
}

// BenchmarkTypedParallelPublishers is GOMAXPROCS publishers -> one typed
// Subscription, all contending for the topic's lock.
func BenchmarkTypedParallelPublishers(b *testing.B) {
	ctx := context.Background()
	bs := bus.New()
	defer bs.Close()
	topic := bus.NewTopic[seq](bs, "t")
	sub, err := topic.Subscribe()
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		for range sub.C() {
		}
		close(done)
	}()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			if err := topic.Publish(ctx, seq{1, i}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	sub.Close()
	<-done
	b.StopTimer()
	reportRate(b)
}

// BenchmarkSubscribeFunc is typed Publish -> a SubscribeFunc callback.
func BenchmarkSubscribeFunc(b *testing.B) {
	ctx := context.Background()
	bs := bus.New()
	defer bs.Close()
	topic := bus.NewTopic[seq](bs, "t")
	sum := 0
	unsub, err := topic.SubscribeFunc(func(_ context.Context, v seq) { sum += v.N })
	if err != nil {
		b.Fatal(err)
	}
	defer unsub()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = topic.Publish(ctx, seq{1, i})
	}
	reportRate(b)
}

// BenchmarkPublishNoSubscribers is typed Publish to a topic nobody
// listens to.
func BenchmarkPublishNoSubscribers(b *testing.B) {
	ctx := context.Background()
	bs := bus.New()
	defer bs.Close()
	topic := bus.NewTopic[seq](bs, "nobody")
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = topic.Publish(ctx, seq{1, i})
	}
}

// BenchmarkTypedToWatermill is typed Publish (JSON-marshaled by the Bus)
// -> one Watermill subscriber that acks.
func BenchmarkTypedToWatermill(b *testing.B) {
	ctx := context.Background()
	bs := bus.New()
	defer bs.Close()
	ch, err := bs.Subscribe(ctx, "t")
	if err != nil {
		b.Fatal(err)
	}
	topic := bus.NewTopic[seq](bs, "t")
	n := b.N
	done := make(chan struct{})
	go func() {
		for range n {
			(<-ch).Ack()
		}
		close(done)
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range n {
		if err := topic.Publish(ctx, seq{1, i}); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	reportRate(b)
}

// benchWatermill is Watermill Publish -> one Watermill subscriber that
// acks every message, on any Pub/Sub.
func benchWatermill(b *testing.B, pub message.Publisher, sub message.Subscriber) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := sub.Subscribe(ctx, "t")
	if err != nil {
		b.Fatal(err)
	}
	n := b.N
	done := make(chan struct{})
	go func() {
		for range n {
			(<-ch).Ack()
		}
		close(done)
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for range n {
		if err := pub.Publish("t", message.NewMessage("id", benchPayload)); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	b.StopTimer()
	reportRate(b)
}

// BenchmarkWatermill is our Bus as a Watermill Pub/Sub.
func BenchmarkWatermill(b *testing.B) {
	bs := bus.New()
	defer bs.Close()
	benchWatermill(b, bs, bs)
}

// BenchmarkGoChannel is Watermill's own in-process Pub/Sub doing the same
// work, with the same 256-message output buffer.
func BenchmarkGoChannel(b *testing.B) {
	gc := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: bus.DefaultBufferSize}, watermill.NopLogger{})
	defer gc.Close()
	benchWatermill(b, gc, gc)
}
