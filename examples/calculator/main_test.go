package main

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/netron-go/netron/internal/exampletest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The README shows how to run the example and what it prints.
func TestRun(t *testing.T) {
	exampletest.Run(t, "go run ./examples/calculator", run)
}
