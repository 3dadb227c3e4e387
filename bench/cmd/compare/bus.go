package main

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/netron-go/netron/bus"
)

// The in-process bus against Watermill's gochannel: one publisher, one
// subscriber, a sequence number in every message to check the order, the
// same window of messages in flight for all.

// busTyped: bus.NewTopic[T].Publish → a typed Subscription's channel.
func busTyped(ctx context.Context, d time.Duration) (rateResult, error) {
	b := bus.New()
	defer b.Close()
	topic := bus.NewTopic[int64](b, "bench")
	sub, err := topic.Subscribe()
	if err != nil {
		return rateResult{}, err
	}
	w := newWindow(windowSize)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for v := range sub.C() {
			w.got(v)
		}
	}()
	r, err := measureOneWay(d, w, func(seq int64) error { return topic.Publish(ctx, seq) })
	sub.Close()
	<-done
	return r, err
}

// watermillPubSub runs Watermill's Publish → Subscribe with Ack on any
// Pub/Sub: our Bus or gochannel.
func watermillPubSub(ctx context.Context, d time.Duration, pub message.Publisher, sub message.Subscriber) (rateResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := sub.Subscribe(ctx, "bench")
	if err != nil {
		return rateResult{}, err
	}
	w := newWindow(windowSize)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range ch {
			seq := int64(le.Uint64(m.Payload))
			m.Ack()
			w.got(seq)
		}
	}()
	r, err := measureOneWay(d, w, func(seq int64) error {
		p := make([]byte, 8)
		le.PutUint64(p, uint64(seq))
		return pub.Publish("bench", message.NewMessage("bench", p))
	})
	cancel()
	<-done
	return r, err
}

// busWatermill is our Bus through Watermill's interfaces.
func busWatermill(ctx context.Context, d time.Duration) (rateResult, error) {
	b := bus.New()
	defer b.Close()
	return watermillPubSub(ctx, d, b, b)
}

// goChannel is Watermill's gochannel with the same output buffer as our
// Bus's default (256).
func goChannel(ctx context.Context, d time.Duration) (rateResult, error) {
	gc := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: bus.DefaultBufferSize}, watermill.NopLogger{})
	defer gc.Close()
	return watermillPubSub(ctx, d, gc, gc)
}
