package rpccore

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
)

// A request that must wait for room in a full outbound queue (the peer
// does not read fast enough) fails at the request timeout like any other:
// the wait to be sent counts against it. Before, a call without a
// deadline waited for room for as long as the connection lived.
func TestRequestTimeoutWhileBacklogged(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		_ = ws.Write(r.Context(), websocket.MessageText, []byte(`{"type":"id","id":"deaf"}`))
		for { // reads what comes and answers nothing
			if _, _, err := ws.Read(r.Context()); err != nil {
				return
			}
		}
	}))
	defer srv.Close()

	b := bus.New()
	defer b.Close()
	// No write timeout: only the request timeout is at work here.
	h := transport.NewHub(b, "me", transport.WithOutboundQueue(2), transport.WithWriteTimeout(0), transport.WithKeepAlive(0, 0))
	defer h.Close()
	cl, err := NewClient(b, WithRequestTimeout(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	conn, err := h.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"))
	if err != nil {
		t.Fatal(err)
	}
	// Hold the connection's writer and fill the queue behind it, without
	// guessing from the clock: the writer runs a written packet's release
	// callback, here one that waits until the test ends, and writes
	// nothing else meanwhile.
	entered, gate := make(chan struct{}), make(chan struct{})
	defer close(gate) // first: the writer then goes on
	packet := func() []byte { return wire.AppendHeader(nil, conn.NextID(), wire.Flags(wire.TypeCall, true, 0)) }
	if err := conn.Queue(context.Background(), packet(), func([]byte) {
		close(entered)
		<-gate
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the first packet was never written")
	}
	for range 2 { // room for two: Queue returns at once
		if err := conn.Queue(context.Background(), packet(), nil); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := cl.RunTask(context.Background(), conn, "anything")
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not sent") {
			t.Fatalf("RunTask: %v, want context.DeadlineExceeded while waiting to be sent", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a call without a deadline waited for room past its request timeout")
	}
}
