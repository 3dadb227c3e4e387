package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/netron-go/netron/internal/exampletest"
	"github.com/netron-go/netron/internal/testredis"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// check runs the example with discovery at redisAddr (in-memory if
// empty): the README shows how to run it, command, and what it prints.
func check(t *testing.T, redisAddr, command string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, redisAddr, ""); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	exampletest.CheckREADME(t, command, out.String())
}

func TestInMemory(t *testing.T) { check(t, "", "go run ./examples/distributed") }

func TestRedis(t *testing.T) {
	check(t, testredis.Start(t).Addr(), "go run ./examples/distributed -redis 127.0.0.1:6379")
}
