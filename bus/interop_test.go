package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/netron-go/netron/bus"
)

type event struct {
	Name string `json:"name"`
	N    int    `json:"n"`
}

// picky fails to marshal when Bad is set.
type picky struct{ Bad bool }

func (p picky) MarshalJSON() ([]byte, error) {
	if p.Bad {
		return nil, errors.New("picky: bad")
	}
	return []byte(`{}`), nil
}

func TestTypedToWatermill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b := bus.New()
		defer b.Close()
		wm, err := b.Subscribe(ctx, "ev")
		if err != nil {
			t.Fatal(err)
		}
		topic := bus.NewTopic[event](b, "ev")
		for i := range 3 {
			if err := topic.Publish(ctx, event{"e", i}); err != nil {
				t.Fatal(err)
			}
		}
		seen := map[string]bool{}
		for i := range 3 {
			m := <-wm
			var got event
			if err := json.Unmarshal(m.Payload, &got); err != nil {
				t.Fatalf("payload %q: %v", m.Payload, err)
			}
			if got != (event{"e", i}) {
				t.Errorf("got %+v, want %+v", got, event{"e", i})
			}
			if m.UUID == "" || seen[m.UUID] {
				t.Errorf("UUID %q empty or repeated", m.UUID)
			}
			seen[m.UUID] = true
			if m.Context().Err() != nil {
				t.Error("delivered message's context already ended")
			}
			// The next message waits for this one's Ack.
			synctest.Wait()
			select {
			case m2 := <-wm:
				t.Fatalf("got %s before acking %s", m2.UUID, m.UUID)
			default:
			}
			m.Ack()
		}
	})
}

func TestWatermillToTyped(t *testing.T) {
	ctx := testCtx(t)
	rec := &recorder{}
	b := bus.New(bus.WithLogger(slog.New(rec)))
	defer b.Close()
	evs, err := bus.Subscribe[event](b, "ev")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := bus.Subscribe[*message.Message](b, "ev")
	if err != nil {
		t.Fatal(err)
	}
	wm, err := b.Subscribe(ctx, "ev")
	if err != nil {
		t.Fatal(err)
	}
	var fnGot []event
	unsub, err := bus.NewTopic[event](b, "ev").SubscribeFunc(func(_ context.Context, v event) {
		fnGot = append(fnGot, v)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()

	good := message.NewMessage("m1", []byte(`{"name":"x","n":7}`))
	good.Metadata.Set("k", "v")
	bad := message.NewMessage("m2", []byte(`not json`))
	if err := b.Publish("ev", good, bad); err != nil {
		t.Fatal(err)
	}

	if got := recv(t, evs.C()); got != (event{"x", 7}) {
		t.Errorf("typed subscriber got %+v", got)
	}
	if got := evs.Dropped(); got != 1 {
		t.Errorf("typed subscriber Dropped() = %d, want 1 (undecodable payload)", got)
	}
	if !slices.Equal(fnGot, []event{{"x", 7}}) {
		t.Errorf("SubscribeFunc got %+v", fnGot)
	}
	if c := rec.count(slog.LevelWarn, "conversion failed"); c < 1 {
		t.Error("no warning for the undecodable payload")
	}
	// *message.Message subscribers get the published messages themselves.
	if m := recv(t, raw.C()); m != good {
		t.Errorf("raw subscriber got %p, want the published message %p", m, good)
	}
	if m := recv(t, raw.C()); m != bad {
		t.Errorf("raw subscriber got %p, want the published message %p", m, bad)
	}
	// Watermill subscribers get their own copy, payload shared.
	m := recv(t, wm)
	if m == good || m.UUID != "m1" || m.Metadata.Get("k") != "v" {
		t.Errorf("watermill subscriber got %p %q %v, want a copy of m1", m, m.UUID, m.Metadata)
	}
	if &m.Payload[0] != &good.Payload[0] {
		t.Error("payload copied, want shared")
	}
	m.Ack()
	if m := recv(t, wm); m.UUID != "m2" {
		t.Errorf("got %q, want m2", m.UUID)
	} else {
		m.Ack()
	}
}

func TestTypedAcrossTypes(t *testing.T) {
	ctx := testCtx(t)
	b := bus.New()
	defer b.Close()
	asMap, err := bus.Subscribe[map[string]any](b, "ev")
	if err != nil {
		t.Fatal(err)
	}
	asAny, err := bus.Subscribe[any](b, "ev")
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(ctx, b, "ev", event{"y", 3}); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, asMap.C()); got["name"] != "y" || got["n"] != 3.0 {
		t.Errorf("map subscriber got %v", got)
	}
	if got := recv(t, asAny.C()); got != (event{"y", 3}) {
		t.Errorf("any subscriber got %#v, want the value itself", got)
	}

	// A *message.Message published typed reaches Watermill subscribers
	// unmarshaled.
	wm, err := b.Subscribe(ctx, "raw")
	if err != nil {
		t.Fatal(err)
	}
	orig := message.NewMessage("r1", []byte("bytes, not JSON"))
	if err := bus.Publish(ctx, b, "raw", orig); err != nil {
		t.Fatal(err)
	}
	m := recv(t, wm)
	if m.UUID != "r1" || string(m.Payload) != "bytes, not JSON" {
		t.Errorf("got %q %q, want r1 and the original payload", m.UUID, m.Payload)
	}
	m.Ack()
}

func TestMarshalFailureDropsForWatermillOnly(t *testing.T) {
	ctx := testCtx(t)
	rec := &recorder{}
	b := bus.New(bus.WithLogger(slog.New(rec)))
	defer b.Close()
	wm, err := b.Subscribe(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	typed, err := bus.Subscribe[picky](b, "p")
	if err != nil {
		t.Fatal(err)
	}
	topic := bus.NewTopic[picky](b, "p")
	if err := topic.Publish(ctx, picky{Bad: true}); err != nil {
		t.Fatalf("Publish of an unmarshalable value: %v", err)
	}
	if err := topic.Publish(ctx, picky{}); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, typed.C()); !got.Bad {
		t.Error("typed subscriber should get the value itself, no marshaling")
	}
	m := recv(t, wm)
	if string(m.Payload) != "{}" {
		t.Errorf("watermill subscriber got %q, want the good message", m.Payload)
	}
	m.Ack()
	if c := rec.count(slog.LevelWarn, "conversion failed"); c != 1 {
		t.Errorf("%d conversion warnings, want 1", c)
	}
}

func TestNackRedelivers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const delay = 250 * time.Millisecond
		b := bus.New(bus.WithRedeliveryDelay(delay))
		defer b.Close()
		wm, err := b.Subscribe(context.Background(), "t")
		if err != nil {
			t.Fatal(err)
		}
		first := message.NewMessage("1", []byte("one"))
		first.Metadata.Set("attempt", "x")
		if err := b.Publish("t", first, message.NewMessage("2", []byte("two"))); err != nil {
			t.Fatal(err)
		}
		m := <-wm
		m.Metadata.Set("attempt", "changed by the handler")
		start := time.Now()
		m.Nack()
		again := <-wm
		if d := time.Since(start); d != delay {
			t.Errorf("redelivered after %v, want %v", d, delay)
		}
		if again == m || again.UUID != "1" || string(again.Payload) != "one" || again.Metadata.Get("attempt") != "x" {
			t.Errorf("redelivery: got %p %q %q %v, want a fresh copy of message 1", again, again.UUID, again.Payload, again.Metadata)
		}
		again.Ack()
		if next := <-wm; next.UUID != "2" {
			t.Errorf("after the Ack got %q, want 2", next.UUID)
		} else {
			next.Ack()
		}
	})
}

func TestScope(t *testing.T) {
	ctx := testCtx(t)
	b := bus.New()
	defer b.Close()
	sc := b.Scope()
	ch, err := sc.Subscribe(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	keep, err := b.Subscribe(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Close(); err != nil {
		t.Fatal(err)
	}
	recvClosed(t, ch)
	if err := sc.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := sc.Subscribe(ctx, "t"); !errors.Is(err, bus.ErrClosed) {
		t.Errorf("Subscribe on a closed Scope: got %v, want ErrClosed", err)
	}
	// The Bus, and subscriptions made outside the scope, carry on.
	if err := sc.Publish("t", message.NewMessage("1", nil)); err != nil {
		t.Fatal(err)
	}
	m := recv(t, keep)
	if m.UUID != "1" {
		t.Errorf("got %q, want 1", m.UUID)
	}
	m.Ack()
}

// TestRouter runs a real Watermill Router on the Bus: a handler consumes
// "in" and produces to "out", and every message must arrive, in order, at
// both a Watermill and a typed subscriber of "out".
func TestRouter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		scope bool
	}{{"Bus", false}, {"Scope", true}} {
		t.Run(tc.name, func(t *testing.T) { testRouter(t, tc.scope) })
	}
}

func testRouter(t *testing.T, scoped bool) {
	const n = 500
	ctx := testCtx(t)
	b := bus.New(bus.WithBufferSize(8))
	defer b.Close()

	var pub message.Publisher = b
	var sub message.Subscriber = b
	if scoped {
		sc := b.Scope()
		pub, sub = sc, sc
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	router.AddHandler("double", "in", sub, "out", pub, func(m *message.Message) ([]*message.Message, error) {
		v, err := strconv.Atoi(string(m.Payload))
		if err != nil {
			return nil, err
		}
		out := message.NewMessage(watermill.NewShortUUID(), []byte(strconv.Itoa(2*v)))
		out.Metadata.Set("from", m.UUID)
		return []*message.Message{out}, nil
	})

	wm, err := b.Subscribe(ctx, "out")
	if err != nil {
		t.Fatal(err)
	}
	typed, err := bus.Subscribe[int](b, "out", bus.WithBuffer(n))
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- router.Run(ctx) }()
	select {
	case <-router.Running():
	case <-ctx.Done():
		t.Fatal("router did not start")
	}

	var consumer sync.WaitGroup
	var fromWM []int
	consumer.Go(func() {
		for len(fromWM) < n {
			m, ok := <-wm
			if !ok {
				return
			}
			if want := strconv.Itoa(len(fromWM)); m.Metadata.Get("from") != want {
				t.Errorf("message %d came from %q, want %q", len(fromWM), m.Metadata.Get("from"), want)
			}
			v, _ := strconv.Atoi(string(m.Payload))
			fromWM = append(fromWM, v)
			m.Ack()
		}
	})
	for i := range n {
		if err := b.Publish("in", message.NewMessage(strconv.Itoa(i), []byte(strconv.Itoa(i)))); err != nil {
			t.Fatal(err)
		}
	}
	consumer.Wait()
	var fromTyped []int
	for len(fromTyped) < n {
		fromTyped = append(fromTyped, recv(t, typed.C()))
	}

	want := make([]int, n)
	for i := range want {
		want[i] = 2 * i
	}
	if !slices.Equal(fromWM, want) {
		t.Errorf("watermill subscriber of out: got %v..., want 0, 2, 4, ... in order", fromWM[:min(10, len(fromWM))])
	}
	if !slices.Equal(fromTyped, want) {
		t.Errorf("typed subscriber of out: got %v..., want 0, 2, 4, ... in order", fromTyped[:min(10, len(fromTyped))])
	}

	if err := router.Close(); err != nil {
		t.Fatalf("router Close: %v", err)
	}
	if err := <-runErr; err != nil {
		t.Fatalf("router Run: %v", err)
	}
	select {
	case <-b.Done():
		if scoped {
			t.Error("closing the router closed the Bus through a Scope")
		}
	default:
		if !scoped {
			t.Error("closing the router did not close the Bus (Watermill closes its subscriber)")
		}
	}
}
