package netron

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/netron-go/netron/bus"
)

const (
	// DefaultClusterEventsTopic is the Watermill topic (the Redis stream)
	// of cluster-wide events unless ClusterEventsConfig.Topic says
	// otherwise.
	DefaultClusterEventsTopic = "netron:cluster:events"
	// DefaultClusterEventsMaxLen bounds the built-in Redis stream of
	// cluster-wide events, approximately (XADD MAXLEN ~), unless
	// ClusterEventsConfig.MaxLen says otherwise.
	DefaultClusterEventsMaxLen = 100_000
)

// Metadata of the messages of cluster-wide events, beside MetaEvent,
// MetaSource and the others of an event.
const (
	// MetaEpoch is a random id of the emitting node's run: a node that
	// restarts numbers its events from 1 again in a new epoch.
	MetaEpoch = "netron.epoch"
	// MetaSeq is the event's number among those its node emitted in the
	// epoch, from 1.
	MetaSeq = "netron.seq"
)

// ClusterEventsConfig carries the events emitted on every node of a
// cluster to every other node, without WebSocket connections between
// them, through a Watermill backend: the built-in Redis Streams one, on
// the Redis of Discovery.Redis, or any Publisher and Subscriber pair.
//
// What travels: the events emitted on this node (Node.Emit, events
// injected on TopicEvents) whose Source is this node, not lifecycle events
// (peer:*, service:*, node:*), not events received from peers or from the
// cluster. An event from another node is emitted here with its Source set
// to that node: it reaches this node's handlers and the peers subscribed
// to it, as an event of this node would.
//
// Guarantees: the events of one node arrive in the order it emitted them
// (one publishing goroutine per node, one stream); a subscriber never gets
// one twice (a per-emitter sequence number, MetaSeq, drops duplicates a
// backend may redeliver); a gap in a sequence (events trimmed from the
// stream before this node read them, or lost by a Redis that restarted
// without persistence) is counted (BusStats.ClusterMissed) and logged.
// Emit waits while the node's queue of events to publish is full
// (DefaultEventBuffer events): the cluster backend sets the pace of a
// node that emits faster than it can publish. A publish that fails is
// retried, with backoff, until it succeeds or the node stops; so a Redis
// restart delays events, it does not drop them.
//
// The built-in backend reads the stream from where it ends when the node
// starts: a node that restarts gets the events emitted from then on, not
// those emitted while it was down. The stream is trimmed to about MaxLen
// entries.
type ClusterEventsConfig struct {
	// Enabled turns cluster-wide events on. Without Publisher and
	// Subscriber it uses Redis Streams on Discovery.Redis.
	Enabled bool `json:"enabled,omitempty" yaml:"enabled,omitempty"`
	// Topic is the Watermill topic; for Redis, the stream's key.
	// DefaultClusterEventsTopic unless set.
	Topic string `json:"topic,omitempty" yaml:"topic,omitempty"`
	// MaxLen bounds the built-in Redis stream (approximately).
	// DefaultClusterEventsMaxLen unless set.
	MaxLen int64 `json:"maxLen,omitempty" yaml:"maxLen,omitempty"`
	// Publisher and Subscriber are the Watermill backend to use instead
	// of the built-in one. The Subscriber must deliver every message of
	// the topic to every node (fan-out), in the order published. The node
	// does not close them.
	Publisher  message.Publisher  `json:"-" yaml:"-"`
	Subscriber message.Subscriber `json:"-" yaml:"-"`
}

func (c ClusterEventsConfig) topic() string {
	if c.Topic != "" {
		return c.Topic
	}
	return DefaultClusterEventsTopic
}

// clusterBridge moves events between the node and the cluster backend.
type clusterBridge struct {
	n      *Node
	pub    message.Publisher
	sub    message.Subscriber
	topic  string
	closer func() // closes what the node made (the built-in backend)

	epoch string
	seq   uint64 // the publishing goroutine's

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	out    *Subscription[Event]

	mu   sync.Mutex
	last map[string]emitterPos // source -> last position seen

	sent, received, duplicates, missed, retries atomic.Uint64
	warnAt                                      atomic.Int64
}

type emitterPos struct {
	epoch string
	seq   uint64
}

// startCluster starts the bridge, if configured. The node's subscription
// to the backend is in place when it returns.
func (n *Node) startCluster(ctx context.Context) error {
	c := n.cfg.ClusterEvents
	if !c.Enabled {
		return nil
	}
	var p [8]byte
	_, _ = rand.Read(p[:])
	b := &clusterBridge{n: n, pub: c.Publisher, sub: c.Subscriber, topic: c.topic(),
		epoch: hex.EncodeToString(p[:]), last: map[string]emitterPos{}}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	var msgs <-chan *message.Message
	var err error
	if b.pub == nil {
		msgs, err = b.startRedis(ctx, c)
	} else {
		msgs, err = b.sub.Subscribe(b.ctx, b.topic)
	}
	if err != nil {
		b.cancel()
		if b.closer != nil {
			b.closer()
		}
		return fmt.Errorf("netron: cluster events: %w", err)
	}
	b.wg.Go(func() { b.receive(msgs) })
	b.out, err = n.On("*", b.send, bus.WithPolicy(bus.Block), bus.WithName("cluster events"))
	if err != nil {
		b.cancel()
		b.wg.Wait()
		if b.closer != nil {
			b.closer()
		}
		return fmt.Errorf("netron: cluster events: %w", err)
	}
	n.cluster.Store(b)
	return nil
}

// startRedis makes the built-in backend on Discovery.Redis and subscribes
// from the end of the stream as it is now.
func (b *clusterBridge) startRedis(ctx context.Context, c ClusterEventsConfig) (<-chan *message.Message, error) {
	n := b.n
	opts, err := n.cfg.Discovery.Redis.Endpoint().Options()
	if err != nil {
		return nil, err
	}
	client := redis.NewUniversalClient(opts)
	b.closer = func() { _ = client.Close() }
	maxLen := c.MaxLen
	if maxLen == 0 {
		maxLen = DefaultClusterEventsMaxLen
	}
	wlog := watermill.NewSlogLogger(n.logger.With("component", "cluster-events"))
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: client, DefaultMaxlen: maxLen}, wlog)
	if err != nil {
		return nil, err
	}
	// Where the stream ends now: everything after it is ours to read.
	start := "0"
	last, err := client.XRevRangeN(ctx, b.topic, "+", "-", 1).Result()
	if err != nil {
		return nil, err
	}
	if len(last) > 0 {
		start = last[0].ID
	}
	sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{
		Client:                        client,
		FanOutOldestId:                start,
		BlockTime:                     time.Second,
		DisableIndefiniteInitialBlock: true,
		ShouldStopOnReadErrors:        func(error) bool { return b.ctx.Err() != nil },
	}, wlog)
	if err != nil {
		return nil, err
	}
	b.pub, b.sub = pub, sub
	b.closer = func() {
		_ = sub.Close()
		_ = pub.Close()
		_ = client.Close()
	}
	return sub.Subscribe(b.ctx, b.topic)
}

// lifecycle reports whether name is an event the node makes itself.
func lifecycle(name string) bool {
	switch name {
	case EventPeerConnect, EventPeerDisconnect, EventServiceExpose, EventServiceUnexpose,
		EventServiceDiscovered, EventNodeJoined, EventNodeLeft:
		return true
	}
	return false
}

// send publishes an event of this node to the cluster, in the handler's
// goroutine, retrying until it succeeds or the node stops.
func (b *clusterBridge) send(ev Event) {
	if ev.Source != b.n.cfg.ID || lifecycle(ev.Name) {
		return
	}
	m := &nodeMarshaler{n: b.n}
	msg, err := m.event(ev.Name, ev.Source, nil, ev.Args)
	if err != nil {
		b.warn("an event could not be encoded for the cluster", err, ev.Name)
		return
	}
	msg.UUID = b.epoch + "-" + strconv.FormatUint(b.seq+1, 10)
	b.seq++
	msg.Metadata.Set(MetaEpoch, b.epoch)
	msg.Metadata.Set(MetaSeq, strconv.FormatUint(b.seq, 10))
	delay := 50 * time.Millisecond
	for {
		err := b.pub.Publish(b.topic, msg)
		if err == nil {
			b.sent.Add(1)
			return
		}
		if b.ctx.Err() != nil {
			b.warn("an event was not published to the cluster: the node stopped", err, ev.Name)
			return
		}
		b.retries.Add(1)
		b.warn("publishing an event to the cluster failed; retrying", err, ev.Name)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-b.ctx.Done():
			t.Stop()
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// receive emits here the events other nodes published.
func (b *clusterBridge) receive(msgs <-chan *message.Message) {
	for msg := range msgs {
		b.handle(msg)
		msg.Ack()
	}
}

func (b *clusterBridge) handle(msg *message.Message) {
	src := msg.Metadata.Get(MetaSource)
	if src == b.n.cfg.ID {
		return // our own, back from the backend
	}
	pos := emitterPos{epoch: msg.Metadata.Get(MetaEpoch)}
	seq, err := strconv.ParseUint(msg.Metadata.Get(MetaSeq), 10, 64)
	if err != nil || src == "" || pos.epoch == "" || seq == 0 {
		b.n.rejectMessage("cluster event", msg, fmt.Errorf("%w: no source, epoch or sequence", ErrInvalidMessage))
		return
	}
	pos.seq = seq
	b.mu.Lock()
	prev, seen := b.last[src]
	switch {
	case seen && prev.epoch == pos.epoch && seq <= prev.seq:
		b.mu.Unlock()
		b.duplicates.Add(1)
		return
	case seen && prev.epoch == pos.epoch && seq > prev.seq+1:
		b.missed.Add(seq - prev.seq - 1)
		b.warn("cluster events missed", fmt.Errorf("events %d to %d of %s", prev.seq+1, seq-1, src), "")
	}
	b.last[src] = pos
	b.mu.Unlock()
	ev, err := DecodeEvent(msg)
	if err == nil {
		err = checkName(ev.Name, false)
	}
	if err != nil {
		b.n.rejectMessage("cluster event", msg, err)
		return
	}
	ev.Name = canonical(ev.Name)
	if err := b.n.ev.publish(b.ctx, ev); err != nil && !errors.Is(err, ErrStopped) && b.ctx.Err() == nil {
		b.warn("a cluster event could not be emitted here", err, ev.Name)
		return
	}
	b.received.Add(1)
}

// warn logs at most once a second.
func (b *clusterBridge) warn(msg string, err error, event string) {
	now := nowNano()
	last := b.warnAt.Load()
	if last != 0 && now-last < int64(time.Second) || !b.warnAt.CompareAndSwap(last, now) {
		return
	}
	b.n.logger.LogAttrs(context.Background(), slog.LevelWarn, "netron: "+msg,
		slog.String("event", event), slog.Any("error", err), slog.String("topic", b.topic))
}

// close stops the bridge once the node's handlers have delivered what they
// had (Stop calls it after the event hub closed): the publishing retries
// end, the subscription ends, and the built-in backend is closed.
func (b *clusterBridge) close() {
	b.cancel()
	if b.out != nil {
		b.out.Close()
	}
	if b.closer != nil {
		b.closer()
	}
	b.wg.Wait()
}
