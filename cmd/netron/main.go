package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/netron-go/netron/discovery/redisdisc"
)

// Exit codes.
const (
	exitOK      = 0 // success
	exitFailure = 1 // a runtime error: connect, call, bind, …
	exitUsage   = 2 // bad command line or invalid configuration
)

func main() {
	quietGoRedis()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal ends the process at once
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// quietGoRedis silences go-redis's process-wide logger, which would print
// a line of its own on stderr for every dial that fails: the commands
// report what failed themselves, and serve sends go-redis's lines to its
// logger. It is set once, at the start of the process, before any client
// exists: go-redis reads it without a lock.
func quietGoRedis() {
	redisdisc.SetGoRedisLogger(slog.New(slog.DiscardHandler), slog.LevelDebug)
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"demo", "run several nodes in this process: discovery, calls, events, a stream", runDemo},
		{"serve", "run a node (configuration from --config FILE and NETRON_… variables)", runServe},
		{"call", "call a method of a service on a node and print the JSON result", runCall},
		{"services", "list the services a node offers", runServices},
		{"peers", "list the peers a node is connected to", runPeers},
		{"watch", "print the events of a node as they happen", runWatch},
		{"nodes", "list the nodes discovery knows: ids, addresses, services, last heartbeats", runNodes},
		{"top", "show the busiest services and peers of a node, refreshed every second", runTop},
	}
}

// run is the command line: netron <command> [flags] [args]. It returns the
// exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help", "help":
		if name == "help" && len(rest) > 0 {
			return run(ctx, []string{rest[0], "--help"}, stdout, stderr)
		}
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, rest, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "netron: unknown command %q\n\n", name)
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `netron is the command-line tool of Netron for Go.

Usage:
  netron <command> [flags] [arguments]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run "netron <command> --help" for the flags of a command.

Commands that talk to a node (call, services, peers, watch) connect to
--node (default $NETRON_NODE, else ws://127.0.0.1:9000) as a client node.
With --discovery (a redis:// URL or a configuration file) they find the
node through discovery instead: the one offering the service called, or
the one --node names by id.

Exit codes: 0 success, 1 runtime error, 2 usage error or invalid configuration.
`)
}
