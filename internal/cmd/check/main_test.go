package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Every step runs, and every failed one is reported, not only the first.
func TestCheckReportsEveryFailure(t *testing.T) {
	root := t.TempDir() // with a scripts/install-deps.sh that has nothing to install
	if err := os.MkdirAll(filepath.Join(root, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "scripts", "install-deps.sh"), []byte("exit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ran := make(chan string, 3)
	mk := func(name string, err error) step {
		return step{name, func(_ string, w io.Writer) error {
			ran <- name
			io.WriteString(w, name+" says why\n")
			return err
		}}
	}
	var out bytes.Buffer
	code := check(root, []step{mk("a", errors.New("broke")), mk("b", nil), mk("c", errors.New("also"))}, false, &out)
	close(ran)
	var names []string
	for n := range ran {
		names = append(names, n)
	}
	slices.Sort(names)
	if code != 1 || !slices.Equal(names, []string{"a", "b", "c"}) {
		t.Fatalf("exit %d, ran %v", code, names)
	}
	for _, want := range []string{"check: a FAILED", "a says why", "check: b ok", "check: c FAILED", "also", "check: FAILED (", "): a, c\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "b says why") {
		t.Errorf("a passing step's output printed without -v:\n%s", out.String())
	}
}

// A step of several commands runs them all, even after one failed.
func TestCommandsRunAll(t *testing.T) {
	var out bytes.Buffer
	err := commands([]string{"false"}, []string{"echo", "second"})(t.TempDir(), &out)
	if err == nil || !strings.Contains(out.String(), "second") || !strings.Contains(err.Error(), "false") {
		t.Fatalf("err %v, output %q", err, out.String())
	}
}

func TestFuzzTargets(t *testing.T) {
	root, _ := filepath.Abs(filepath.Join("..", "..", ".."))
	targets, err := fuzzTargets(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []fuzzTarget{{"./internal/wire", "FuzzDecode"}, {"./internal/transport", "FuzzParseHandshake"}, {".", "FuzzParseEvent"}} {
		if !slices.Contains(targets, want) {
			t.Errorf("%v not among %v", want, targets)
		}
	}
}

func TestDeadlineOnly(t *testing.T) {
	for out, want := range map[string]bool{
		"--- FAIL: FuzzX\n    context deadline exceeded\nFAIL":                        true,
		"context deadline exceeded\nFailing input written to testdata/fuzz/FuzzX/abc": false,
		"panic: boom\ncontext deadline exceeded":                                      false,
		"--- FAIL: FuzzX\n    index out of range":                                     false,
	} {
		if got := deadlineOnly(out); got != want {
			t.Errorf("deadlineOnly(%q) = %v", out, got)
		}
	}
}
