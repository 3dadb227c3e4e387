package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/netron-go/netron/rpc"
)

const callDescription = `
Calls method of a service on a node and prints the result as JSON.

The service is named in the node's URL (ws://host:port/service) or on its
own, with the node given by --node. The service is "name" (the latest
version), "name@1.2.3" or a range such as "name@^1".

Each argument after the method is one JSON value: 2, 2.5, '"text"', true,
null, '[1, 2]', '{"a": 1}'. Quote strings twice, once for the shell and once
for JSON. Alternatively, --args gives all arguments as one JSON array. Use
-- before arguments that start with "-" when they follow flags.

A method that produces a stream needs --stream: each value is printed as a
line of JSON as it arrives, until the end of the stream, -n values, or
Ctrl-C (which stops the producer).

Examples:
  netron call ws://127.0.0.1:9000/calculator@1.0.0 add 2 3
  netron call --node ws://127.0.0.1:9000 calculator@^1 multiply 4 5
  netron call greeter hello '"world"'
  netron call calculator add --args '[2, 3]'
  netron call --stream ws://127.0.0.1:9000/data streamData 5
`

func runCall(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("call", "[flags] <ws-url/service | service> <method> [JSON argument ...]", callDescription, stderr)
	var cf clientFlags
	cf.register(fs)
	argsJSON := fs.String("args", "", "all the arguments as one JSON `array`")
	var o callOptions
	fs.BoolVar(&o.pretty, "pretty", false, "indent the JSON result")
	fs.BoolVar(&o.stream, "stream", false, "the method produces a stream: print each value as it arrives")
	fs.IntVar(&o.max, "n", 0, "with --stream, stop after `count` values (0: at the end of the stream)")
	pos, err := parse(fs, args, stdout)
	if err == nil && o.max < 0 {
		err = usageError("-n must not be negative")
	}
	if err != nil {
		return exit(stderr, "call", err)
	}
	return exit(stderr, "call", call(ctx, &cf, pos, *argsJSON, o, stdout))
}

type callOptions struct {
	pretty, stream bool
	max            int
}

func call(ctx context.Context, cf *clientFlags, pos []string, argsJSON string, o callOptions, stdout io.Writer) error {
	if len(pos) < 2 {
		return usageError("need a service and a method")
	}
	nodeURL, service, err := splitTarget(pos[0])
	if err != nil {
		return err
	}
	method := pos[1]
	var callArgs []any
	switch {
	case argsJSON != "" && len(pos) > 2:
		return usageError("give the arguments either after the method or with --args, not both")
	case argsJSON != "":
		v, err := parseJSONArg(argsJSON)
		if err != nil {
			return usageError("--args: not JSON: %v", err)
		}
		arr, ok := v.([]any)
		if !ok {
			return usageError("--args: want a JSON array, got %s", argsJSON)
		}
		callArgs = arr
	default:
		for i, a := range pos[2:] {
			v, err := parseJSONArg(a)
			if err != nil {
				if a != "" && strings.ContainsRune(`{["`, rune(a[0])) {
					return usageError("argument %d: %q is not JSON: %v", i+1, a, err)
				}
				return usageError("argument %d: %q is not JSON; quote strings: '\"%s\"'", i+1, a, a)
			}
			callArgs = append(callArgs, v)
		}
	}

	c, err := cf.open(ctx, nodeURL, service)
	if err != nil {
		return err
	}
	defer c.close()
	svc, err := c.peer.Service(ctx, service)
	if err != nil {
		var re *rpc.Error
		if errors.As(err, &re) { // it names the service, and what the node has
			return err
		}
		return fmt.Errorf("service %s on node %s: %w", service, c.peer.ID(), err)
	}
	if o.stream {
		return callStream(ctx, svc, method, callArgs, o, stdout)
	}
	res, err := svc.Call(ctx, method, callArgs...)
	if errors.Is(err, rpc.ErrStreamResult) {
		return fmt.Errorf("%s.%s produces a stream: call it with --stream", svc.QualifiedName(), method)
	}
	if err != nil {
		return callError(svc, method, err)
	}
	var v any
	if err := res.Decode(&v); err != nil {
		return fmt.Errorf("%s.%s: decode the result: %w", svc.QualifiedName(), method, err)
	}
	return printJSON(stdout, v, o.pretty)
}

// callStream calls a method that produces a stream and prints its values.
func callStream(ctx context.Context, svc *rpc.Service, method string, args []any, o callOptions, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := 0
	for v, err := range rpc.Stream[any](ctx, svc, method, args...) {
		if err != nil {
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil // interrupted (Ctrl-C)
			}
			return callError(svc, method, err)
		}
		if err := printJSON(stdout, v, o.pretty); err != nil {
			return err
		}
		n++
		if o.max > 0 && n >= o.max {
			break // cancels the producer
		}
	}
	return nil
}

// callError names the method in err unless it does already (an error of
// the node, rpc.Error, names what was called).
func callError(svc *rpc.Service, method string, err error) error {
	qm := svc.QualifiedName() + "." + method
	var re *rpc.Error
	if errors.As(err, &re) || strings.Contains(err.Error(), qm) {
		return err
	}
	return fmt.Errorf("%s: %w", qm, err)
}

// splitTarget reads the first argument of call: a URL whose path names the
// service (the node is the URL without it), or a service alone ("" for the
// node: --node).
func splitTarget(s string) (nodeURL, service string, err error) {
	if !strings.HasPrefix(s, "ws://") && !strings.HasPrefix(s, "wss://") {
		if strings.Contains(s, "://") {
			return "", "", usageError("%q: a node URL must be ws:// or wss://", s)
		}
		return "", s, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", "", usageError("%q: %v", s, err)
	}
	service = strings.Trim(u.Path, "/")
	if service == "" {
		return "", "", usageError("%q names no service: add it to the path (%s/calculator@1.0.0) or give it after --node", s, strings.TrimRight(s, "/"))
	}
	u.Path, u.RawPath = "/", ""
	return u.String(), service, nil
}
