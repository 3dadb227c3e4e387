package streamcore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/netron-go/netron/internal/streamcore"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/stream"
)

// goodStream runs a well-behaved stream from server to client alongside a
// test and checks at the end that it was not harmed. Without flow control
// (paced) its producer waits for each value to be read.
func goodStream(t *testing.T, server, client *side, paced ...bool) (check func()) {
	t.Helper()
	w, r := open[int](t, server, client, false)
	ack := make(chan struct{}, 1)
	done := make(chan struct{})
	var got []int
	var end error
	go func() {
		defer close(done)
		for {
			v, err := r.Recv(context.Background())
			if err != nil {
				end = err
				return
			}
			got = append(got, v)
			select {
			case ack <- struct{}{}:
			default:
			}
		}
	}()
	go func() {
		for i := range 200 {
			if w.Send(context.Background(), i) != nil {
				return
			}
			if len(paced) > 0 && paced[0] {
				select {
				case <-ack:
				case <-done:
					return
				}
			} else if i%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		w.Close(nil)
	}()
	return func() {
		t.Helper()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the good stream did not end")
		}
		if end != io.EOF || len(got) != 200 {
			t.Fatalf("the good stream was harmed: %d values, end %v", len(got), end)
		}
		for i, v := range got {
			if v != i {
				t.Fatalf("the good stream was harmed at %d: %d", i, v)
			}
		}
	}
}

// accept opens stream id on the consumer as if a reply had announced it;
// the test then plays its producer with raw frames.
func accept[T any](t *testing.T, consumer *side, id uint32) *stream.Reader[T] {
	t.Helper()
	ref := wire.StreamReference{StreamID: fmt.Sprint(id), Type: 1, PeerID: "x"}
	in, err := consumer.m.Accept(consumer.conn, ref)
	if err != nil {
		t.Fatal(err)
	}
	r := newReader[T](context.Background(), in)
	t.Cleanup(func() { r.Close() })
	return r
}

// Malformed stream traffic is rejected without a panic and without harm
// to the other streams of the connection.
func TestMalformedTraffic(t *testing.T) {
	t.Run("unknown stream id", func(t *testing.T) {
		server, client := pair(t, true)
		check := goodStream(t, server, client)
		for i := range uint32(20) {
			send(t, server.conn, chunkFrame(t, 1000+i, 0x65, "who?", 4242, i))
		}
		send(t, server.conn, eosFrame(2000, true, 4242, 20))
		check()
		if in, _ := client.m.Streams(client.conn); in != 0 {
			t.Fatalf("an unknown id created %d streams", in)
		}
	})

	t.Run("index gap", func(t *testing.T) {
		server, client := pair(t, false)
		check := goodStream(t, server, client)
		r := accept[string](t, client, 900)
		send(t, server.conn, chunkFrame(t, 1, 0x65, "a", 900, 0))
		send(t, server.conn, chunkFrame(t, 2, 0x65, "c", 900, 2))
		send(t, server.conn, chunkFrame(t, 3, 0x65, "b", 900, 1))
		got, err := collect(t, r)
		if !errors.Is(err, streamcore.ErrIndexGap) || fmt.Sprint(got) != "[a]" {
			t.Fatalf("got %v, %v", got, err)
		}
		check()
	})

	t.Run("chunk after eos", func(t *testing.T) {
		server, client := pair(t, false)
		check := goodStream(t, server, client)
		r := accept[string](t, client, 901)
		send(t, server.conn, chunkFrame(t, 1, 0x65, "a", 901, 0))
		send(t, server.conn, eosFrame(2, true, 901, 1))
		send(t, server.conn, chunkFrame(t, 3, 0x65, "late", 901, 1))
		send(t, server.conn, chunkFrame(t, 4, 0x65, "later", 901, 2))
		got, err := collect(t, r)
		if err != io.EOF || r.Err() != nil || fmt.Sprint(got) != "[a]" {
			t.Fatalf("got %v, %v, Err %v", got, err, r.Err())
		}
		check()
	})

	t.Run("chunk without credit", func(t *testing.T) {
		server, client := pair(t, true, streamcore.WithWindow(1024))
		check := goodStream(t, server, client)
		r := accept[[]byte](t, client, 902)
		payload := bytes.Repeat([]byte{1}, 100)
		for i := range uint32(30) { // 30 × 115 bytes in a 1 KiB window
			send(t, server.conn, chunkFrame(t, 10+i, 0x65, payload, 902, i))
		}
		// Read only now: reading grants more credit.
		waitFor(t, "the violation", func() bool { return r.Err() != nil })
		got, err := collect(t, r)
		if !errors.Is(err, streamcore.ErrCreditOverflow) {
			t.Fatalf("end: %v", err)
		}
		if len(got) != (1024+114)/115 {
			t.Fatalf("%d chunks accepted in a 1 KiB window", len(got))
		}
		check()
	})

	t.Run("credit overflow", func(t *testing.T) {
		server, client := pair(t, true)
		check := goodStream(t, server, client)
		o, err := server.m.NewOutbound(server.conn, true)
		if err != nil {
			t.Fatal(err)
		}
		res := make(chan error, 1)
		run(o, stream.FromFunc(func(ctx context.Context, w *stream.Writer[int]) error {
			for i := 0; ; i++ {
				if err := w.Send(ctx, i); err != nil {
					res <- err
					return err
				}
			}
		}))
		id := uint64(o.ID())
		// The raw consumer grants 4 GiB - 1 twice: more than a stream holds.
		send(t, client.conn, packetFrame(t, 1, 0x48, []any{"credit", id, uint64(0xffffffff)}))
		send(t, client.conn, packetFrame(t, 2, 0x48, []any{"credit", id, uint64(0xffffffff)}))
		select {
		case err := <-res:
			if !errors.Is(err, streamcore.ErrCreditOverflow) {
				t.Fatalf("producer: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a credit overflow went unnoticed")
		}
		check()
	})

	t.Run("oversized chunk", func(t *testing.T) {
		server, client := pair(t, true, streamcore.WithMaxChunkSize(1024))
		check := goodStream(t, server, client)
		r := accept[[]byte](t, client, 903)
		send(t, server.conn, chunkFrame(t, 1, 0x65, []byte("ok"), 903, 0))
		send(t, server.conn, chunkFrame(t, 2, 0x65, make([]byte, 2000), 903, 1))
		got, err := collect(t, r)
		if !errors.Is(err, streamcore.ErrChunkTooLarge) || len(got) != 1 {
			t.Fatalf("got %d, %v", len(got), err)
		}
		// Our own producer refuses such a value and carries on.
		w, r2 := open[[]byte](t, server, client, false)
		if err := w.Send(context.Background(), make([]byte, 2000)); !errors.Is(err, streamcore.ErrChunkTooLarge) {
			t.Fatalf("Send of an oversized value: %v", err)
		}
		w.Send(context.Background(), []byte("fine"))
		w.Close(nil)
		got, err = collect(t, r2)
		if err != io.EOF || len(got) != 1 || string(got[0]) != "fine" {
			t.Fatalf("after a refused value: %q, %v", got, err)
		}
		check()
	})

	t.Run("buffer overflow without flow control", func(t *testing.T) {
		server, client := pair(t, false, streamcore.WithMaxBuffered(10, 0))
		check := goodStream(t, server, client, true)
		r := accept[int](t, client, 904)
		for i := range uint32(12) {
			send(t, server.conn, chunkFrame(t, 10+i, 0x65, int(i), 904, i))
		}
		waitFor(t, "the overflow", func() bool { return r.Err() != nil })
		got, err := collect(t, r)
		if !errors.Is(err, streamcore.ErrBufferOverflow) || len(got) != 10 {
			t.Fatalf("got %d, %v", len(got), err)
		}
		check()
	})

	t.Run("garbage", func(t *testing.T) {
		server, client := pair(t, true)
		check := goodStream(t, server, client)
		r := accept[int](t, client, 905)
		frames := [][]byte{
			chunkFrame(t, 1, 0x65, 1, 0, 0),                                         // stream id 0
			packetFrame(t, 2, 0x48, "credit"),                                       // EXT not an array
			packetFrame(t, 3, 0x48, []any{"credit"}),                                // no id
			packetFrame(t, 4, 0x48, []any{"credit", -1, 5}),                         // negative id
			packetFrame(t, 5, 0x48, []any{"credit", 905, 0}),                        // zero credit
			packetFrame(t, 6, 0x48, []any{"credit", 905, 1.5}),                      // fractional
			packetFrame(t, 7, 0x48, []any{"cancel", 0}),                             // id 0
			packetFrame(t, 8, 0x48, []any{"cancel", 905, map[string]any{}}),         // bad reason
			packetFrame(t, 9, 0x48, []any{"event", "x", 1}),                         // someone else's
			packetFrame(t, 10, 0x48, map[string]any{"credit": 1}),                   // a map
			packetFrame(t, 11, 0x47, 5),                                             // STREAM_CLOSE not a map
			packetFrame(t, 12, 0x46, map[string]any{"streamId": "x"}),               // bad id
			packetFrame(t, 13, 0x47, map[string]any{"streamId": 777}),               // unknown stream
			packetFrame(t, 14, 0x46, map[string]any{"streamId": 1 << 40}),           // out of range
			packetFrame(t, 15, 0x48, []any{"credit", 1 << 33, 1}),                   // id out of range
			packetFrame(t, 16, 0x48, []any{"cancel", 123456, "no such"}),            // unknown stream
			packetFrame(t, 17, 0x48, []any{"credit", 905, uint64(1) << 40}),         // amount out of range
			packetFrame(t, 18, 0x48, []any{"credit", 905, 10, "extra", "x"}),        // too long
			packetFrame(t, 19, 0x48, []any{}),                                       // empty
			chunkFrame(t, 20, 0x65, map[string]any{"deep": []any{[]any{}}}, 905, 0), // not an int
		}
		for _, f := range frames {
			send(t, server.conn, f)
		}
		_, err := collect(t, r)
		if !errors.Is(err, streamcore.ErrDecode) {
			t.Fatalf("a chunk of the wrong type: %v", err)
		}
		check()
		if client.conn.Err() != nil || server.conn.Err() != nil {
			t.Fatal("garbage closed the connection")
		}
	})
}
