package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/netron-go/netron/app"
	"github.com/netron-go/netron/rpc"
)

const peersDescription = `
Lists the peers a node is connected to: their ids, whether they dialled the
node (in) or the node dialled them (out), and whether they are Go nodes or
plain Netron (Titan) nodes. This command's own connection is marked.

It runs the node's list_peers task, which nodes run by "netron serve" or by
package app answer; other nodes answer that they have no such task.

Examples:
  netron peers --node ws://127.0.0.1:9000
  netron peers --json
`

func runPeers(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("peers", "[flags]", peersDescription, stderr)
	var cf clientFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, stdout)
	if err == nil && len(pos) > 0 {
		err = usageError("unexpected argument %q", pos[0])
	}
	if err != nil {
		return exit(stderr, "peers", err)
	}
	return exit(stderr, "peers", peers(ctx, &cf, *asJSON, stdout))
}

func peers(ctx context.Context, cf *clientFlags, asJSON bool, stdout io.Writer) error {
	c, err := cf.open(ctx, "", "")
	if err != nil {
		return err
	}
	defer c.close()
	res, err := c.peer.RunTask(ctx, app.TaskListPeers)
	if errors.Is(err, rpc.ErrTaskNotFound) {
		return fmt.Errorf("node %s does not answer the %s task (nodes run by \"netron serve\" or package app do)", c.peer.ID(), app.TaskListPeers)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", app.TaskListPeers, err)
	}
	var list []app.PeerInfo
	if err := res.Decode(&list); err != nil {
		return fmt.Errorf("%s: %w", app.TaskListPeers, err)
	}
	if asJSON {
		if list == nil {
			list = []app.PeerInfo{}
		}
		return printJSON(stdout, list, true)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDIRECTION\tKIND")
	for _, p := range list {
		kind, note := "netron", ""
		if p.Go {
			kind = "go"
		}
		if p.ID == c.node.ID() {
			note = "  (this command)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s%s\n", p.ID, p.Direction, kind, note)
	}
	return tw.Flush()
}
