package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/netron-go/netron"
)

const watchDescription = `
Prints the events of a node as they happen, one line each: the event name
and its arguments as JSON. Without event names it watches every event of a
Go node ("*"), and the lifecycle events (peer:connect, peer:disconnect,
service:expose, service:unexpose) of other nodes. Names ending in "*" are
patterns (Go nodes only).

It stops on Ctrl-C (exit 0), after -n events (exit 0), or when the node
goes away (exit 1). The connection of the command itself is not shown.

Examples:
  netron watch --node ws://127.0.0.1:9000
  netron watch 'calculator:*' peer:connect
  netron watch -n 1 --json order:created
`

var lifecycleEvents = []string{
	netron.EventPeerConnect, netron.EventPeerDisconnect,
	netron.EventServiceExpose, netron.EventServiceUnexpose,
}

func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("watch", "[flags] [event ...]", watchDescription, stderr)
	var cf clientFlags
	cf.register(fs)
	count := fs.Int("n", 0, "stop after `count` events (0: never)")
	asJSON := fs.Bool("json", false, "print each event as a JSON object")
	withTime := fs.Bool("time", false, "prefix each line with the time it arrived")
	names, err := parse(fs, args, stdout)
	if err == nil && *count < 0 {
		err = usageError("-n must not be negative")
	}
	if err != nil {
		return exit(stderr, "watch", err)
	}
	w := &watcher{out: stdout, errOut: stderr, count: *count, json: *asJSON, time: *withTime}
	return exit(stderr, "watch", w.watch(ctx, &cf, names))
}

type watcher struct {
	out, errOut io.Writer
	count       int
	json, time  bool
}

type watchedEvent struct {
	at time.Time
	e  netron.Event
}

func (w *watcher) watch(ctx context.Context, cf *clientFlags, names []string) error {
	c, err := cf.open(ctx, "", "")
	if err != nil {
		return err
	}
	defer c.close()
	if len(names) == 0 {
		names = []string{"*"}
		if !c.peer.IsGo() {
			names = lifecycleEvents
		}
	}
	var unsubs []*netron.Subscription[netron.Event]
	defer func() {
		uctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		for _, u := range unsubs {
			_ = u.Unsubscribe(uctx)
		}
	}()
	events := make(chan watchedEvent, 256)
	stop := make(chan struct{})
	defer close(stop) // before unsubscribing: releases a handler waiting to send
	self := c.node.ID()
	handler := func(e netron.Event) {
		if isOwnConnection(e, self) {
			return
		}
		select {
		case events <- watchedEvent{time.Now(), e}:
		case <-stop:
		}
	}
	for _, name := range names {
		sctx, cancel := context.WithTimeout(ctx, cf.timeout)
		u, err := c.peer.On(sctx, name, handler)
		cancel()
		if errors.Is(err, netron.ErrPatternUnsupported) {
			return usageError("%q: node %s is not a Go node and has no event patterns; name the events", name, c.peer.ID())
		}
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", name, err)
		}
		unsubs = append(unsubs, u)
	}
	fmt.Fprintf(w.errOut, "watching %v on node %s (Ctrl-C to stop)\n", names, c.peer.ID())
	seen := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.peer.Done():
			return fmt.Errorf("connection to %s closed: %w", c.peer.ID(), c.peer.Err())
		case ev := <-events:
			if err := w.print(ev); err != nil {
				return err
			}
			seen++
			if w.count > 0 && seen >= w.count {
				return nil
			}
		}
	}
}

// isOwnConnection reports whether e is the peer:connect or peer:disconnect
// of this command's own connection, which the node may announce after the
// subscription is made: noise to the watcher.
func isOwnConnection(e netron.Event, self string) bool {
	switch e.Name {
	case netron.EventPeerConnect, netron.EventPeerDisconnect:
	default:
		return false
	}
	var pe netron.PeerEvent
	return len(e.Args) == 1 && e.Decode(0, &pe) == nil && pe.PeerID == self
}

func (w *watcher) print(ev watchedEvent) error {
	e := ev.e
	args := e.Args
	if args == nil {
		args = []any{}
	}
	if w.json {
		obj := map[string]any{"event": e.Name, "source": e.Source, "args": args}
		if w.time {
			obj["time"] = ev.at.Format(time.RFC3339Nano)
		}
		return printJSON(w.out, obj, false)
	}
	line := e.Name
	if w.time {
		line = ev.at.Format("15:04:05.000") + " " + line
	}
	for _, a := range args {
		b, err := marshalJSON(a, false)
		if err != nil {
			b = []byte(fmt.Sprintf("%q", fmt.Sprint(a)))
		}
		line += " " + string(b)
	}
	_, err := fmt.Fprintln(w.out, line)
	return err
}
