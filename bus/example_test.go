package bus_test

import (
	"bytes"
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/netron-go/netron/bus"
)

type Greeting struct {
	To string
}

// Typed values travel as they are, through a channel.
func ExampleSubscribe() {
	ctx := context.Background()
	b := bus.New()
	defer b.Close()

	sub, err := bus.Subscribe[Greeting](b, "greetings", bus.WithBuffer(16))
	if err != nil {
		panic(err)
	}
	greetings := bus.NewTopic[Greeting](b, "greetings")
	for _, to := range []string{"Ada", "Grace"} {
		if err := greetings.Publish(ctx, Greeting{To: to}); err != nil {
			panic(err)
		}
	}
	sub.Close() // values already buffered are still received
	for g := range sub.C() {
		fmt.Println("hello,", g.To)
	}
	// Output:
	// hello, Ada
	// hello, Grace
}

// A subscriber that only cares about the latest values drops the oldest
// ones instead of slowing publishers down.
func ExampleWithPolicy() {
	ctx := context.Background()
	b := bus.New()
	defer b.Close()

	latest, err := bus.Subscribe[int](b, "load", bus.WithBuffer(2), bus.WithPolicy(bus.DropOldest))
	if err != nil {
		panic(err)
	}
	for v := range 5 {
		_ = bus.Publish(ctx, b, "load", v) // never waits
	}
	fmt.Println("dropped:", latest.Dropped())
	fmt.Println(<-latest.C(), <-latest.C())
	// Output:
	// dropped: 3
	// 3 4
}

// A callback runs in the publisher's goroutine; it must be quick.
func ExampleTopic_SubscribeFunc() {
	ctx := context.Background()
	b := bus.New()
	defer b.Close()

	clicks := bus.NewTopic[string](b, "clicks")
	total := 0
	unsubscribe, err := clicks.SubscribeFunc(func(_ context.Context, button string) {
		total++
		fmt.Println("clicked", button)
	})
	if err != nil {
		panic(err)
	}
	_ = clicks.Publish(ctx, "ok")
	_ = clicks.Publish(ctx, "cancel")
	unsubscribe()
	_ = clicks.Publish(ctx, "ignored")
	fmt.Println("total", total)
	// Output:
	// clicked ok
	// clicked cancel
	// total 2
}

// The Bus is a Watermill Publisher and Subscriber, so a Watermill Router
// runs on it. Typed subscribers see the Router's output too.
func Example_router() {
	ctx := context.Background()
	b := bus.New()
	defer b.Close()

	router, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		panic(err)
	}
	// A Router closes its publisher and subscriber when it stops; a Scope
	// keeps that from closing the whole Bus.
	sc := b.Scope()
	router.AddHandler("shout", "in", sc, "out", sc, func(m *message.Message) ([]*message.Message, error) {
		return []*message.Message{message.NewMessage(m.UUID, bytes.ToUpper(m.Payload))}, nil
	})
	out, err := bus.Subscribe[*message.Message](b, "out")
	if err != nil {
		panic(err)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- router.Run(ctx) }()
	<-router.Running()

	for i, word := range []string{"hello", "watermill"} {
		if err := b.Publish("in", message.NewMessage(fmt.Sprint(i), []byte(word))); err != nil {
			panic(err)
		}
	}
	for range 2 {
		m := <-out.C()
		fmt.Println(m.UUID, string(m.Payload))
	}

	_ = router.Close()
	<-stopped
	// Output:
	// 0 HELLO
	// 1 WATERMILL
}

// The drops of every topic, for a counter of your metrics: they outlive
// the subscriptions that made them.
func ExampleBus_DroppedByTopic() {
	b := bus.New()
	defer b.Close()
	ticks := bus.NewTopic[int](b, "ticks")
	sub, _ := ticks.Subscribe(bus.WithBuffer(1), bus.WithPolicy(bus.DropNewest))
	for i := range 3 {
		_ = ticks.Publish(context.Background(), i) // 1 and 2 find the buffer full
	}
	sub.Close()
	fmt.Println(b.DroppedByTopic())
	// Output: map[ticks:2]
}
