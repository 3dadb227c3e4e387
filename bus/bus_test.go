package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/netron-go/netron/bus"
)

type seq struct {
	P int `json:"p"`
	N int `json:"n"`
}

// TestOrderConcurrentPublishers publishes from several goroutines at once
// and checks that every subscriber, of every kind, gets every message,
// each publisher's messages in order, and that all subscribers agree on
// one order.
func TestOrderConcurrentPublishers(t *testing.T) {
	const publishers, perPublisher = 8, 2000
	const total = publishers * perPublisher
	ctx := testCtx(t)
	b := bus.New(bus.WithBufferSize(16)) // small, so publishers block
	defer b.Close()

	topic := bus.NewTopic[seq](b, "ordered")
	const typed = 3
	subs := make([]*bus.Subscription[seq], typed)
	for i := range subs {
		var err error
		if subs[i], err = topic.Subscribe(); err != nil {
			t.Fatal(err)
		}
	}
	var fnMu sync.Mutex
	var fnGot []seq
	unsub, err := topic.SubscribeFunc(func(_ context.Context, v seq) {
		fnMu.Lock()
		fnGot = append(fnGot, v)
		fnMu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	wm, err := b.Subscribe(ctx, "ordered")
	if err != nil {
		t.Fatal(err)
	}

	got := make([][]seq, typed+1)
	var consumers sync.WaitGroup
	for i, s := range subs {
		consumers.Go(func() {
			for len(got[i]) < total {
				v, ok := <-s.C()
				if !ok {
					return
				}
				got[i] = append(got[i], v)
			}
		})
	}
	consumers.Go(func() {
		for len(got[typed]) < total {
			m, ok := <-wm
			if !ok {
				return
			}
			var v seq
			if err := json.Unmarshal(m.Payload, &v); err != nil {
				t.Errorf("watermill payload %q: %v", m.Payload, err)
			}
			m.Ack()
			got[typed] = append(got[typed], v)
		}
	})

	var pubs sync.WaitGroup
	for p := range publishers {
		pubs.Go(func() {
			for n := range perPublisher {
				if err := topic.Publish(ctx, seq{p, n}); err != nil {
					t.Errorf("publisher %d: %v", p, err)
					return
				}
			}
		})
	}
	pubs.Wait()
	consumers.Wait()

	fnMu.Lock()
	got = append(got, fnGot)
	fnMu.Unlock()
	names := []string{"typed 0", "typed 1", "typed 2", "watermill", "func"}
	for i, g := range got {
		if len(g) != total {
			t.Fatalf("%s: got %d messages, want %d", names[i], len(g), total)
		}
		next := make([]int, publishers)
		for _, v := range g {
			if v.N != next[v.P] {
				t.Fatalf("%s: publisher %d: got message %d, want %d", names[i], v.P, v.N, next[v.P])
			}
			next[v.P]++
		}
		if !slices.Equal(g, got[0]) {
			t.Errorf("%s: order differs from %s", names[i], names[0])
		}
	}
}

func TestFanOut(t *testing.T) {
	ctx := testCtx(t)
	b := bus.New()
	defer b.Close()

	// Handles with the same name share subscribers.
	h1 := bus.NewTopic[string](b, "news")
	h2 := bus.NewTopic[string](b, "news")
	s1, err := h1.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	s2, err := h2.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	s3, err := bus.Subscribe[string](b, "news")
	if err != nil {
		t.Fatal(err)
	}
	other, err := bus.Subscribe[string](b, "other")
	if err != nil {
		t.Fatal(err)
	}

	want := []string{"a", "b", "c"}
	if err := h1.Publish(ctx, want[0]); err != nil {
		t.Fatal(err)
	}
	if err := h2.Publish(ctx, want[1]); err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(ctx, b, "news", want[2]); err != nil {
		t.Fatal(err)
	}
	for i, s := range []*bus.Subscription[string]{s1, s2, s3} {
		for _, w := range want {
			if got := recv(t, s.C()); got != w {
				t.Errorf("subscriber %d: got %q, want %q", i, got, w)
			}
		}
	}
	select {
	case v := <-other.C():
		t.Errorf("other topic got %q, want nothing", v)
	default:
	}
}

func TestBlockWaitsAndHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bus.New()
		defer b.Close()
		topic := bus.NewTopic[int](b, "t")
		sub, err := topic.Subscribe(bus.WithBuffer(1), bus.WithPolicy(bus.Block))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := topic.Publish(ctx, 1); err != nil { // fills the buffer
			t.Fatal(err)
		}

		// A full Block subscriber makes the publisher wait until there is room.
		done := make(chan error, 1)
		go func() { done <- topic.Publish(ctx, 2) }()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("Publish returned %v while the subscriber was full, want it to wait", err)
		default:
		}
		if got := <-sub.C(); got != 1 {
			t.Fatalf("got %d, want 1", got)
		}
		synctest.Wait()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Publish: %v", err)
			}
		default:
			t.Fatal("Publish still blocked after the subscriber made room")
		}

		// The wait ends with the publisher's context.
		start := time.Now()
		tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		err = topic.Publish(tctx, 3)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Publish with a full subscriber: got %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d != 50*time.Millisecond {
			t.Errorf("Publish gave up after %v, want 50ms", d)
		}
		if got := <-sub.C(); got != 2 {
			t.Fatalf("got %d, want 2", got)
		}
		if n := sub.Dropped(); n != 0 {
			t.Errorf("Dropped() = %d, want 0 for Block", n)
		}
	})
}

func TestDropPolicies(t *testing.T) {
	tests := []struct {
		name   string
		policy bus.Policy
		buffer int
		want   []int
	}{
		{"DropNewest", bus.DropNewest, 4, []int{0, 1, 2, 3}},
		{"DropOldest", bus.DropOldest, 4, []int{6, 7, 8, 9}},
		{"DropNewest unbuffered", bus.DropNewest, 0, nil},
		{"DropOldest unbuffered", bus.DropOldest, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			rec := &recorder{}
			b := bus.New(bus.WithLogger(slog.New(rec)))
			defer b.Close()
			topic := bus.NewTopic[int](b, "t")
			sub, err := topic.Subscribe(bus.WithBuffer(tc.buffer), bus.WithPolicy(tc.policy), bus.WithName("slow"))
			if err != nil {
				t.Fatal(err)
			}
			const n = 10
			for i := range n {
				if err := topic.Publish(ctx, i); err != nil {
					t.Fatalf("Publish(%d): %v", i, err)
				}
			}
			if got, want := sub.Dropped(), uint64(n-len(tc.want)); got != want {
				t.Errorf("Dropped() = %d, want %d", got, want)
			}
			sub.Close()
			var got []int
			for v := range sub.C() {
				got = append(got, v)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("received %v, want %v", got, tc.want)
			}
			// Rate-limited: one warning for the whole burst.
			if c := rec.count(slog.LevelWarn, "slow consumer"); c != 1 {
				t.Errorf("%d slow-consumer warnings, want 1", c)
			}
			if v, ok := rec.attr("slow consumer", "subscription"); !ok || v.String() != "slow" {
				t.Errorf("warning names subscription %v, want slow", v)
			}
		})
	}
}

func TestDropWarningRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		b := bus.New(bus.WithLogger(slog.New(rec)))
		defer b.Close()
		topic := bus.NewTopic[int](b, "t")
		sub, err := topic.Subscribe(bus.WithBuffer(0), bus.WithPolicy(bus.DropNewest))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for range 3 {
			for i := range 100 {
				_ = topic.Publish(ctx, i)
			}
			time.Sleep(time.Second)
		}
		if got := sub.Dropped(); got != 300 {
			t.Errorf("Dropped() = %d, want 300", got)
		}
		if c := rec.count(slog.LevelWarn, "slow consumer"); c != 3 {
			t.Errorf("%d warnings over 3 s, want 3", c)
		}
	})
}

func TestCloseSemantics(t *testing.T) {
	ctx := testCtx(t)
	b := bus.New()
	topic := bus.NewTopic[int](b, "t")
	block, err := topic.Subscribe(bus.WithBuffer(4))
	if err != nil {
		t.Fatal(err)
	}
	drop, err := topic.Subscribe(bus.WithPolicy(bus.DropOldest))
	if err != nil {
		t.Fatal(err)
	}
	wm, err := b.Subscribe(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	called := 0
	if _, err := topic.SubscribeFunc(func(context.Context, int) { called++ }); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := topic.Publish(ctx, i); err != nil {
			t.Fatal(err)
		}
	}

	// Concurrent and repeated Close calls all return nil once closed.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := b.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	select {
	case <-b.Done():
	default:
		t.Error("Done not closed after Close")
	}

	// Buffered values stay readable, then the channel is closed.
	for _, s := range []*bus.Subscription[int]{block, drop} {
		var got []int
		for v := range s.C() {
			got = append(got, v)
		}
		if !slices.Equal(got, []int{0, 1}) {
			t.Errorf("after Close received %v, want [0 1]", got)
		}
	}
	// The Watermill subscription's channel is closed (the message waiting
	// for its Ack is abandoned).
	for range wm {
	}
	if called != 2 {
		t.Errorf("SubscribeFunc called %d times, want 2", called)
	}

	if err := topic.Publish(ctx, 3); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Topic.Publish after Close: got %v, want ErrClosed", err)
	}
	if err := bus.Publish(ctx, b, "t", 3); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Publish after Close: got %v, want ErrClosed", err)
	}
	if err := b.Publish("t", message.NewMessage("1", nil)); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Bus.Publish after Close: got %v, want ErrClosed", err)
	}
	if _, err := topic.Subscribe(); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Topic.Subscribe after Close: got %v, want ErrClosed", err)
	}
	if _, err := topic.SubscribeFunc(func(context.Context, int) {}); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("SubscribeFunc after Close: got %v, want ErrClosed", err)
	}
	if _, err := b.Subscribe(ctx, "t"); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Bus.Subscribe after Close: got %v, want ErrClosed", err)
	}
	// Closing a subscription after the Bus is harmless.
	if err := block.Close(); err != nil {
		t.Errorf("Subscription.Close after Bus.Close: %v", err)
	}
}

func TestCloseReleasesBlockedPublishers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bus.New()
		ctx := context.Background()
		typed := bus.NewTopic[int](b, "typed")
		if _, err := typed.Subscribe(bus.WithBuffer(0)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Subscribe(ctx, "wm"); err != nil {
			t.Fatal(err)
		}
		// Fill the Watermill subscription: one message handed out (never
		// acked) plus a full buffer.
		wmFull := bus.DefaultBufferSize + 1
		for i := range wmFull {
			if err := b.Publish("wm", message.NewMessage(fmt.Sprint(i), nil)); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()

		errs := make(chan error, 2)
		go func() { errs <- typed.Publish(ctx, 1) }()
		go func() { errs <- b.Publish("wm", message.NewMessage("last", nil)) }()
		synctest.Wait()
		select {
		case err := <-errs:
			t.Fatalf("publisher returned %v before Close, want it blocked", err)
		default:
		}
		b.Close()
		for range 2 {
			if err := <-errs; !errors.Is(err, bus.ErrClosed) {
				t.Errorf("blocked publisher: got %v, want ErrClosed", err)
			}
		}
	})
}

func TestSubscriptionClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := bus.New()
		defer b.Close()
		ctx := context.Background()
		topic := bus.NewTopic[int](b, "t")
		stuck, err := topic.Subscribe(bus.WithBuffer(0))
		if err != nil {
			t.Fatal(err)
		}
		other, err := topic.Subscribe()
		if err != nil {
			t.Fatal(err)
		}

		// A publisher blocked on a subscription moves on when it closes.
		done := make(chan error, 1)
		go func() { done <- topic.Publish(ctx, 1) }()
		synctest.Wait()
		for range 2 {
			if err := stuck.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
		if err := <-done; err != nil {
			t.Fatalf("Publish released by Subscription.Close: got %v, want nil", err)
		}
		if _, ok := <-stuck.C(); ok {
			t.Fatal("closed subscription's channel delivered a value")
		}
		if err := topic.Publish(ctx, 2); err != nil {
			t.Fatal(err)
		}
		for _, want := range []int{1, 2} {
			if got := <-other.C(); got != want {
				t.Errorf("other subscriber: got %d, want %d", got, want)
			}
		}
	})
}

func TestSubscribeFuncPanicContained(t *testing.T) {
	ctx := testCtx(t)
	rec := &recorder{}
	b := bus.New(bus.WithLogger(slog.New(rec)))
	defer b.Close()
	topic := bus.NewTopic[int](b, "t")
	var got []int
	unsub, err := topic.SubscribeFunc(func(_ context.Context, v int) {
		if v == 2 {
			panic("boom")
		}
		got = append(got, v)
	})
	if err != nil {
		t.Fatal(err)
	}
	after, err := topic.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if err := topic.Publish(ctx, i); err != nil {
			t.Fatalf("Publish(%d): %v", i, err)
		}
	}
	if !slices.Equal(got, []int{1, 3}) {
		t.Errorf("callback got %v, want [1 3]", got)
	}
	for _, want := range []int{1, 2, 3} {
		if v := recv(t, after.C()); v != want {
			t.Errorf("subscriber after the panicking callback: got %d, want %d", v, want)
		}
	}
	if c := rec.count(slog.LevelError, "panic"); c != 1 {
		t.Errorf("%d panic records, want 1", c)
	}
	if v, ok := rec.attr("panic", "panic"); !ok || v.String() != "boom" {
		t.Errorf("panic record value %v, want boom", v)
	}

	unsub()
	unsub() // idempotent
	if err := topic.Publish(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []int{1, 3}) {
		t.Errorf("callback called after unsubscribe: %v", got)
	}
}

func TestInvalidOptions(t *testing.T) {
	b := bus.New()
	defer b.Close()
	for _, opts := range [][]bus.SubOption{
		{bus.WithBuffer(-1)},
		{bus.WithPolicy(bus.Policy(7))},
	} {
		if _, err := bus.Subscribe[int](b, "t", opts...); !errors.Is(err, bus.ErrInvalidOption) {
			t.Errorf("Subscribe(%v): got %v, want ErrInvalidOption", opts, err)
		}
	}
	if _, err := bus.NewTopic[int](b, "t").SubscribeFunc(nil); !errors.Is(err, bus.ErrInvalidOption) {
		t.Errorf("SubscribeFunc(nil): got %v, want ErrInvalidOption", err)
	}
	if err := b.Publish("t", nil); !errors.Is(err, bus.ErrNilMessage) {
		t.Errorf("Publish(nil message): got %v, want ErrNilMessage", err)
	}
	if got := bus.Policy(7).String(); got != "Policy(7)" {
		t.Errorf("Policy(7).String() = %q", got)
	}
}

func TestTopicLifecycle(t *testing.T) {
	ctx := testCtx(t)
	b := bus.New()
	defer b.Close()
	h := bus.NewTopic[int](b, "t")
	if err := h.Publish(ctx, 0); err != nil {
		t.Fatalf("Publish with no subscribers: %v", err)
	}
	if n := bus.TopicCount(b); n != 0 {
		t.Fatalf("TopicCount = %d after publishing to nobody, want 0", n)
	}
	s1, err := h.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	if n := bus.TopicCount(b); n != 1 {
		t.Fatalf("TopicCount = %d with a subscriber, want 1", n)
	}
	s1.Close()
	if n := bus.TopicCount(b); n != 0 {
		t.Fatalf("TopicCount = %d after the last subscriber left, want 0", n)
	}

	// A handle whose topic went away finds the new one.
	s2, err := bus.Subscribe[int](b, "t")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Publish(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, s2.C()); got != 5 {
		t.Errorf("got %d, want 5", got)
	}
	if h.Name() != "t" {
		t.Errorf("Name() = %q, want t", h.Name())
	}

	// A Watermill subscription leaves when its context ends.
	wctx, cancel := context.WithCancel(ctx)
	wm, err := b.Subscribe(wctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	if n := bus.TopicCount(b); n != 2 {
		t.Fatalf("TopicCount = %d, want 2", n)
	}
	cancel()
	recvClosed(t, wm)
	deadline := time.Now().Add(10 * time.Second)
	for bus.TopicCount(b) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("Watermill subscription still registered after its context ended")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPublishDoesNotAllocate(t *testing.T) {
	ctx := testCtx(t)
	b := bus.New()
	defer b.Close()
	nobody := bus.NewTopic[seq](b, "nobody")
	if a := testing.AllocsPerRun(100, func() { _ = nobody.Publish(ctx, seq{1, 2}) }); a != 0 {
		t.Errorf("publish to no subscribers: %v allocs, want 0", a)
	}
	topic := bus.NewTopic[seq](b, "t")
	sub, err := topic.Subscribe(bus.WithPolicy(bus.DropOldest))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if a := testing.AllocsPerRun(1000, func() { _ = topic.Publish(ctx, seq{1, 2}) }); a != 0 {
		t.Errorf("typed publish to a typed subscriber: %v allocs, want 0", a)
	}
}

func TestDroppedByTopic(t *testing.T) {
	b := bus.New()
	defer b.Close()
	ctx := context.Background()
	full := bus.NewTopic[int](b, "full")
	sub, err := full.Subscribe(bus.WithBuffer(1), bus.WithPolicy(bus.DropNewest))
	if err != nil {
		t.Fatal(err)
	}
	other := bus.NewTopic[string](b, "other")
	osub, err := other.Subscribe(bus.WithBuffer(4))
	if err != nil {
		t.Fatal(err)
	}
	if got := b.DroppedByTopic(); len(got) != 0 {
		t.Fatalf("before any drop: %v", got)
	}
	for i := range 4 {
		if err := full.Publish(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Publish(ctx, "kept"); err != nil {
		t.Fatal(err)
	}
	// A value that does not convert to the subscriber's type is dropped too.
	if err := bus.Publish(ctx, b, "other", 7); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"full": 3, "other": 1}
	if got := b.DroppedByTopic(); !maps.Equal(got, want) {
		t.Fatalf("DroppedByTopic = %v, want %v", got, want)
	}
	// The counts outlive the subscriptions.
	sub.Close()
	osub.Close()
	if got := b.DroppedByTopic(); !maps.Equal(got, want) {
		t.Fatalf("after the subscriptions closed: %v, want %v", got, want)
	}
}
