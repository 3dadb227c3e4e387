package redisdisc_test

import (
	"strings"
	"testing"
	"time"

	"github.com/netron-go/netron/discovery/redisdisc"
	"github.com/netron-go/netron/internal/testredis"
)

// A reader that missed a change (here a leave that was never appended,
// as if trimmed before it was read) sees the next change's number jump,
// re-reads the membership, and drops the node Redis no longer has.
func TestReaderGapResyncs(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	prefix := uniquePrefix(t)
	a, b := newDisc(t, client, prefix), newDisc(t, client, prefix)
	c := newDisc(t, client, prefix, redisdisc.WithTTL(600*time.Millisecond))
	register(t, a, "n1")
	register(t, c, "n2")
	waitListed(t, b, "n1", "n2")
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	// n2 leaves Redis without an entry on the stream; its number is used.
	_, nodes, alive, meta := a.Keys()
	ctx := ctxT(t)
	if err := client.ZRem(ctx, alive, "n2").Err(); err != nil {
		t.Fatal(err)
	}
	client.HDel(ctx, nodes, "n2")
	client.HIncrBy(ctx, meta, "gen", 1)
	before := b.Resyncs()
	register(t, a, "n3")
	waitListed(t, b, "n1", "n3")
	if b.Resyncs() == before {
		t.Fatal("b dropped n2 without a resync")
	}
}

// FLUSHALL under running instances: they notice (the change numbers went
// back), re-read, and announce their nodes again; nobody is reported left.
func TestRedisFlushed(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	prefix := uniquePrefix(t)
	a, b := newDisc(t, client, prefix), newDisc(t, client, prefix)
	register(t, a, "n1")
	register(t, b, "n2")
	register(t, b, "n3")
	waitListed(t, a, "n1", "n2", "n3")
	ra, rb := record(t, a), record(t, b)
	if err := client.FlushAll(ctxT(t)).Err(); err != nil {
		t.Fatal(err)
	}
	late := func() []string { return listed(t, newDisc(t, client, prefix)) }
	eventually(t, settle, "the nodes announced again", func() string {
		if got := late(); len(got) != 3 {
			return "a new instance lists " + strings.Join(got, " ")
		}
		return ""
	})
	time.Sleep(1200 * time.Millisecond) // 3 TTLs
	if ra.left.Load() != 0 || rb.left.Load() != 0 {
		t.Fatalf("a flush made instances report live nodes left (%d, %d)", ra.left.Load(), rb.left.Load())
	}
	register(t, a, "n4")
	waitListed(t, b, "n1", "n2", "n3", "n4")
}
