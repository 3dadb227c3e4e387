package netron

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/rpc"
)

// maxInjectedCalls bounds the injected calls a node runs at once; past it
// a call is answered at once with a 429 error.
const maxInjectedCalls = 1024

// BusStats counts the Watermill messages a node took from its bus.
type BusStats struct {
	// Events is how many events were injected on TopicEvents.
	Events uint64
	// Calls is how many calls injected on TopicCalls ran (whatever their
	// outcome).
	Calls uint64
	// Rejected is how many injected messages were dropped as malformed or
	// foreign (logged at most once a second). Events and Rejected count a
	// message on TopicEvents once per typed subscriber of that topic: the
	// node has one, and each Subscribe[Event] adds one.
	Rejected uint64
	// ClusterSent and ClusterReceived count the events this node
	// published to the cluster (Config.ClusterEvents) and emitted from
	// it; ClusterDuplicates the redelivered ones it dropped; ClusterMissed
	// the gaps it found in another node's sequence (trimmed or lost).
	ClusterSent, ClusterReceived, ClusterDuplicates, ClusterMissed uint64
	// ClusterRetries counts the publishes to the cluster that failed
	// (the backend unreachable) and were tried again.
	ClusterRetries uint64
}

// busState is the node's side of Watermill injection.
type busState struct {
	events   atomic.Uint64
	calls    atomic.Uint64
	rejected atomic.Uint64
	warnAt   atomic.Int64 // unix nanoseconds of the last rejection logged
	running  chan struct{}
}

// BusStats returns the counts of injected messages.
func (n *Node) BusStats() BusStats {
	s := BusStats{
		Events:   n.inject.events.Load(),
		Calls:    n.inject.calls.Load(),
		Rejected: n.inject.rejected.Load(),
	}
	if b := n.cluster.Load(); b != nil {
		s.ClusterSent, s.ClusterReceived = b.sent.Load(), b.received.Load()
		s.ClusterDuplicates, s.ClusterMissed = b.duplicates.Load(), b.missed.Load()
		s.ClusterRetries = b.retries.Load()
	}
	return s
}

// nodeBus returns the bus of a node configured by cfg: its marshaler
// describes the node's traffic, the topics that carry live state are
// read-only for Watermill publishers, and Watermill subscribers drop
// rather than hold the node up.
func nodeBus(n *Node) *bus.Bus {
	return bus.New(
		bus.WithLogger(n.logger),
		bus.WithMarshaler(&nodeMarshaler{n: n, json: n.cfg.BusJSON}),
		bus.WithReadOnly("netron.peer.", "netron.events."),
		bus.WithSubscriberPolicy(bus.DropNewest),
	)
}

// rejectMessage counts and logs, at most once a second, an injected
// message the node dropped.
func (n *Node) rejectMessage(what string, msg *message.Message, err error) {
	total := n.inject.rejected.Add(1)
	now := nowNano()
	last := n.inject.warnAt.Load()
	if last != 0 && now-last < int64(1e9) || !n.inject.warnAt.CompareAndSwap(last, now) {
		return
	}
	n.logger.LogAttrs(context.Background(), slog.LevelWarn, "netron: injected message dropped",
		slog.String("what", what), slog.String("uuid", msg.UUID), slog.Any("error", err),
		slog.Uint64("rejected_total", total))
}

// watchCalls runs the calls published on TopicCalls.
func (n *Node) watchCalls() (func(), error) {
	n.inject.running = make(chan struct{}, maxInjectedCalls)
	return bus.NewTopic[*message.Message](n.bus, TopicCalls).SubscribeFunc(n.onCall)
}

// injectedCall is a call decoded from a message.
type injectedCall struct {
	service, method, peer string
	corr, replyTo         string
	args                  []any
}

// decodeCall decodes the call a message on TopicCalls carries. It is the
// injection decoder: anything may arrive here.
func decodeCall(msg *message.Message) (injectedCall, error) {
	c := injectedCall{
		service: msg.Metadata.Get(MetaService),
		method:  msg.Metadata.Get(MetaMethod),
		peer:    msg.Metadata.Get(MetaPeer),
		corr:    msg.Metadata.Get(MetaCorrelationID),
		replyTo: msg.Metadata.Get(MetaReplyTo),
	}
	if c.corr == "" {
		c.corr = msg.UUID
	}
	if c.replyTo == "" || c.replyTo == TopicCalls {
		// A reply on TopicCalls would be published from inside its own
		// topic's publish (a deadlock), and is no call anyway.
		c.replyTo = TopicReplies
	}
	if k := msg.Metadata.Get(MetaKind); k != "" && k != KindCall {
		return c, fmt.Errorf("%w: kind %q is not %q", ErrInvalidMessage, k, KindCall)
	}
	if c.service == "" || c.method == "" {
		return c, fmt.Errorf("%w: a call needs %s and %s", ErrInvalidMessage, MetaService, MetaMethod)
	}
	args, err := rawArgs(msg)
	if err != nil {
		return c, err
	}
	c.args = args
	return c, nil
}

// onCall runs in the publisher's goroutine: it decodes the call and hands
// it to a goroutine of its own; it never waits.
func (n *Node) onCall(_ context.Context, msg *message.Message) {
	if msg == nil {
		return
	}
	c, err := decodeCall(msg)
	if err != nil {
		n.rejectMessage("call", msg, err)
		n.reply(c, msg, nil, &rpc.Error{Code: 400, Name: "TitanError", Message: err.Error()})
		return
	}
	select {
	case n.inject.running <- struct{}{}:
	default:
		n.reply(c, msg, nil, &rpc.Error{Code: 429, Name: "TitanError",
			Message: fmt.Sprintf("too many injected calls running (limit %d)", maxInjectedCalls)})
		return
	}
	if !n.ev.goTracked(func() {
		defer func() { <-n.inject.running }()
		n.runCall(c, msg)
	}) {
		<-n.inject.running
		n.reply(c, msg, nil, &rpc.Error{Code: 503, Name: "TitanError", Message: ErrStopped.Error()})
	}
}

func (n *Node) runCall(c injectedCall, msg *message.Message) {
	ctx := n.ctx
	if n.cfg.RequestTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.RequestTimeout)
		defer cancel()
	}
	n.inject.calls.Add(1)
	svc, err := n.injectedService(ctx, c)
	if err != nil {
		n.reply(c, msg, nil, err)
		return
	}
	res, err := svc.Call(ctx, c.method, c.args...)
	if err != nil {
		n.reply(c, msg, nil, err)
		return
	}
	n.reply(c, msg, res.Raw(), nil)
}

func (n *Node) injectedService(ctx context.Context, c injectedCall) (*rpc.Service, error) {
	if c.peer == "" || c.peer == n.cfg.ID {
		return n.Service(ctx, c.service)
	}
	for _, p := range n.Peers() {
		if p.ID() == c.peer {
			return p.Service(ctx, c.service)
		}
	}
	if n.disc != nil {
		p, err := n.peerByID(ctx, c.peer, "")
		if err != nil {
			return nil, err
		}
		return p.Service(ctx, c.service)
	}
	return nil, &rpc.Error{Code: 404, Name: "TitanError", Message: fmt.Sprintf("no connected peer %q", c.peer)}
}

// reply publishes the result (msgpack) or the error of an injected call.
func (n *Node) reply(c injectedCall, call *message.Message, result []byte, callErr error) {
	m := &nodeMarshaler{n: n, json: n.cfg.BusJSON}
	msg := m.newMessage(KindReply)
	msg.Metadata.Set(MetaCorrelationID, c.corr)
	msg.Metadata.Set(MetaService, c.service)
	msg.Metadata.Set(MetaMethod, c.method)
	if c.peer != "" {
		msg.Metadata.Set(MetaPeer, c.peer)
	}
	var err error
	if callErr != nil {
		msg.Metadata.Set(MetaError, "true")
		re := replyError{Code: 500, Name: "Error", Message: callErr.Error()}
		var e *rpc.Error
		if errors.As(callErr, &e) {
			re = replyError{Code: e.Code, Name: e.Name, Message: e.Message, Details: e.Details}
		}
		_, err = m.withPayload(msg, re)
	} else {
		_, err = m.withRaw(msg, result)
	}
	if err == nil {
		err = n.bus.Publish(c.replyTo, msg)
	}
	if err != nil && !errors.Is(err, bus.ErrClosed) {
		n.rejectMessage("reply", call, fmt.Errorf("publishing the reply on %q: %w", c.replyTo, err))
	}
}

func nowNano() int64 { return time.Now().UnixNano() }
