package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestRun runs every shape briefly and checks that each has its row (a
// shape that completes no round trip fails the run). It asserts nothing
// about speed.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, []string{"-duration", "50ms", "-count", "1"}, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if n := len(shapes()); n != 8 {
		t.Fatalf("%d shapes, want 8", n)
	}
	for _, s := range shapes() {
		if !strings.Contains(out.String(), "\n| "+s.String()+" | ") {
			t.Errorf("no row for %q in\n%s", s, out.String())
		}
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-duration", "0s"}, {"-count", "0"}} {
		if err := run(context.Background(), args, &bytes.Buffer{}); err == nil {
			t.Errorf("run %v: no error", args)
		}
	}
}
