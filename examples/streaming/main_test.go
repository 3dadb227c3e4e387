package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The README gives the command and shows what it prints.
func TestREADME(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	if !strings.Contains(readme, "```sh\ngo run ./examples/streaming\n```") {
		t.Error("README.md does not give the command")
	}
	if !strings.Contains(readme, "```\n"+out.String()+"```") {
		t.Errorf("README.md does not show the output:\n%s", out.String())
	}
}
