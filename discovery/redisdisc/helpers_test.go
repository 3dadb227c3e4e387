package redisdisc_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/redisdisc"
	"github.com/netron-go/netron/internal/testredis"
)

var prefixSeq atomic.Int64

// uniquePrefix returns a key prefix no other test uses.
func uniquePrefix(t testing.TB) string {
	return fmt.Sprintf("test:%d:%s", prefixSeq.Add(1), strings.ReplaceAll(t.Name(), "/", ":"))
}

// newClient returns a client for srv, closed when the test ends.
func newClient(t testing.TB, srv *testredis.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:            srv.Addr(),
		Password:        srv.Password(),
		MaxRetries:      -1, // fail fast while the server is down; the backend retries
		DialTimeout:     time.Second,
		ReadTimeout:     2 * time.Second,
		WriteTimeout:    2 * time.Second,
		ConnMaxIdleTime: time.Minute,
		// The instance bounds its round trips with contexts; go-redis
		// honours them only with this (New warns without it).
		ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// The heartbeat and TTL of the tests' instances: a live node beats 15
// times per TTL, so a loaded machine that delays some beats (redis-server
// competes for the processors too) does not make it expire.
const (
	testHeartbeat = 100 * time.Millisecond
	testTTL       = 1500 * time.Millisecond
)

// newDisc returns a started backend, closed when the test ends.
func newDisc(t testing.TB, c redis.UniversalClient, prefix string, opts ...redisdisc.Option) *redisdisc.Discovery {
	t.Helper()
	all := append([]redisdisc.Option{
		redisdisc.WithPrefix(prefix),
		redisdisc.WithHeartbeat(testHeartbeat),
		redisdisc.WithTTL(testTTL),
	}, opts...)
	d, err := redisdisc.New(c, all...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func eventually(t testing.TB, timeout time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ids(ns []discovery.NodeInfo) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.ID
	}
	return out
}
