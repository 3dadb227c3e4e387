package streamcore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync"
	"testing"
	"time"

	"github.com/netron-go/netron/internal/streamcore"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/peer"
	"github.com/netron-go/netron/stream"
)

func modes(t *testing.T, f func(t *testing.T, ext bool)) {
	t.Run("extension", func(t *testing.T) { f(t, true) })
	t.Run("plain", func(t *testing.T) { f(t, false) })
}

func TestRoundTrip(t *testing.T) {
	modes(t, func(t *testing.T, ext bool) {
		server, client := pair(t, ext)
		w, r := open[int](t, server, client, false)
		go func() {
			for i := range 1000 {
				if err := w.Send(context.Background(), i); err != nil {
					t.Error(err)
					return
				}
			}
			w.Close(nil)
		}()
		got, err := collect(t, r)
		if err != io.EOF || r.Err() != nil {
			t.Fatalf("end: %v, Err %v", err, r.Err())
		}
		if len(got) != 1000 {
			t.Fatalf("got %d values", len(got))
		}
		for i, v := range got {
			if v != i {
				t.Fatalf("value %d is %d", i, v)
			}
		}
		in, out := client.m.Streams(client.conn)
		if in != 0 || out != 0 {
			t.Fatalf("client still has %d/%d streams", in, out)
		}
	})
}

// A producer's error reaches the consumer after the chunks before it.
func TestProducerError(t *testing.T) {
	modes(t, func(t *testing.T, ext bool) {
		server, client := pair(t, ext)
		w, r := open[string](t, server, client, true)
		ctx := testCtx(t)
		for _, s := range []string{"a", "b", "c"} {
			if err := w.Send(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		w.Close(errors.New("disk on fire"))
		got, err := collect(t, r)
		var re *stream.RemoteError
		if !errors.As(err, &re) || re.Message != "disk on fire" || !errors.Is(err, streamcore.ErrRemote) {
			t.Fatalf("end: %v", err)
		}
		if fmt.Sprint(got) != "[a b c]" {
			t.Fatalf("got %v", got)
		}
		if !errors.Is(r.Err(), streamcore.ErrRemote) {
			t.Fatalf("Err: %v", r.Err())
		}
	})
}

// With flow control a producer sends its window and waits; the consumer's
// reads let it go on.
func TestWindowBoundsProducer(t *testing.T) {
	const window = 4096
	server, client := pair(t, true, streamcore.WithWindow(window))
	w, r := open[[]byte](t, server, client, false)
	chunk := bytes.Repeat([]byte{7}, 100)
	cost := wire.HeaderSize + 2 + len(chunk) + wire.TrailerSize // bin8 header
	want := (window + cost - 1) / cost                          // sent while credit > 0
	// The first want chunks go as soon as the consumer's grant comes, then
	// the producer waits: a Send bounded by a short deadline ends with it.
	// (Only a grant could let it through, and the consumer reads nothing.)
	ctx := testCtx(t)
	for i := range want {
		if err := w.Send(ctx, chunk); err != nil {
			t.Fatalf("chunk %d of a window of %d: %v", i, want, err)
		}
	}
	sent := want
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err := w.Send(short, chunk)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("chunk %d, past a window of %d bytes: %v, want it to wait for credit", want+1, window, err)
	}
	// The consumer catches up; the producer goes on.
	done := make(chan error, 1)
	go func() {
		for range 100 {
			if err := w.Send(ctx, chunk); err != nil {
				done <- err
				return
			}
		}
		done <- w.Close(nil)
	}()
	got, err := collect(t, r)
	if err != io.EOF || len(got) != sent+100 {
		t.Fatalf("got %d chunks, end %v", len(got), err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A channel producer is not drained while its consumer is behind: its
// sends wait.
func TestChanSourceWaitsForCredit(t *testing.T) {
	server, client := pair(t, true, streamcore.WithWindow(1024))
	o, err := server.m.NewOutbound(server.conn, true)
	if err != nil {
		t.Fatal(err)
	}
	in, err := client.m.Accept(client.conn, o.Reference())
	if err != nil {
		t.Fatal(err)
	}
	r := newReader[int](context.Background(), in)
	defer r.Close()
	ch := make(chan int)
	run(o, stream.FromChan(ch))
	// Each int chunk costs 14 bytes: ceil(1024/14) chunks go before the
	// wait; the pump takes a value only once it may send it, so the next
	// value waits. (Only a grant could let it through, and the consumer
	// reads nothing.)
	sent := 0
	for ; sent < (1024+13)/14; sent++ {
		select {
		case ch <- sent:
		case <-time.After(30 * time.Second):
			t.Fatalf("value %d not taken with a 1 KiB window", sent)
		}
	}
	select {
	case ch <- sent:
		t.Fatalf("%d values taken with a 1 KiB window", sent+1)
	case <-time.After(50 * time.Millisecond):
	}
	close(ch)
	got, err := collect(t, r)
	if err != io.EOF || len(got) != sent {
		t.Fatalf("got %d of %d, %v", len(got), sent, err)
	}
}

// A consumer that stops cancels its producer promptly.
func TestCancelStopsProducer(t *testing.T) {
	modes(t, func(t *testing.T, ext bool) {
		for _, how := range []string{"close", "break", "context"} {
			t.Run(how, func(t *testing.T) {
				server, client := pair(t, ext)
				o, err := server.m.NewOutbound(server.conn, true)
				if err != nil {
					t.Fatal(err)
				}
				in, err := client.m.Accept(client.conn, o.Reference())
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				r := newReader[int](ctx, in)
				defer r.Close()
				stopped := make(chan time.Time, 1)
				var sendErr error
				run(o, stream.FromFunc(func(ctx context.Context, w *stream.Writer[int]) error {
					defer func() { stopped <- time.Now() }()
					for i := 0; ; i++ { // forever, unless stopped
						if sendErr = w.Send(ctx, i); sendErr != nil {
							return sendErr
						}
					}
				}))
				var stop time.Time
				switch how {
				case "close":
					for range 10 {
						if _, err := r.Recv(context.Background()); err != nil {
							t.Fatal(err)
						}
					}
					stop = time.Now()
					r.Close()
				case "break":
					n := 0
					for _, err := range r.All() {
						if err != nil {
							t.Fatal(err)
						}
						if n++; n == 10 {
							stop = time.Now()
							break
						}
					}
				case "context":
					for range 10 {
						if _, err := r.Recv(context.Background()); err != nil {
							t.Fatal(err)
						}
					}
					stop = time.Now()
					cancel()
				}
				select {
				case at := <-stopped:
					d := at.Sub(stop)
					t.Logf("producer stopped %v after the consumer", d)
				case <-time.After(30 * time.Second): // nothing but the consumer's end stops it
					t.Fatal("producer still running 30 s after its consumer stopped")
				}
				if !errors.Is(sendErr, streamcore.ErrCancelled) {
					t.Fatalf("producer's Send: %v", sendErr)
				}
				if !errors.Is(context.Cause(o.Context()), streamcore.ErrCancelled) {
					t.Fatalf("producer's context: %v", context.Cause(o.Context()))
				}
				if how == "context" && !errors.Is(r.Err(), context.Canceled) {
					t.Fatalf("Err after cancel: %v", r.Err())
				}
				if how == "close" && !errors.Is(r.Err(), streamcore.ErrClosed) {
					t.Fatalf("Err after Close: %v", r.Err())
				}
			})
		}
	})
}

// A closed connection ends its streams: the consumer gets the chunks it
// has, then the disconnect error; the producer's context is cancelled.
func TestDisconnectEndsStreams(t *testing.T) {
	modes(t, func(t *testing.T, ext bool) {
		server, client := pair(t, ext)
		w, r := open[int](t, server, client, true)
		w2, r2 := open[int](t, client, server, true) // the other way too
		ctx := testCtx(t)
		for i := range 3 {
			if err := w.Send(ctx, i); err != nil {
				t.Fatal(err)
			}
		}
		if v, err := r.Recv(ctx); err != nil || v != 0 {
			t.Fatal(v, err)
		}
		waitFor(t, "the chunks to arrive", func() bool {
			in, _ := client.m.Streams(client.conn)
			return in == 1
		})
		time.Sleep(20 * time.Millisecond)
		server.conn.Close()
		got, err := collect(t, r)
		if !errors.Is(err, peer.ErrDisconnected) {
			t.Fatalf("consumer end: %v", err)
		}
		if len(got) != 2 {
			t.Logf("got %v before the disconnect", got)
		}
		if err := w.Send(ctx, 9); !errors.Is(err, peer.ErrDisconnected) {
			t.Fatalf("producer Send after disconnect: %v", err)
		}
		select {
		case <-w.Context().Done():
		case <-time.After(5 * time.Second):
			t.Fatal("producer context not cancelled")
		}
		if _, err := collect(t, r2); !errors.Is(err, peer.ErrDisconnected) {
			t.Fatalf("server consumer end: %v", err)
		}
		select {
		case <-w2.Context().Done():
		case <-time.After(5 * time.Second):
			t.Fatal("client producer context not cancelled")
		}
	})
}

func TestInactivityTimeout(t *testing.T) {
	server, client := pair(t, true, streamcore.WithInactivityTimeout(100*time.Millisecond))
	ctx := testCtx(t)
	t.Run("finite", func(t *testing.T) {
		w, r := open[int](t, server, client, false)
		if err := w.Send(ctx, 1); err != nil {
			t.Fatal(err)
		}
		got, err := collect(t, r)
		if !errors.Is(err, streamcore.ErrInactive) || len(got) != 1 {
			t.Fatalf("got %v, %v", got, err)
		}
		select {
		case <-w.Context().Done():
			if !errors.Is(context.Cause(w.Context()), streamcore.ErrCancelled) {
				t.Fatalf("producer cause %v", context.Cause(w.Context()))
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the producer of an inactive stream was not cancelled")
		}
	})
	t.Run("live", func(t *testing.T) {
		w, r := open[int](t, server, client, true)
		wait, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := r.Recv(wait)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || r.Err() != nil {
			t.Fatalf("live stream: %v, %v", err, r.Err())
		}
		w.Send(ctx, 5)
		w.Close(nil)
		got, err := collect(t, r)
		if err != io.EOF || len(got) != 1 {
			t.Fatalf("got %v, %v", got, err)
		}
	})
	// Chunks wait for a consumer that does not read: that is not
	// inactivity. They are sent before the consumer opens the stream (a
	// plain producer sends right behind the reply that announces it), so
	// the check finds them queued however late this goroutine runs.
	t.Run("slow consumer is not inactivity", func(t *testing.T) {
		server, client := pair(t, false, streamcore.WithInactivityTimeout(100*time.Millisecond))
		o, err := server.m.NewOutbound(server.conn, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := client.m.Announce(client.conn, o.Reference()); err != nil {
			t.Fatal(err)
		}
		w := newWriter[int](o)
		for i := range 3 {
			if err := w.Send(ctx, i); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "the first chunk to arrive", func() bool {
			return streamcore.Queued(client.m, client.conn, o.Reference()) > 0
		})
		in, err := client.m.Accept(client.conn, o.Reference())
		if err != nil {
			t.Fatal(err)
		}
		r := newReader[int](context.Background(), in)
		defer r.Close()
		time.Sleep(300 * time.Millisecond) // three inactivity periods pass while the chunks wait
		w.Close(nil)
		got, err := collect(t, r)
		if err != io.EOF || len(got) != 3 {
			t.Fatalf("got %v, %v", got, err)
		}
	})
}

func TestStreamLimit(t *testing.T) {
	// The client may open three: its third stream is the server's third.
	server, client := pairWith(t, true, []streamcore.Option{streamcore.WithMaxStreams(2)}, []streamcore.Option{streamcore.WithMaxStreams(3)})
	for range 2 {
		if _, err := server.m.NewOutbound(server.conn, true); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := server.m.NewOutbound(server.conn, true); !errors.Is(err, streamcore.ErrTooManyStreams) {
		t.Fatalf("third outbound: %v", err)
	}
	// The consumer side: a third stream is refused and its producer told
	// "stream-limit-reached".
	for range 2 {
		o, err := client.m.NewOutbound(client.conn, true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := server.m.Accept(server.conn, o.Reference()); err != nil {
			t.Fatal(err)
		}
	}
	o, err := client.m.NewOutbound(client.conn, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.m.Accept(server.conn, o.Reference()); !errors.Is(err, streamcore.ErrTooManyStreams) {
		t.Fatalf("third accept: %v", err)
	}
	select {
	case <-o.Context().Done():
		if !errors.Is(context.Cause(o.Context()), streamcore.ErrTooManyStreams) {
			t.Fatalf("cause %v", context.Cause(o.Context()))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the refused producer was not told")
	}
}

func TestClaimTimeout(t *testing.T) {
	server, client := pair(t, true, streamcore.WithClaimTimeout(100*time.Millisecond))
	// Announced but never opened: the consumer cancels it.
	o, err := server.m.NewOutbound(server.conn, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := client.m.Announce(client.conn, o.Reference()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-o.Context().Done():
		if !errors.Is(context.Cause(o.Context()), streamcore.ErrCancelled) {
			t.Fatalf("cause %v", context.Cause(o.Context()))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an unopened stream was not cancelled")
	}
	waitFor(t, "the unopened stream to go", func() bool {
		in, _ := client.m.Streams(client.conn)
		return in == 0
	})
	// Never announced: the producer gives up waiting for credit.
	o2, err := server.m.NewOutbound(server.conn, true)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	run(o2, stream.FromFunc(func(ctx context.Context, w *stream.Writer[int]) error {
		err := w.Send(ctx, 1)
		done <- err
		return err
	}))
	select {
	case err := <-done:
		if !errors.Is(err, streamcore.ErrNotClaimed) {
			t.Fatalf("Send: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a producer without a consumer waits forever")
	}
}

// Many streams on one connection, both ways, at once.
func TestConcurrentStreams(t *testing.T) {
	server, client := pair(t, true, streamcore.WithWindow(8<<10))
	var wg sync.WaitGroup
	for i := range 40 {
		producer, consumer := server, client
		if i%2 == 1 {
			producer, consumer = client, server
		}
		w, r := open[string](t, producer, consumer, false)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := range 500 {
				if err := w.Send(context.Background(), fmt.Sprintf("%d/%d", i, j)); err != nil {
					t.Error(err)
					return
				}
			}
			w.Close(nil)
		}()
		go func() {
			defer wg.Done()
			j := 0
			for v, err := range r.All() {
				if err != nil {
					t.Error(err)
					return
				}
				if want := fmt.Sprintf("%d/%d", i, j); v != want {
					t.Errorf("stream %d: got %s, want %s", i, v, want)
					return
				}
				j++
			}
			if j != 500 {
				t.Errorf("stream %d: %d values", i, j)
			}
		}()
	}
	wg.Wait()
}

func TestPipe(t *testing.T) {
	b, m := newLocal(t)
	_ = b
	w, r, err := pipe[int](m, false)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	go func() {
		for i := range 10000 {
			if err := w.Send(context.Background(), i); err != nil {
				t.Error(err)
				return
			}
		}
		w.Close(boom)
	}()
	n := 0
	for v := range r.C() {
		if v != n {
			t.Fatalf("got %d want %d", v, n)
		}
		n++
	}
	if n != 10000 || !errors.Is(r.Err(), boom) || !errors.Is(r.Err(), streamcore.ErrRemote) {
		t.Fatalf("%d values, Err %v", n, r.Err())
	}
	// Cancel reaches an in-process producer.
	w2, r2, err := pipe[int](m, true)
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			if err := w2.Send(context.Background(), i); err != nil {
				res <- err
				return
			}
		}
	}()
	for _, err := range r2.All() {
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	if err := <-res; !errors.Is(err, streamcore.ErrCancelled) {
		t.Fatalf("producer: %v", err)
	}
}

func TestSources(t *testing.T) {
	_, m := newLocal(t)
	seq := func(n int, fail error) iter.Seq2[int, error] {
		return func(yield func(int, error) bool) {
			for i := range n {
				if !yield(i, nil) {
					return
				}
			}
			if fail != nil {
				yield(0, fail)
			}
		}
	}
	run := func(src stream.Source) ([]int, error) { return runLocal[int](t, m, src) }
	got, err := run(stream.FromSeq(seq(5, nil)))
	if err != io.EOF || len(got) != 5 {
		t.Fatal(got, err)
	}
	got, err = run(stream.Finite(stream.FromSeq(seq(3, errors.New("bad")))))
	if !errors.Is(err, streamcore.ErrRemote) || len(got) != 3 {
		t.Fatal(got, err)
	}
	ch := make(chan int, 4)
	for i := range 4 {
		ch <- i
	}
	close(ch)
	got, err = run(stream.FromChan(ch))
	if err != io.EOF || len(got) != 4 {
		t.Fatal(got, err)
	}
	if isLive(stream.Finite(stream.FromChan(ch))) || !isLive(stream.FromChan(ch)) {
		t.Fatal("liveness")
	}
}

// Both sides number their streams from 1, so on a plain connection (where
// a consumer cancels with STREAM_CLOSE, which Titan looks up among the
// streams it reads) a cancel of the peer's stream 1 would read as the end
// of our own stream 1. While we produce a stream with that id the cancel
// is not sent: our stream goes on, whole.
func TestPlainCancelDoesNotEndOurStreamWithTheSameID(t *testing.T) {
	server, client := pair(t, false)
	down, downR := open[int](t, server, client, true) // the server's stream 1
	up, upR := open[int](t, client, server, true)     // the client's stream 1
	if down.ID() != up.ID() {
		t.Fatalf("ids %d and %d: the test needs them equal", down.ID(), up.ID())
	}
	ctx := testCtx(t)
	if err := down.Send(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := downR.Recv(ctx); err != nil {
		t.Fatal(err)
	}
	downR.Close() // the client stops reading the server's stream 1
	// A cancel sent would arrive well within this; the server must still
	// be reading the client's stream after it.
	time.Sleep(200 * time.Millisecond)
	if err := upR.Err(); err != nil {
		t.Fatalf("the client's stream 1 ended when the client cancelled the server's: %v", err)
	}
	for i := range 3 {
		if err := up.Send(ctx, i); err != nil {
			t.Fatalf("send %d on the client's stream: %v", i, err)
		}
	}
	if err := up.Close(nil); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		v, err := upR.Recv(ctx)
		if err != nil || v != i {
			t.Fatalf("the server read %v, %v from the client's stream, want %d: the cancel ended it", v, err, i)
		}
	}
	if _, err := upR.Recv(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("the client's stream ended with %v, want its EOS", err)
	}
}
