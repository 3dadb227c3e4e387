// Command check runs every test of the project: the README's test command
// (go run ./internal/cmd/check), and .ci/run with it.
//
// It installs what a fresh machine lacks (redis-server and chromium, from
// Debian's packages, by scripts/install-deps.sh), then runs the steps
// below side by side, each with its output kept apart, and reports every step that failed before it exits 1: a
// failing test does not hide a vet finding or a fuzz crash.
//
//	gofmt   gofmt -l over the Go files of both modules
//	vet     go vet ./... in the root module and in bench/
//	tidy    go mod tidy -diff in both modules
//	test    go test -race -count=1 ./... (the docs test included)
//	bench   go test -count=1 ./... in bench/ (the comparison programs' tests)
//	fuzz    every Fuzz target for -fuzztime, one after the other
//
// The tests decide nothing from the clock, so running the steps at once on
// a small machine costs them no flakiness: the test step is mostly waiting
// on sockets and leaves processors for the rest. The go commands run with
// -trimpath (added to GOFLAGS), so a fresh clone reuses the build cache of
// earlier runs wherever it is checked out.
//
// Flags:
//
//	-fuzztime d   how long each fuzz target runs (default 5s; the seed
//	              corpora in testdata run in the test step either way)
//	-run list     run only these steps, comma-separated (deps always runs)
//	-v            print every step's output, not only the failed ones'
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

func main() {
	fuzzTime := flag.Duration("fuzztime", 5*time.Second, "how long each fuzz target runs")
	only := flag.String("run", "", "comma-separated `steps` to run (default all): "+strings.Join(stepNames(), ","))
	verbose := flag.Bool("v", false, "print the output of every step, not only of the failed ones")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "check: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "check:", err)
		os.Exit(2)
	}
	var run []step
	for _, s := range steps(*fuzzTime) {
		if *only == "" || slices.Contains(strings.Split(*only, ","), s.name) {
			run = append(run, s)
		}
	}
	if len(run) == 0 {
		fmt.Fprintf(os.Stderr, "check: no step matches -run %q (steps: %s)\n", *only, strings.Join(stepNames(), ", "))
		os.Exit(2)
	}
	os.Exit(check(root, run, *verbose, os.Stdout))
}

// A step is one thing the check runs; it writes its output to w and
// returns an error when it fails.
type step struct {
	name string
	run  func(dir string, w io.Writer) error
}

func steps(fuzzTime time.Duration) []step {
	return []step{
		{"gofmt", gofmt},
		{"vet", commands([]string{"go", "vet", "./..."}, []string{"bench:go", "vet", "./..."})},
		{"tidy", commands([]string{"go", "mod", "tidy", "-diff"}, []string{"bench:go", "mod", "tidy", "-diff"})},
		{"test", commands([]string{"go", "test", "-race", "-count=1", "-timeout", "20m", "./..."})},
		{"bench", commands([]string{"bench:go", "test", "-count=1", "./..."})},
		{"fuzz", func(dir string, w io.Writer) error { return fuzz(dir, w, fuzzTime) }},
	}
}

func stepNames() []string {
	var names []string
	for _, s := range steps(0) {
		names = append(names, s.name)
	}
	return names
}

// check installs the dependencies, then runs the steps at once and reports
// each as it ends, and all the failed ones at the end. It returns the exit
// code.
func check(root string, run []step, verbose bool, out io.Writer) int {
	start := time.Now()
	var buf bytes.Buffer
	if err := command(root, &buf, "bash", "scripts/install-deps.sh"); err != nil {
		// Go on: the steps that need Redis fail and say so.
		fmt.Fprintf(out, "check: deps FAILED: %v\n%s\n", err, indent(buf.String()))
	}
	type result struct {
		name   string
		err    error
		output string
		took   time.Duration
	}
	results := make(chan result)
	for _, s := range run {
		go func() {
			var buf bytes.Buffer
			t := time.Now()
			err := s.run(root, &buf)
			results <- result{s.name, err, buf.String(), time.Since(t)}
		}()
	}
	var failed []string
	for range run {
		r := <-results
		if r.err != nil {
			failed = append(failed, r.name)
			fmt.Fprintf(out, "check: %s FAILED after %s: %v\n%s\n", r.name, r.took.Round(time.Second/10), r.err, indent(r.output))
			continue
		}
		fmt.Fprintf(out, "check: %s ok (%s)\n", r.name, r.took.Round(time.Second/10))
		if verbose {
			fmt.Fprintln(out, indent(r.output))
		}
	}
	took := time.Since(start).Round(time.Second / 10)
	if len(failed) > 0 {
		slices.Sort(failed)
		fmt.Fprintf(out, "check: FAILED (%s): %s\n", took, strings.Join(failed, ", "))
		return 1
	}
	fmt.Fprintf(out, "check: all %d steps passed (%s)\n", len(run), took)
	return 0
}

// indent indents s for the report of a step.
func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    (no output)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// commands returns a step that runs each command in turn, all of them even
// after a failure. A command whose program is prefixed "bench:" runs in
// the bench module.
func commands(cmds ...[]string) func(dir string, w io.Writer) error {
	return func(dir string, w io.Writer) error {
		var errs []string
		for _, c := range cmds {
			d := dir
			if name, ok := strings.CutPrefix(c[0], "bench:"); ok {
				d, c = filepath.Join(dir, "bench"), append([]string{name}, c[1:]...)
			}
			fmt.Fprintf(w, "$ %s%s\n", cdPrefix(dir, d), strings.Join(c, " "))
			if err := command(d, w, c[0], c[1:]...); err != nil {
				errs = append(errs, fmt.Sprintf("%s%s: %v", cdPrefix(dir, d), strings.Join(c, " "), err))
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%s", strings.Join(errs, "; "))
		}
		return nil
	}
}

func cdPrefix(root, dir string) string {
	if dir == root {
		return ""
	}
	rel, _ := filepath.Rel(root, dir)
	return "(cd " + rel + ") "
}

// command runs name with args in dir, its output to w.
func command(dir string, w io.Writer, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = environ()
	cmd.Stdout, cmd.Stderr = w, w
	return cmd.Run()
}

// environ is the environment of the steps: ours, with -trimpath added to
// GOFLAGS. Without it the build cache keys every package of the module by
// the directory it was built in, so each fresh clone (CI clones afresh
// for every run) rebuilt the module for vet, for -race and for every fuzz
// target; with it a fresh clone reuses what earlier runs built.
func environ() []string {
	env := os.Environ()
	for i, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GOFLAGS="); ok {
			if !strings.Contains(v, "-trimpath") {
				env[i] = strings.TrimSpace("GOFLAGS=" + v + " -trimpath")
			}
			return env
		}
	}
	return append(env, "GOFLAGS=-trimpath")
}

// gofmt fails when a Go file of the repository is not gofmt'ed.
func gofmt(dir string, w io.Writer) error {
	files, err := goFiles(dir)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	cmd := exec.Command("gofmt", append([]string{"-l"}, files...)...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &out, w
	if err := cmd.Run(); err != nil {
		return err
	}
	if out.Len() > 0 {
		fmt.Fprintf(w, "not gofmt'ed (run gofmt -w on them):\n%s", out.String())
		return fmt.Errorf("%d files need gofmt", strings.Count(out.String(), "\n"))
	}
	return nil
}

// goFiles lists the .go files under dir, relative to it, outside hidden
// directories and testdata.
func goFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != dir && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") {
			rel, _ := filepath.Rel(dir, path)
			files = append(files, rel)
		}
		return nil
	})
	return files, err
}

// fuzzFunc finds the fuzz targets in a test file.
var fuzzFunc = regexp.MustCompile(`(?m)^func (Fuzz\w*)\(\w+ \*testing\.F\)`)

// fuzz runs every fuzz target of the root module for d, one after the
// other, all of them even after a failure.
//
// Go 1.26's fuzz coordinator can report a bare "context deadline exceeded"
// when -fuzztime ends while a worker is mid-input (golang/go#75804, fixed
// in Go 1.27): nothing was found and no failing input written. Such a run
// is tried once more; any other failure, and a second one, fails.
func fuzz(dir string, w io.Writer, d time.Duration) error {
	targets, err := fuzzTargets(dir)
	if err != nil {
		return err
	}
	var failed []string
	for _, t := range targets {
		fmt.Fprintf(w, "fuzz %s %s (%s)\n", t.pkg, t.name, d)
		for try := 1; ; try++ {
			var out bytes.Buffer
			err := command(dir, &out, "go", "test", "-run=^$", "-fuzz=^"+t.name+"$", "-fuzztime="+d.String(), t.pkg)
			if err == nil {
				break
			}
			if try == 1 && deadlineOnly(out.String()) {
				fmt.Fprintln(w, "  the fuzz coordinator's deadline race (golang/go#75804), nothing found; once more")
				continue
			}
			w.Write(out.Bytes())
			failed = append(failed, t.pkg+" "+t.name)
			break
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s", strings.Join(failed, "; "))
	}
	if len(targets) == 0 {
		return fmt.Errorf("no fuzz targets found")
	}
	return nil
}

// deadlineOnly reports whether a failed fuzz run's output is the
// coordinator's deadline race and nothing else.
func deadlineOnly(out string) bool {
	return strings.Contains(out, "context deadline exceeded") &&
		!strings.Contains(out, "Failing input written") && !strings.Contains(out, "panic:")
}

type fuzzTarget struct{ pkg, name string }

// fuzzTargets lists the fuzz targets of the root module (bench has none)
// by package, in a stable order.
func fuzzTargets(dir string) ([]fuzzTarget, error) {
	files, err := goFiles(dir)
	if err != nil {
		return nil, err
	}
	var targets []fuzzTarget
	for _, f := range files {
		if !strings.HasSuffix(f, "_test.go") || strings.HasPrefix(f, "bench"+string(filepath.Separator)) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return nil, err
		}
		pkg := "./" + filepath.ToSlash(filepath.Dir(f))
		if pkg == "./." {
			pkg = "."
		}
		for _, m := range fuzzFunc.FindAllSubmatch(b, -1) {
			targets = append(targets, fuzzTarget{pkg, string(m[1])})
		}
	}
	slices.SortFunc(targets, func(a, b fuzzTarget) int {
		return strings.Compare(a.pkg+" "+a.name, b.pkg+" "+b.name)
	})
	return targets, nil
}

// moduleRoot finds the directory of the root module's go.mod, from the
// working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(b, []byte("module github.com/netron-go/netron\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("not inside the netron module")
		}
		dir = parent
	}
}
