package netron_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"iter"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
	"github.com/netron-go/netron/stream"
)

// TitanStreamer is the streamer service of capture 2 (phases 1a-1c, 7c,
// 8b), in Go.
type TitanStreamer struct{ stopped chan struct{} }

// Square is what count yields: {i, sq}.
type Square struct {
	I  int `msgpack:"i"`
	Sq int `msgpack:"sq"`
}

func (TitanStreamer) Count(n int) iter.Seq2[Square, error] {
	return func(yield func(Square, error) bool) {
		for i := range n {
			if !yield(Square{i, i * i}, nil) {
				return
			}
		}
	}
}

func (s TitanStreamer) Slow(ctx context.Context, n int) <-chan int {
	ch := make(chan int)
	go func() {
		defer close(s.stopped)
		defer close(ch)
		for i := range n {
			select {
			case ch <- i:
			case <-ctx.Done():
				return
			}
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

// withID returns frame with its packet id replaced.
func withID(frame []byte, id uint32) []byte {
	out := bytes.Clone(frame)
	binary.BigEndian.PutUint32(out, id)
	return out
}

// Our producer's bytes to a raw client have Titan's shape, byte for byte
// but the packet ids (Titan's come from a counter shared by both of its
// peers in the capture): the reply is ext 107 {"1", writable, live,
// caller's id}, chunks are 0x65 STREAM requests with the trailer, the end
// is 0x75 with nil data and index = count (capture 2, phase 1a, #6-#10).
func TestStreamTitanProducerShape(t *testing.T) {
	server := startNode(t, netron.Config{ID: "ts-server", Host: "127.0.0.1", Server: true})
	if err := server.Expose("streamer@1.0.0", TitanStreamer{stopped: make(chan struct{})}); err != nil {
		t.Fatal(err)
	}
	raw := dialRaw(t, server.URL(), "ts-client", false)
	// #247's shape (the browser client names the service): CALL count(3).
	raw.send(unhex(t, "0000000243 93 ae73747265616d657240312e302e30 a5636f756e74 03"))
	want := []string{
		"00000002 03 c70e6b a131 01 01 a974732d636c69656e74", // #6 reply: StreamReference
		"00000003 65 82a16900a2737100 00000001 00000000",     // #7
		"00000004 65 82a16901a2737101 00000001 00000001",     // #8
		"00000005 65 82a16902a2737104 00000001 00000002",     // #9
		"00000006 75 c0 00000001 00000003",                   // #10 eos
	}
	for i, w := range want {
		p := raw.recv()
		got := p.Append(nil)
		exp := unhex(t, w)
		if i > 0 {
			exp = withID(exp, p.ID) // our own id counter
		}
		if !bytes.Equal(got, exp) {
			t.Fatalf("frame %d:\n got %x\nwant %x", i, got, exp)
		}
	}
}

// A plain consumer's STREAM_CLOSE stops our producer (Titan ignores it,
// capture 2 phase 8b #341); no end of stream follows.
func TestStreamTitanConsumerClose(t *testing.T) {
	stopped := make(chan struct{})
	server := startNode(t, netron.Config{ID: "ts-server", Host: "127.0.0.1", Server: true})
	if err := server.Expose("streamer@1.0.0", TitanStreamer{stopped: stopped}); err != nil {
		t.Fatal(err)
	}
	raw := dialRaw(t, server.URL(), "raw-client", false)
	raw.send(unhex(t, "70000010 43 93 ae73747265616d657240312e302e30 a4736c6f77 05")) // #337 slow(5)
	reply := raw.recv()
	var ref wire.StreamReference
	if err := wire.Unmarshal(reply.Data, &ref); err != nil || ref.StreamID != "1" || !ref.Live || ref.PeerID != "raw-client" {
		t.Fatalf("reply %x: %+v %v", reply.Data, ref, err)
	}
	if p := raw.recv(); p.Type() != wire.TypeStream || p.StreamIndex != 0 {
		t.Fatalf("first chunk %+v", p)
	}
	// #341 with our stream id (1 instead of 4).
	raw.send(unhex(t, "70000011 47 82 a873747265616d4964 01 a6726561736f6e af636f6e73756d65722d63616e63656c"))
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("STREAM_CLOSE from the consumer did not stop the producer")
	}
	// Nothing more but maybe a chunk in flight; never an end of stream.
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		_, msg, err := raw.ws.Read(ctx)
		cancel()
		if err != nil {
			break
		}
		p, err := wire.Decode(msg)
		if err != nil || p.EOS() || p.StreamIndex > 1 {
			t.Fatalf("after the close: %x %v", msg, err)
		}
	}
}

// fakeTitan is a Titan server made of capture 2's bytes: the id
// handshake, 404 to every task but query_interface (no abilities task),
// the Definition of streamer@1.0.0, and for each CALL what script writes.
func fakeTitan(t *testing.T, script func(ws *websocket.Conn, call wire.Packet)) (url string, received chan []byte) {
	t.Helper()
	received = make(chan []byte, 64)
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		go func() {
			select {
			case <-done:
				cancel()
			case <-ctx.Done():
			}
		}()
		if ws.Write(ctx, websocket.MessageBinary, []byte(`{"type":"id","id":"ts-server"}`)) != nil {
			return
		}
		if _, _, err := ws.Read(ctx); err != nil { // client-id
			return
		}
		def := wire.Definition{ID: "01a21b02-5d46-7924-a290-4f0d610e11a5", PeerID: "ts-server", Meta: wire.ServiceMeta{
			Name: "streamer", Version: "1.0.0", Properties: map[string]wire.PropertyMeta{},
			Methods: map[string]wire.MethodMeta{
				"count":   {Type: "void", Arguments: []wire.ArgumentMeta{{Index: 0, Type: "Number"}}},
				"failing": {Type: "void", Arguments: []wire.ArgumentMeta{}},
				"slow":    {Type: "void", Arguments: []wire.ArgumentMeta{{Index: 0, Type: "Number"}}},
			},
		}}
		for {
			_, msg, err := ws.Read(ctx)
			if err != nil {
				return
			}
			p, err := wire.Decode(msg)
			if err != nil {
				continue
			}
			switch p.Type() {
			case wire.TypeTask:
				var req []any
				wire.Unmarshal(p.Data, &req)
				name, _ := req[0].(string)
				var out []byte
				if name == "query_interface" {
					out, _ = wire.AppendMarshal(wire.AppendHeader(nil, p.ID, 0x04), def)
				} else {
					out, _ = wire.AppendMarshal(wire.AppendHeader(nil, p.ID, 0x84), wire.TitanError{
						Name: "TitanError", Code: 404, Message: "Task with id " + name + " not found",
						Details: map[string]any{"resource": "Task", "id": name},
					})
				}
				ws.Write(ctx, websocket.MessageBinary, out)
			case wire.TypeCall:
				script(ws, p)
			default:
				received <- msg
			}
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return "ws" + strings.TrimPrefix(srv.URL, "http"), received
}

// We read Titan's streams: capture 2 phase 1a (three chunks, then the
// end) and phase 1b (two chunks, then STREAM_CLOSE with the generator's
// error, which Titan's own consumer takes for a normal end and we do not).
func TestStreamReadsTitan(t *testing.T) {
	writeAll := func(ws *websocket.Conn, frames ...[]byte) {
		for _, f := range frames {
			ws.Write(context.Background(), websocket.MessageBinary, f)
		}
	}
	url, received := fakeTitan(t, func(ws *websocket.Conn, call wire.Packet) {
		var req []any
		wire.Unmarshal(call.Data, &req)
		switch req[1] {
		case "count":
			writeAll(ws,
				withID(unhex(t, "00000002 03 c70e6b a131 01 01 a974732d636c69656e74"), call.ID), // #6
				unhex(t, "00000003 65 82a16900a2737100 00000001 00000000"),                      // #7
				unhex(t, "00000004 65 82a16901a2737101 00000001 00000001"),                      // #8
				unhex(t, "00000005 65 82a16902a2737104 00000001 00000002"),                      // #9
				unhex(t, "00000006 75 c0 00000001 00000003"),                                    // #10
			)
		case "failing":
			writeAll(ws,
				withID(unhex(t, "0000000f 03 c7136b a131 01 01 ae74732d636c69656e742d6661696c"), call.ID), // #31
				unhex(t, "00000001 65 a161 00000001 00000000"),                                            // #32
				unhex(t, "00000002 65 a162 00000001 00000001"),                                            // #33
				// #38: STREAM_CLOSE {streamId: 1, reason: "generator boom"}
				unhex(t, "00000003 47 82 a873747265616d4964 01 a6726561736f6e ae67656e657261746f7220626f6f6d"),
			)
		case "slow":
			writeAll(ws,
				withID(unhex(t, "00000007 03 c70e6b a132 01 01 a974732d636c69656e74"), call.ID), // #14
				unhex(t, "00000008 65 00 00000002 00000000"),                                    // #15
				unhex(t, "00000009 65 01 00000002 00000001"),                                    // #16
			)
		}
	})
	client := startNode(t, netron.Config{ID: "ts-client"})
	ctx := streamCtx(t)
	p, err := client.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if p.IsGo() {
		t.Fatal("the fake Titan negotiated extensions")
	}
	svc, err := p.Service(ctx, "streamer@1.0.0")
	if err != nil {
		t.Fatal(err)
	}

	// Phase 1a.
	var got []Square
	for v, err := range rpc.Stream[Square](ctx, svc, "count", 3) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	if len(got) != 3 || got[2] != (Square{2, 4}) {
		t.Fatalf("count(3): %v", got)
	}

	// Phase 1b: the generator's error is not a clean end.
	var letters []string
	var end error
	for v, err := range rpc.Stream[string](ctx, svc, "failing") {
		if err != nil {
			end = err
			break
		}
		letters = append(letters, v)
	}
	if strings.Join(letters, "") != "ab" || !errors.Is(end, stream.ErrClosedByPeer) || !strings.Contains(end.Error(), "generator boom") {
		t.Fatalf("failing(): %v, %v", letters, end)
	}

	// Phase 1c: we stop early and say so with STREAM_CLOSE, as a raw
	// consumer does in #341 (Titan ignores it).
	r, err := rpc.OpenStream[int](ctx, svc, "slow", 5)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := r.Recv(ctx); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	select {
	case msg := <-received:
		want := unhex(t, "47 82 a873747265616d4964 02 a6726561736f6e af636f6e73756d65722d63616e63656c")
		if !bytes.Equal(msg[4:], want) {
			t.Fatalf("cancel sent to Titan: %x, want %x", msg[4:], want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no STREAM_CLOSE reached the producer")
	}
}
