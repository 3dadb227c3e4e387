package transport

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/netron-go/netron/bus"
)

// Queue's contract: unless it returns an error the connection owns frame
// and calls release. A Queue whose check of the connection passed just
// before shutdown unsubscribed the writer from the outbound topic used to
// publish to a topic with nobody on it, return nil and never release: the
// inbound memory of a PING answer leaked for good (review of issue 16).
// This replays that interleaving: the writer unsubscribed, the connection
// not closed yet.
func TestQueueOwnsFrameAfterUnsubscribe(t *testing.T) {
	srvHub := NewHub(bus.New(), "server")
	defer srvHub.Close()
	srv := httptest.NewServer(srvHub)
	defer srv.Close()
	cli := NewHub(bus.New(), "client")
	defer cli.Close()
	c, err := cli.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"))
	if err != nil {
		t.Fatal(err)
	}
	frame := []byte{0, 0, 0, 1, 0x00, 0xc0}
	if !c.TryAcquire(messageCost(int64(len(frame)))) {
		t.Fatal("acquire")
	}
	var released atomic.Int32
	c.unsubOut() // what shutdown does, racing with the reader's Queue
	if err := c.Queue(context.Background(), frame, func(b []byte) { released.Add(1); c.releaseFrame(b) }); err != nil {
		t.Fatalf("Queue: %v", err)
	}
	c.Close()
	<-c.Done()
	cli.Close() // waits for the hub's goroutines: a writer in progress
	if n := released.Load(); n != 1 {
		t.Fatalf("release called %d times, want once", n)
	}
	if u := cli.Memory().Used(); u != 0 || c.MemoryUsed() != 0 {
		t.Fatalf("%d bytes of inbound memory held (%d by the connection)", u, c.MemoryUsed())
	}
}
