package main

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/netron-go/netron/internal/exampletest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The README gives the command and shows what it prints.
func TestREADME(t *testing.T) {
	exampletest.Run(t, "go run ./examples/streaming", run)
}
