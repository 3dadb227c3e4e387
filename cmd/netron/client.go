package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/netron-go/netron"
)

// defaultNode is the node the client commands talk to without --node or
// $NETRON_NODE.
const defaultNode = "ws://127.0.0.1:9000"

// errUsage marks an error of the command line (exit code 2).
var errUsage = errors.New("usage")

// usageError is a command-line mistake.
func usageError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// newFlags returns a flag set for command name whose --help prints the
// synopsis, the description and the flags.
func newFlags(name, synopsis, description string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("netron "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage:\n  netron %s %s\n\n%s\n", name, synopsis, strings.TrimSpace(description))
		var has bool
		fs.VisitAll(func(*flag.Flag) { has = true })
		if has {
			fmt.Fprint(w, "\nFlags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parse parses args, allowing flags after positional arguments (but not
// after "--"); arguments that look like negative numbers are positional.
// It returns the positional arguments. A --help returns flag.ErrHelp with
// the usage printed to stdout.
func parse(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	var tail []string
	for i, a := range args {
		if a == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	var pos []string
	for {
		if err := parseHelp(fs, args, stdout); err != nil {
			return nil, err
		}
		// Parse stopped at the first positional argument; flags may
		// follow it.
		args = fs.Args()
		for len(args) > 0 && !isFlag(args[0]) {
			pos = append(pos, args[0])
			args = args[1:]
		}
		if len(args) == 0 {
			return append(pos, tail...), nil
		}
	}
}

func isFlag(s string) bool {
	if len(s) < 2 || s[0] != '-' {
		return false
	}
	c := s[1]
	return !(c >= '0' && c <= '9' || c == '.')
}

// parseHelp parses with the usage going to stdout when --help is asked.
func parseHelp(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout)
			fs.Usage()
			return flag.ErrHelp
		}
	}
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return err
}

// exit reports err on stderr, prefixed by the command, and returns the
// exit code: 0 for nil or --help, 2 for usage errors, 1 otherwise.
func exit(stderr io.Writer, cmd string, err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		msg := strings.TrimPrefix(err.Error(), errUsage.Error()+": ")
		fmt.Fprintf(stderr, "netron %s: %s\nRun \"netron %s --help\" for usage.\n", cmd, msg, cmd)
		return exitUsage
	}
	fmt.Fprintf(stderr, "netron %s: %v\n", cmd, err)
	return exitFailure
}

// clientFlags are the flags of the commands that talk to a node.
type clientFlags struct {
	node      string
	id        string
	timeout   time.Duration
	wait      time.Duration
	discovery string        // --discovery: a redis URL or a configuration file
	prefix    string        // --prefix: discovery's key prefix
	fs        *flag.FlagSet // to tell whether --node was given
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	def := os.Getenv("NETRON_NODE")
	if def == "" {
		def = defaultNode
	}
	fs.StringVar(&c.node, "node", def, "`URL` of the node, ws:// or wss:// ($NETRON_NODE sets the default); with --discovery, a node id")
	fs.StringVar(&c.id, "id", "", "`id` of this client node (default: netron-cli-<random>)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "how long to wait for the connection and each request")
	fs.DurationVar(&c.wait, "wait", 0, "while nothing listens at the node's address yet (a node starting in the background), try again for up to `duration`")
	c.registerDiscovery(fs)
}

// client is a connection to a node through a client node of our own.
type client struct {
	node *netron.Node
	peer *netron.Peer
}

// connect starts a client node and connects it to url.
func (c *clientFlags) connect(ctx context.Context, url string) (*client, error) {
	if url == "" {
		url = c.node
	}
	if !strings.HasPrefix(url, "ws://") && !strings.HasPrefix(url, "wss://") {
		return nil, usageError("--node %q is not a ws:// or wss:// URL", url)
	}
	id := c.id
	if id == "" {
		id = "netron-cli-" + uuid.NewString()[:8]
	}
	// The commands talk to one node and end with its connection (watch
	// reports the node going away): no reconnecting.
	node, err := netron.New(netron.Config{ID: id, RequestTimeout: c.timeout, Reconnect: netron.ReconnectConfig{Disabled: true}})
	if err != nil {
		return nil, err
	}
	if err := node.Start(ctx); err != nil {
		node.Stop(context.Background())
		return nil, err
	}
	p, err := c.dial(ctx, node, url)
	if err != nil {
		node.Stop(context.Background())
		return nil, err
	}
	return &client{node: node, peer: p}, nil
}

// refusedHook, if set, runs when --wait tries again: a test's signal.
var refusedHook func()

// dial connects node to url within the timeout; with --wait it tries
// again every 100 ms for that long while the connection is refused.
func (c *clientFlags) dial(ctx context.Context, node *netron.Node, url string) (*netron.Peer, error) {
	until := time.Now().Add(c.wait)
	for {
		cctx, cancel := context.WithTimeout(ctx, c.timeout)
		p, err := node.Connect(cctx, url)
		cancel()
		if err == nil || !errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(until) {
			return p, err
		}
		if refusedHook != nil {
			refusedHook()
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return nil, err
		}
	}
}

func (c *client) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.node.Stop(ctx)
}
