package bus_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/netron-go/netron/bus"
)

// WithReadOnly refuses Watermill publishes on its topics and lets typed
// publishes through.
func TestReadOnlyTopics(t *testing.T) {
	b := bus.New(bus.WithReadOnly("internal."))
	defer b.Close()
	sub, err := bus.Subscribe[string](b, "internal.x")
	if err != nil {
		t.Fatal(err)
	}
	err = b.Publish("internal.x", message.NewMessage("1", []byte(`"hi"`)))
	if !errors.Is(err, bus.ErrReadOnly) {
		t.Fatalf("Watermill publish on a read-only topic: %v", err)
	}
	if err := b.Scope().Publish("internal.y", message.NewMessage("1", nil)); !errors.Is(err, bus.ErrReadOnly) {
		t.Fatalf("Scope publish on a read-only topic: %v", err)
	}
	if err := bus.Publish(context.Background(), b, "internal.x", "typed"); err != nil {
		t.Fatal(err)
	}
	if v := <-sub.C(); v != "typed" {
		t.Fatalf("got %q", v)
	}
	if len(sub.C()) != 0 {
		t.Fatal("the refused message was delivered")
	}
	if err := b.Publish("internal", message.NewMessage("2", nil)); err != nil {
		t.Fatalf("a topic outside the prefix: %v", err)
	}
}

// With a drop subscriber policy a Watermill subscriber that does not read
// never holds the publisher up, and its Scope counts the drops; a Scope
// that asks for Block gets backpressure.
func TestSubscriberPolicy(t *testing.T) {
	ctx := testCtx(t)
	b := bus.New(bus.WithSubscriberPolicy(bus.DropOldest), bus.WithBufferSize(4))
	defer b.Close()
	sc := b.Scope()
	ch, err := sc.Subscribe(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	for i := range n {
		if err := b.Publish("t", message.NewMessage("", []byte{byte(i)})); err != nil {
			t.Fatal(err)
		}
	}
	// One message may be in the hands of the delivery goroutine, four in
	// the buffer: the rest were dropped, the newest kept.
	if d := sc.Dropped(); d < n-5 || d > n-4 {
		t.Fatalf("dropped %d of %d", d, n)
	}
	var last byte
	for range n - int(sc.Dropped()) {
		m := <-ch
		last = m.Payload[0]
		m.Ack()
	}
	if last != n-1 {
		t.Fatalf("last delivered %d, want %d", last, n-1)
	}

	// Block, asked for: the sixth publish waits for the reader; a
	// cancelled context ends its wait.
	blk := b.Scope(bus.WithPolicy(bus.Block))
	if _, err := blk.Subscribe(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	var published int
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	for i := range 10 {
		m := message.NewMessage("", []byte{byte(i)})
		m.SetContext(cctx)
		if err := b.Publish("u", m); err != nil {
			if !errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
			break
		}
		published++
	}
	if published < 4 || published > 5 || blk.Dropped() != 0 {
		t.Fatalf("Block published %d before waiting, dropped %d", published, blk.Dropped())
	}
	if _, err := b.Scope(bus.WithBuffer(-1)).Subscribe(ctx, "v"); !errors.Is(err, bus.ErrInvalidOption) {
		t.Fatalf("negative buffer: %v", err)
	}
}

// countingMarshaler counts the typed values it converts.
type countingMarshaler struct {
	bus.JSONMarshaler
	n atomic.Int64
}

func (m *countingMarshaler) Marshal(topic string, v any) (*message.Message, error) {
	m.n.Add(1)
	return m.JSONMarshaler.Marshal(topic, v)
}

// A DropNewest subscriber with a full buffer drops a typed value without
// converting it: a stuck tap costs its publishers no marshaling.
func TestDropNewestDoesNotMarshalWhatItDrops(t *testing.T) {
	ctx := testCtx(t)
	m := &countingMarshaler{}
	b := bus.New(bus.WithMarshaler(m), bus.WithSubscriberPolicy(bus.DropNewest), bus.WithBufferSize(4))
	defer b.Close()
	sc := b.Scope()
	if _, err := sc.Subscribe(ctx, "t"); err != nil { // never read
		t.Fatal(err)
	}
	const n = 100
	for i := range n {
		if err := bus.Publish(ctx, b, "t", i); err != nil {
			t.Fatal(err)
		}
	}
	// Four in the buffer, at most one in the hands of the delivery
	// goroutine: only those were converted.
	if c := m.n.Load(); c < 4 || c > 5 {
		t.Fatalf("%d values marshaled for a subscriber that holds 4 or 5", c)
	}
	if d := sc.Dropped(); d != n-uint64(m.n.Load()) {
		t.Fatalf("dropped %d, marshaled %d, of %d", d, m.n.Load(), n)
	}
}
