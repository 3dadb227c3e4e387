package redisdisc_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/netron-go/netron/internal/testredis"
)

// Errors counts the failed round trips of an outage and Reconnects its
// end; Resyncs the re-read of a Redis that came back empty.
func TestErrorsAndReconnects(t *testing.T) {
	srv := testredis.Start(t)
	d := newDisc(t, newClient(t, srv), uniquePrefix(t))
	register(t, d, "n1")
	waitBeats(t, 1, d)
	if e, r := d.Errors(), d.Reconnects(); e != 0 || r != 0 {
		t.Fatalf("before the outage: %d errors, %d reconnects", e, r)
	}
	srv.Stop()
	eventually(t, time.Minute, "a failed heartbeat", func() string {
		if d.Errors() == 0 {
			return "no error counted"
		}
		return ""
	})
	if r := d.Reconnects(); r != 0 {
		t.Fatalf("%d reconnects while Redis is down", r)
	}
	resyncs := d.Resyncs()
	srv.Restart(t)
	eventually(t, time.Minute, "the reconnect", func() string {
		if r := d.Reconnects(); r != 1 {
			return fmt.Sprintf("%d reconnects", r)
		}
		return ""
	})
	eventually(t, time.Minute, "the resync of the empty Redis", func() string {
		if d.Resyncs() == resyncs {
			return "no resync"
		}
		return ""
	})
	waitBeats(t, 1, d)
	if r := d.Reconnects(); r != 1 {
		t.Fatalf("%d reconnects after one outage", r)
	}
}
