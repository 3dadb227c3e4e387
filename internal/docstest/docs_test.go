//go:build unix

package docstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The conventions below are documented in docs/testing.md; keep the two
// in step.

// docFiles are the documents whose blocks the test runs and checks.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{filepath.Join(root(t), "README.md")}
	for _, pattern := range []string{"docs/*.md", "examples/*/README.md"} {
		more, err := filepath.Glob(filepath.Join(root(t), pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, more...)
	}
	return files
}

// A block is a fenced code block of a document.
type block struct {
	file string // relative to the repository
	line int    // of the opening fence
	lang string // the fence's info string: sh, console, go, text, …
	body []string
	skip string // the reason given by <!-- docs-test: skip REASON --> before the block
}

func (b block) String() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

var (
	fence  = regexp.MustCompile("^```\\s*([A-Za-z0-9_+-]*)\\s*$")
	marker = regexp.MustCompile(`^<!--\s*docs-test:\s*(.*?)\s*-->$`)
)

// blocks reads the fenced blocks of a Markdown file. A fence must start
// its line; a docs-test comment applies to the block right after it
// (blank lines between are allowed).
func blocks(t *testing.T, path string) []block {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(root(t), path)
	var out []block
	var cur *block
	pending := ""
	for i, line := range strings.Split(string(data), "\n") {
		if cur != nil {
			if strings.TrimSpace(line) == "```" {
				out = append(out, *cur)
				cur = nil
				continue
			}
			cur.body = append(cur.body, line)
			continue
		}
		if m := fence.FindStringSubmatch(line); m != nil {
			cur = &block{file: rel, line: i + 1, lang: m[1]}
			if pending != "" {
				reason, ok := strings.CutPrefix(pending, "skip")
				if !ok || strings.TrimSpace(reason) == "" {
					t.Errorf("%s:%d: unknown docs-test marker %q (want: skip REASON)", rel, i, pending)
				}
				cur.skip = strings.TrimSpace(reason)
			}
			pending = ""
			continue
		}
		if m := marker.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			pending = m[1]
		} else if strings.TrimSpace(line) != "" {
			pending = ""
		}
	}
	if cur != nil {
		t.Errorf("%s:%d: block never closed", rel, cur.line)
	}
	return out
}

// shellLangs run as scripts; console blocks are transcripts.
var shellLangs = map[string]bool{"sh": true, "bash": true, "shell": true, "console": true}

// A command of a shell block.
type command struct {
	text       string // as written, without the "$ " of a transcript
	line       int
	background bool    // ends in &: it runs while the block goes on
	expect     *string // the output it must print (a transcript's, or after → in a sh block's comment)
	skip       string  // why it does not run
}

// testCommand is the README's test command: it runs this test, so this
// test does not run it.
const testCommand = "go run ./internal/cmd/check"

// commands splits a shell block into its commands.
func commands(b block) []command {
	var cmds []command
	lines := b.body
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if b.lang == "console" {
			text, ok := strings.CutPrefix(line, "$ ")
			if !ok {
				continue // output of the previous command, read below
			}
			start := i
			for strings.HasSuffix(text, "\\") && i+1 < len(lines) {
				i++
				text += "\n" + lines[i]
			}
			var out []string
			for i+1 < len(lines) && !strings.HasPrefix(lines[i+1], "$ ") {
				i++
				out = append(out, lines[i])
			}
			for len(out) > 0 && strings.TrimSpace(out[len(out)-1]) == "" {
				out = out[:len(out)-1]
			}
			c := command{text: text, line: b.line + 1 + start}
			c.background = isBackground(text)
			if !c.background { // what a background command prints is not compared
				exp := strings.Join(out, "\n")
				c.expect = &exp
			}
			cmds = append(cmds, c)
			continue
		}
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		start := i
		text := line
		for strings.HasSuffix(strings.TrimRight(text, " "), "\\") && i+1 < len(lines) {
			i++
			text += "\n" + lines[i]
		}
		c := command{text: text, line: b.line + 1 + start, background: isBackground(text)}
		if _, comment, ok := cutComment(text); ok {
			if _, exp, ok := strings.Cut(comment, "→"); ok {
				e := strings.TrimSpace(exp)
				c.expect = &e
			}
		}
		cmds = append(cmds, c)
	}
	for i := range cmds {
		if strings.HasPrefix(cmds[i].text, testCommand) {
			cmds[i].skip = "the test command runs this test"
		}
	}
	return cmds
}

// cutComment splits a command line at the # that starts its comment: one
// at the start of a word, outside quotes.
func cutComment(s string) (code, comment string, ok bool) {
	var quote rune
	for i, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t'):
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func isBackground(text string) bool {
	code, _, _ := cutComment(text)
	code = strings.TrimSpace(code)
	return strings.HasSuffix(code, "&") && !strings.HasSuffix(code, "&&")
}

// TestShellBlocks runs every sh, bash, shell and console block of the
// documents, one after the other, each in a shell of its own started in
// the repository's root, with the netron command (built from cmd/netron)
// on the PATH. A block's commands must succeed (sh) or print what the
// transcript shows (console); what they start in the background is
// stopped when the block ends.
func TestShellBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the docs test runs go, builds and starts nodes")
	}
	env := environment(t)
	for _, file := range docFiles(t) {
		for _, b := range blocks(t, file) {
			if !shellLangs[b.lang] {
				continue
			}
			t.Run(b.String(), func(t *testing.T) {
				if b.skip != "" {
					t.Skipf("not run (docs-test: skip %s)", b.skip)
				}
				runBlock(t, b, env)
			})
		}
	}
}

// environment is the test's environment without NETRON_ variables, with a
// fresh netron command first on the PATH and go install putting commands
// next to it.
func environment(t *testing.T) []string {
	t.Helper()
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "netron"), "./cmd/netron")
	build.Dir = root(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/netron: %v\n%s", err, out)
	}
	var env []string
	for _, kv := range os.Environ() {
		switch k, v, _ := strings.Cut(kv, "="); {
		case strings.HasPrefix(k, "NETRON_"), k == "GOBIN":
		case k == "PATH":
			env = append(env, "PATH="+bin+string(os.PathListSeparator)+v)
		default:
			env = append(env, kv)
		}
	}
	return append(env, "GOBIN="+bin)
}

// blockTimeout bounds one block: an upper bound for a hung command, far
// above what any block takes.
const blockTimeout = 5 * time.Minute

func runBlock(t *testing.T, b block, env []string) {
	cmds := commands(b)
	dir := t.TempDir()
	var script strings.Builder
	script.WriteString("set -u\n")
	for i, c := range cmds {
		if c.skip != "" {
			t.Logf("%s:%d: not run (%s): %s", b.file, c.line, c.skip, c.text)
			continue
		}
		out := filepath.Join(dir, strconv.Itoa(i))
		errOut := out + ".err"
		if b.lang == "console" || c.background {
			errOut = "&1"
		}
		fmt.Fprintf(&script, "{\n%s\n} >%q 2>%s\n", c.text, out+".out", quoteRedirect(errOut))
		if c.background {
			continue
		}
		fmt.Fprintf(&script, "echo $? >%q\n", out+".rc")
		if b.lang != "console" {
			fmt.Fprintf(&script, "[ \"$(cat %q)\" = 0 ] || exit 97\n", out+".rc")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), blockTimeout)
	defer cancel()
	sh := exec.CommandContext(ctx, "bash", "-c", script.String())
	sh.Dir = root(t)
	sh.Env = env
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log, err := os.Create(filepath.Join(dir, "shell.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	sh.Stdout, sh.Stderr = log, log // a file, not a pipe: background commands may keep it open
	sh.Cancel = func() error { return syscall.Kill(-sh.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	runErr := sh.Run()
	if sh.Process != nil {
		stopGroup(t, sh.Process.Pid)
	}
	t.Logf("%s: %d commands in %v", b, len(cmds), time.Since(start).Round(time.Millisecond))
	if ctx.Err() != nil {
		t.Errorf("%s: the block did not end within %v", b, blockTimeout)
	}
	failed := false
	for i, c := range cmds {
		if c.skip != "" || c.background {
			continue
		}
		base := filepath.Join(dir, strconv.Itoa(i))
		rc, err := os.ReadFile(base + ".rc")
		if err != nil {
			if !failed {
				t.Errorf("%s:%d: not run (a command before it failed): %s", b.file, c.line, c.text)
			}
			failed = true
			continue
		}
		stdout, _ := os.ReadFile(base + ".out")
		stderr, _ := os.ReadFile(base + ".err")
		code := strings.TrimSpace(string(rc))
		if b.lang != "console" && code != "0" {
			t.Errorf("%s:%d: exit %s: %s\nstdout:\n%s\nstderr:\n%s", b.file, c.line, code, c.text, stdout, stderr)
			failed = true
			continue
		}
		if c.expect != nil && !matches(*c.expect, string(stdout)) {
			t.Errorf("%s:%d: %s\nprinted:\n%s\nthe document shows:\n%s%s", b.file, c.line, c.text, stdout, *c.expect, stderrNote(stderr))
			failed = true
		}
	}
	if failed || (runErr != nil && !isExit97(runErr)) {
		if runErr != nil && !isExit97(runErr) {
			t.Errorf("%s: the shell: %v", b, runErr)
		}
		logOutputs(t, dir, cmds)
	}
}

func quoteRedirect(s string) string {
	if s == "&1" {
		return s
	}
	return strconv.Quote(s)
}

func isExit97(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.ExitCode() == 97
}

func stderrNote(stderr []byte) string {
	if len(stderr) == 0 {
		return ""
	}
	return "\nstderr:\n" + string(stderr)
}

// logOutputs logs what the background commands and the shell printed.
func logOutputs(t *testing.T, dir string, cmds []command) {
	t.Helper()
	for i, c := range cmds {
		if c.background {
			out, _ := os.ReadFile(filepath.Join(dir, strconv.Itoa(i)+".out"))
			t.Logf("background %q printed:\n%s", c.text, out)
		}
	}
	if out, _ := os.ReadFile(filepath.Join(dir, "shell.log")); len(out) > 0 {
		t.Logf("the shell printed:\n%s", out)
	}
}

// matches reports whether out is what the document shows: line by line,
// trailing spaces and blank lines aside, where … stands for any text
// within a line and a line of … alone for any number of lines.
func matches(want, out string) bool {
	var re strings.Builder
	re.WriteString(`^`)
	for _, line := range strings.Split(strings.TrimRight(want, "\n "), "\n") {
		line = strings.TrimRight(line, " ")
		if strings.TrimSpace(line) == "…" {
			re.WriteString(`(?:[^\n]*\n)*?`)
			continue
		}
		parts := strings.Split(line, "…")
		for i, p := range parts {
			parts[i] = regexp.QuoteMeta(p)
		}
		re.WriteString(strings.Join(parts, `[^\n]*`))
		re.WriteString(`[ \t]*\n`)
	}
	re.WriteString(`$`)
	var got strings.Builder
	for _, line := range strings.Split(strings.TrimRight(out, "\n "), "\n") {
		got.WriteString(strings.TrimRight(line, " \t"))
		got.WriteString("\n")
	}
	if strings.TrimSpace(want) == "" {
		return strings.TrimSpace(out) == ""
	}
	return regexp.MustCompile(re.String()).MatchString(got.String())
}

// stopGroup stops what a block left running: SIGTERM to its process group
// (nodes shut down gracefully and free their ports), SIGKILL if any is
// still there after 30 s.
func stopGroup(t *testing.T, pgid int) {
	t.Helper()
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	deadline := time.Now().Add(30 * time.Second)
	for groupAlive(pgid) {
		if time.Now().After(deadline) {
			t.Errorf("processes of the block still running 30 s after SIGTERM; killing them")
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// groupAlive reports whether a process of the group runs (zombies, which
// wait for a parent to collect them, hold nothing and do not count).
func groupAlive(pgid int) bool {
	if runtime.GOOS != "linux" {
		return syscall.Kill(-pgid, 0) == nil
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp …: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 3 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}

// TestGoBlocks checks that every go block of the documents is code that
// compiles: it must appear, line by line (indentation and spacing aside),
// in a .go file of the module, which the test suite compiles. … in a block
// stands for code left out (any text, over lines too).
func TestGoBlocks(t *testing.T) {
	sources := goSources(t)
	for _, file := range docFiles(t) {
		for _, b := range blocks(t, file) {
			if b.lang != "go" {
				continue
			}
			if b.skip != "" {
				t.Logf("%s: not checked (docs-test: skip %s)", b, b.skip)
				continue
			}
			re := snippetPattern(b.body)
			found := ""
			for path, src := range sources {
				if re.MatchString(src) {
					found = path
					break
				}
			}
			if found == "" {
				t.Errorf("%s: this go block is in no .go file of the module (put it in an example or test that compiles):\n%s", b, strings.Join(b.body, "\n"))
			}
		}
	}
}

// goSources reads the .go files of the root module, outside testdata and
// files excluded from every build.
func goSources(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root(t), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root(t) && (strings.HasPrefix(n, ".") || n == "testdata" || n == "bench") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte("//go:build ignore")) {
			return nil
		}
		out[path] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// snippetPattern matches a block's lines in a source file: consecutive
// lines (blank lines aside), whatever their indentation and the runs of
// spaces within them (gofmt aligns comments its own way), … for any text.
func snippetPattern(lines []string) *regexp.Regexp {
	var re strings.Builder
	re.WriteString(`(?m)`)
	first := true
	for _, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if !first {
			re.WriteString(`[ \t]*\n(?:[ \t]*\n)*`)
		}
		first = false
		re.WriteString(`^[ \t]*`)
		parts := strings.Split(line, "…")
		for i, p := range parts {
			words := strings.Fields(p)
			for j, w := range words {
				words[j] = regexp.QuoteMeta(w)
			}
			parts[i] = strings.Join(words, `[ \t]+`)
			if strings.HasPrefix(p, " ") && i > 0 {
				parts[i] = `[ \t]*` + parts[i]
			}
			if strings.HasSuffix(p, " ") && i < len(parts)-1 {
				parts[i] += `[ \t]*`
			}
		}
		re.WriteString(strings.Join(parts, `(?s:.*?)`))
	}
	return regexp.MustCompile(re.String())
}

// root is the repository's root: this package is internal/docstest.
func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestConventions checks the parts of the docs test that decide what runs.
func TestConventions(t *testing.T) {
	b := block{file: "x.md", line: 1, lang: "sh", body: []string{
		"# a comment line",
		"go run ./cmd/netron demo            # a remark",
		"go run ./cmd/netron serve --port 9000 & # in the background",
		"go run ./cmd/netron call x add 2 3  # waits → 5",
		"echo 'a # not a comment' \\",
		"  continued",
		testCommand + "   # the test command",
	}}
	cmds := commands(b)
	if len(cmds) != 5 {
		t.Fatalf("%d commands: %+v", len(cmds), cmds)
	}
	if cmds[0].expect != nil || cmds[0].background || !cmds[1].background || cmds[2].expect == nil || *cmds[2].expect != "5" ||
		cmds[3].text != "echo 'a # not a comment' \\\n  continued" || cmds[3].expect != nil || cmds[4].skip == "" {
		t.Fatalf("commands: %+v", cmds)
	}
	c := commands(block{lang: "console", body: []string{"$ netron serve &", "node … listening", "", "$ netron call a b", "5", "$ true"}})
	if len(c) != 3 || !c[0].background || c[0].expect != nil || *c[1].expect != "5" || *c[2].expect != "" {
		t.Fatalf("console: %+v", c)
	}
	for _, tc := range []struct {
		want, out string
		ok        bool
	}{
		{"5", "5\n", true},
		{"node … listening on ws://…/", "node 0481ad38-x listening on ws://127.0.0.1:9000/\n", true},
		{"a\n…\nz", "a\nb\nc\nz\n", true},
		{"a\n…\nz", "a\nz\n", true},
		{"5", "6\n", false},
		{"a…", "a\nb\n", false},
		{"", "", true},
		{"", "x", false},
	} {
		if got := matches(tc.want, tc.out); got != tc.ok {
			t.Errorf("matches(%q, %q) = %v", tc.want, tc.out, got)
		}
	}
	if !snippetPattern([]string{"x := f(…)", "", "  g(x)"}).MatchString("func h() {\n\tx := f(1, 2)\n\tg(x)\n}") {
		t.Error("snippet with … and indentation not found")
	}
}
