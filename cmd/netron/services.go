package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/netron-go/netron/rpc"
)

const servicesDescription = `
Lists the services a node offers, with their methods, from the catalogue
the node hands over when a client connects (Go nodes and the original
Netron package do; a Titan node does not, and has nothing listed: call its
services by name).

Examples:
  netron services --node ws://127.0.0.1:9000
  netron services --json
`

// serviceJSON is one service in the --json output.
type serviceJSON struct {
	Name       string            `json:"name"`
	Version    string            `json:"version"`
	Methods    map[string]method `json:"methods"`
	Properties map[string]string `json:"properties,omitempty"`
}

type method struct {
	Arguments []string `json:"arguments"`
	Returns   string   `json:"returns"`
}

func runServices(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("services", "[flags]", servicesDescription, stderr)
	var cf clientFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, stdout)
	if err == nil && len(pos) > 0 {
		err = usageError("unexpected argument %q", pos[0])
	}
	if err != nil {
		return exit(stderr, "services", err)
	}
	return exit(stderr, "services", services(ctx, &cf, *asJSON, stdout, stderr))
}

func services(ctx context.Context, cf *clientFlags, asJSON bool, stdout, stderr io.Writer) error {
	c, err := cf.open(ctx, "", "")
	if err != nil {
		return err
	}
	defer c.close()
	cat := c.peer.Services()
	names := make([]string, 0, len(cat))
	for qn := range cat {
		names = append(names, qn)
	}
	sort.Strings(names)
	if asJSON {
		out := make([]serviceJSON, 0, len(names))
		for _, qn := range names {
			out = append(out, toServiceJSON(cat[qn]))
		}
		return printJSON(stdout, out, true)
	}
	if len(names) == 0 {
		if c.peer.IsGo() {
			fmt.Fprintf(stderr, "node %s exposes no services\n", c.peer.ID())
		} else {
			fmt.Fprintf(stderr, "node %s does not list its services (a Titan node); call them by name\n", c.peer.ID())
		}
		return nil
	}
	for _, qn := range names {
		fmt.Fprintln(stdout, qn)
		for _, line := range methodLines(cat[qn]) {
			fmt.Fprintf(stdout, "  %s\n", line)
		}
	}
	return nil
}

// methodLines describes the methods and properties of a service, sorted:
// "add(number, number): number".
func methodLines(d rpc.ServiceDescription) []string {
	var out []string
	for name, m := range d.Methods {
		args := make([]string, len(m.Arguments))
		for i, a := range m.Arguments {
			args[i] = a.Type
		}
		out = append(out, fmt.Sprintf("%s(%s): %s", name, strings.Join(args, ", "), m.Result))
	}
	for name, p := range d.Properties {
		ro := ""
		if p.ReadOnly {
			ro = " (read-only)"
		}
		out = append(out, fmt.Sprintf("%s: %s%s", name, p.Type, ro))
	}
	sort.Strings(out)
	return out
}

func toServiceJSON(d rpc.ServiceDescription) serviceJSON {
	s := serviceJSON{Name: d.Name, Version: d.Version, Methods: map[string]method{}}
	for name, m := range d.Methods {
		args := []string{}
		for _, a := range m.Arguments {
			args = append(args, a.Type)
		}
		s.Methods[name] = method{Arguments: args, Returns: m.Result}
	}
	if len(d.Properties) > 0 {
		s.Properties = map[string]string{}
		for name, p := range d.Properties {
			s.Properties[name] = p.Type
		}
	}
	return s
}
