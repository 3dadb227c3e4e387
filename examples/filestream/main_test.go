package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/netron-go/netron/internal/exampletest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The README shows how to run the example and what it prints.
func TestREADMEOutput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, t.TempDir(), 32<<20); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	exampletest.CheckREADME(t, "go run ./examples/filestream -size 32MiB", out.String())
}

// A file that is not a whole number of chunks arrives whole.
func TestPartialChunk(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	const size = 1<<20 + 12345 // not a multiple of the chunk size
	if err := run(ctx, &out, t.TempDir(), size); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"client download-node downloads big.bin (1060921 bytes) in 64 KiB chunks",
		"wrote 1060921 bytes to ",
		"matches the server's\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1GiB": 1 << 30, "256MiB": 256 << 20, "10KiB": 10 << 10, "7B": 7, "42": 42} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v", in, got, err)
		}
	}
	if _, err := parseSize("lots"); err == nil {
		t.Error("parseSize accepted lots")
	}
}
