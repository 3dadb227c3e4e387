package rpc

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
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/peer"
)

// A request that must wait for room in a full outbound queue (the peer
// stopped reading) fails at the request timeout like any other: the wait
// to be sent counts against it. Before, a call without a deadline waited
// for room for as long as the connection lived.
func TestRequestTimeoutWhileBacklogged(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		_ = ws.Write(r.Context(), websocket.MessageText, []byte(`{"type":"id","id":"deaf"}`))
		<-release // reads nothing
	}))
	defer srv.Close()

	b := bus.New()
	defer b.Close()
	// No write timeout: only the request timeout is at work here.
	h := peer.NewHub(b, "me", peer.WithOutboundQueue(2), peer.WithWriteTimeout(0), peer.WithKeepAlive(0, 0))
	defer h.Close()
	defer func() { // first: the blocked write then fails at once
		close(release)
		srv.CloseClientConnections()
	}()
	cl, err := NewClient(b, WithRequestTimeout(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	conn, err := h.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"))
	if err != nil {
		t.Fatal(err)
	}
	// Fill the socket buffers and the queue with 1 MiB packets, until the
	// queue stays full for 50 ms: the writer is stuck.
	big := make([]byte, 1<<20)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatal("the queue never stayed full")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := conn.Queue(ctx, wire.AppendBin(wire.AppendHeader(nil, conn.NextID(), wire.Flags(wire.TypeCall, true, 0)), big), nil)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) { // it waited 50 ms for room
			break
		}
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := cl.RunTask(context.Background(), conn, "anything")
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not sent") {
			t.Fatalf("RunTask: %v, want context.DeadlineExceeded while waiting to be sent", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("failed after %v with a 300 ms timeout", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a call without a deadline waited for room past its request timeout")
	}
}
