// Package exampletest checks that an example's README.md shows how to run it
// and what it prints.
package exampletest

import (
	"bytes"
	"context"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Run runs an example's run function, within a generous bound, and checks
// its README against what it printed (CheckREADME).
func Run(t testing.TB, command string, run func(context.Context, io.Writer) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out); err != nil {
		t.Fatal(err)
	}
	CheckREADME(t, command, out.String())
}

// CheckREADME fails t unless README.md in the current directory has a sh
// block starting with command and a plain block (a fence without a
// language) holding exactly output. In the README's block, … stands for
// text that changes from run to run (a port, a path, a duration), within
// a line.
func CheckREADME(t testing.TB, command, output string) {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	if !strings.Contains(readme, "```sh\n"+command+"\n") {
		t.Errorf("README.md does not give the command %q", command)
	}
	for _, block := range plainBlocks(readme) {
		if Matches(block, output) {
			return
		}
	}
	t.Errorf("README.md does not show the output (in a ``` block, … for what changes):\n%s", output)
}

// plainBlocks returns the contents of the blocks fenced by ``` without a
// language, each line ending in a newline.
func plainBlocks(md string) []string {
	var out []string
	var cur *strings.Builder
	inOther := false
	for _, line := range strings.Split(md, "\n") {
		switch {
		case cur != nil && line == "```":
			out = append(out, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		case inOther && line == "```":
			inOther = false
		case inOther:
		case line == "```":
			cur = new(strings.Builder)
		case strings.HasPrefix(line, "```"):
			inOther = true
		}
	}
	return out
}

// Matches reports whether output is what block shows, … in block standing
// for any text within a line.
func Matches(block, output string) bool {
	parts := strings.Split(block, "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(`^` + strings.Join(parts, `[^\n]*`) + `$`).MatchString(output)
}
