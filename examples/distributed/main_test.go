package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/internal/exampletest"
	"github.com/netron-go/netron/internal/testredis"
)

// go-redis probes an unreachable server from a goroutine of its pool
// (tryDial) that notices the client's Close only after its next second of
// sleep; TestRedisUnreachable leaves it behind for that long.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"))
}

// check runs the example with discovery at redisAddr (in-memory if
// empty): the README shows how to run it, command, and what it prints.
func check(t *testing.T, redisAddr, command string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, slog.New(slog.DiscardHandler), redisAddr, ""); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	exampletest.CheckREADME(t, command, out.String())
}

func TestInMemory(t *testing.T) { check(t, "", "go run ./examples/distributed") }

func TestRedis(t *testing.T) {
	check(t, testredis.Start(t).Addr(), "go run ./examples/distributed -redis 127.0.0.1:6379")
}

// With Redis down the nodes start and keep running, and the program says
// plainly that they cannot find each other, then fails.
func TestRedisUnreachable(t *testing.T) {
	srv := testredis.Start(t)
	srv.Stop()
	var out, logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	err := run(context.Background(), &out, logger, srv.Addr(), "")
	if !errors.Is(err, discovery.ErrUnavailable) {
		t.Fatalf("run: %v, want ErrUnavailable\n%s", err, out.String())
	}
	for _, want := range []string{"warehouse offers inventory@1.4.0\n", "orders offers orders@1.0.0\n",
		"is unreachable: the nodes keep running and are announced when it is back"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if n := strings.Count(logs.String(), "the node runs, and is announced when discovery is back"); n != 3 {
		t.Errorf("%d warnings that a node runs without discovery, want 3:\n%s", n, logs.String())
	}
}
