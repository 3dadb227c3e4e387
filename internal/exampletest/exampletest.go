// Package exampletest checks that an example's README.md shows how to run it
// and what it prints.
package exampletest

import (
	"os"
	"strings"
	"testing"
)

// CheckREADME fails t unless README.md in the current directory has a sh
// block starting with command and a plain block holding exactly output.
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
	if !strings.Contains(readme, "```\n"+output+"```") {
		t.Errorf("README.md does not show the output:\n%s", output)
	}
}
