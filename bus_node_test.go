package netron_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
)

// tap collects the messages a Watermill Router hands its handlers, per
// topic.
type tap struct {
	mu   sync.Mutex
	msgs map[string][]*message.Message
}

func (tp *tap) handler(topic string) message.NoPublishHandlerFunc {
	return func(m *message.Message) error {
		tp.mu.Lock()
		tp.msgs[topic] = append(tp.msgs[topic], m)
		tp.mu.Unlock()
		return nil
	}
}

// find waits for a message of topic whose metadata has every pair of kv.
func (tp *tap) find(t *testing.T, topic string, kv ...string) *message.Message {
	t.Helper()
	var found *message.Message
	waitFor(t, topic+" message with "+strings.Join(kv, " "), func() bool {
		tp.mu.Lock()
		defer tp.mu.Unlock()
	next:
		for _, m := range tp.msgs[topic] {
			for i := 0; i+1 < len(kv); i += 2 {
				if m.Metadata.Get(kv[i]) != kv[i+1] {
					continue next
				}
			}
			found = m
			return true
		}
		return false
	})
	return found
}

// startRouter runs a Router on a Scope of n's bus with a collecting
// handler on each topic, and stops it with the test.
func startRouter(t *testing.T, n *netron.Node, topics ...string) *tap {
	t.Helper()
	r, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	tp := &tap{msgs: map[string][]*message.Message{}}
	sc := n.Bus().Scope()
	for _, topic := range topics {
		r.AddNoPublisherHandler("tap "+topic, topic, sc, tp.handler(topic))
	}
	runRouter(t, r)
	return tp
}

func runRouter(t *testing.T, r *message.Router) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	select {
	case <-r.Running():
	case err := <-done:
		t.Fatalf("router: %v", err)
	}
	t.Cleanup(func() {
		r.Close()
		<-done
	})
}

type busCounter struct{}

func (busCounter) Count(n int) <-chan int {
	ch := make(chan int)
	go func() {
		defer close(ch)
		for i := range n {
			ch <- i
		}
	}()
	return ch
}

// A Router attached to real nodes sees every kind of traffic as
// self-describing messages: connections, calls, replies (in and out), and
// events emitted locally and received from a peer.
func TestBusSelfDescribingTraffic(t *testing.T) {
	ctx := context.Background()
	server := startNode(t, nodeConfig("server", true))
	if err := server.Expose("calculator@1.0.0", benchCalc{}); err != nil {
		t.Fatal(err)
	}
	client := startNode(t, nodeConfig("client", false))
	st := startRouter(t, server, netron.TopicConnected, netron.TopicRequests, netron.TopicOutbound, netron.TopicEvents)
	ct := startRouter(t, client, netron.TopicOutbound, netron.TopicResponses, netron.TopicStreams)

	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	m := st.find(t, netron.TopicConnected, netron.MetaKind, netron.KindPeer, netron.MetaPeer, "client")
	if m.Metadata.Get(netron.MetaConnected) != "true" {
		t.Errorf("connected metadata %q", m.Metadata.Get(netron.MetaConnected))
	}

	svc, err := p.Service(ctx, "calculator@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rpc.Call[int](ctx, svc, "add", 2, 3); err != nil || got != 5 {
		t.Fatalf("add = %v, %v", got, err)
	}

	call := st.find(t, netron.TopicRequests, netron.MetaKind, netron.KindCall, netron.MetaMethod, "add")
	for k, want := range map[string]string{
		netron.MetaService: "calculator@1.0.0", netron.MetaPeer: "client",
		netron.MetaDirection: "in", netron.MetaPacket: "CALL", netron.MetaEncoding: netron.EncodingMsgpack,
	} {
		if got := call.Metadata.Get(k); got != want {
			t.Errorf("call %s = %q, want %q", k, got, want)
		}
	}
	args, err := netron.DecodeArgs(call)
	if err != nil || len(args) != 2 || args[0] != int64(2) || args[1] != int64(3) {
		t.Fatalf("call args %#v, %v", args, err)
	}
	corr := call.Metadata.Get(netron.MetaCorrelationID)
	if !strings.HasPrefix(corr, "client/") {
		t.Fatalf("correlation id %q", corr)
	}
	reply := st.find(t, netron.TopicOutbound, netron.MetaKind, netron.KindReply, netron.MetaCorrelationID, corr)
	var sum int
	if err := netron.DecodeResult(reply, &sum); err != nil || sum != 5 {
		t.Fatalf("reply %d, %v", sum, err)
	}
	if reply.Metadata.Get(netron.MetaDirection) != "out" || reply.Metadata.Get(netron.MetaPeer) != "client" {
		t.Errorf("reply metadata %v", reply.Metadata)
	}

	// The client's side: the call it sent and the reply it got share an id.
	out := ct.find(t, netron.TopicOutbound, netron.MetaKind, netron.KindCall, netron.MetaService, "calculator@1.0.0", netron.MetaMethod, "add")
	in := ct.find(t, netron.TopicResponses, netron.MetaCorrelationID, out.Metadata.Get(netron.MetaCorrelationID))
	sum = 0
	if err := netron.DecodeResult(in, &sum); err != nil || sum != 5 || in.Metadata.Get(netron.MetaKind) != netron.KindReply {
		t.Fatalf("client's reply %d, %v, %v", sum, err, in.Metadata)
	}

	// Streams: the chunks a method returns arrive as KindStream messages.
	if err := server.Expose("counter@1.0.0", busCounter{}); err != nil {
		t.Fatal(err)
	}
	csvc, err := p.Service(ctx, "counter@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	var chunks []int
	for v, err := range rpc.Stream[int](ctx, csvc, "count", 3) {
		if err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, v)
	}
	if len(chunks) != 3 {
		t.Fatalf("chunks %v", chunks)
	}
	sm := ct.find(t, netron.TopicStreams, netron.MetaKind, netron.KindStream, netron.MetaPacket, "STREAM", netron.MetaStreamIndex, "1")
	var chunk int
	if err := netron.DecodeResult(sm, &chunk); err != nil || chunk != 1 || sm.Metadata.Get(netron.MetaStreamID) == "" {
		t.Fatalf("stream chunk %d, %v, %v", chunk, err, sm.Metadata)
	}

	// Events: emitted on the server (its TopicEvents) and received by the
	// client from its subscription (an EXT event packet between Go peers).
	got := make(chan netron.Event, 1)
	sub, err := p.On(ctx, "order:created", func(e netron.Event) { got <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := server.Emit(ctx, "order:created", "A-17", 3); err != nil {
		t.Fatal(err)
	}
	recvEvent(t, got)
	em := st.find(t, netron.TopicEvents, netron.MetaKind, netron.KindEvent, netron.MetaEvent, "order:created")
	ev, err := netron.DecodeEvent(em)
	if err != nil || ev.Source != "server" || len(ev.Args) != 2 || ev.Args[0] != "A-17" || ev.Args[1] != int64(3) {
		t.Fatalf("event %+v, %v", ev, err)
	}
	rm := ct.find(t, netron.TopicStreams, netron.MetaKind, netron.KindEvent, netron.MetaEvent, "order:created")
	var id string
	if err := netron.DecodeArg(rm, 0, &id); err != nil || id != "A-17" || rm.Metadata.Get(netron.MetaSource) != "server" {
		t.Fatalf("received event %q, %v, %v", id, err, rm.Metadata)
	}
}

// With Config.BusJSON the payloads are JSON.
func TestBusJSONPayloads(t *testing.T) {
	cfg := nodeConfig("json", false)
	cfg.BusJSON = true
	n := startNode(t, cfg)
	tp := startRouter(t, n, netron.TopicEvents)
	if err := n.Emit(context.Background(), "order:created", "A-17", 3); err != nil {
		t.Fatal(err)
	}
	m := tp.find(t, netron.TopicEvents, netron.MetaEvent, "order:created")
	if m.Metadata.Get(netron.MetaEncoding) != netron.EncodingJSON || string(m.Payload) != `["A-17",3]` {
		t.Fatalf("payload %s, metadata %v", m.Payload, m.Metadata)
	}
	var n3 int
	if err := netron.DecodeArg(m, 1, &n3); err != nil || n3 != 3 {
		t.Fatalf("DecodeArg = %d, %v", n3, err)
	}
}

// replies subscribes to n's TopicReplies and returns a function that waits
// for the reply with a correlation id.
func replies(t *testing.T, n *netron.Node) func(corr string) *message.Message {
	t.Helper()
	ch, err := n.Bus().Scope(bus.WithPolicy(bus.Block)).Subscribe(t.Context(), netron.TopicReplies)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]*message.Message{}
	return func(corr string) *message.Message {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			mu.Lock()
			m := seen[corr]
			mu.Unlock()
			if m != nil {
				return m
			}
			select {
			case m := <-ch:
				m.Ack()
				mu.Lock()
				seen[m.Metadata.Get(netron.MetaCorrelationID)] = m
				mu.Unlock()
			case <-timeout:
				t.Fatalf("no reply %s within 30 s", corr)
			}
		}
	}
}

// Calls and events injected through Watermill run and answer; malformed
// and foreign messages are counted and answered with errors, and leave the
// node healthy.
func TestBusInjection(t *testing.T) {
	ctx := context.Background()
	var logs syncBuffer
	scfg := nodeConfig("server", true)
	scfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	server := startNode(t, scfg)
	if err := server.Expose("calculator@1.0.0", benchCalc{}); err != nil {
		t.Fatal(err)
	}
	client := startNode(t, nodeConfig("client", false))
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	serverReply := replies(t, server)
	clientReply := replies(t, client)

	call := func(n *netron.Node, peerID, service, method string, args ...any) *message.Message {
		t.Helper()
		m, err := netron.NewCallMessage(service, method, args...)
		if err != nil {
			t.Fatal(err)
		}
		if peerID != "" {
			m.Metadata.Set(netron.MetaPeer, peerID)
		}
		if err := n.Bus().Publish(netron.TopicCalls, m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	// A local call, and one on a named peer.
	m := call(server, "", "calculator@1.0.0", "add", 2, 3)
	var sum int
	if err := netron.DecodeResult(serverReply(m.UUID), &sum); err != nil || sum != 5 {
		t.Fatalf("local injected call: %d, %v", sum, err)
	}
	m = call(client, "server", "calculator", "add", 20, 22)
	r := clientReply(m.UUID)
	if err := netron.DecodeResult(r, &sum); err != nil || sum != 42 || r.Metadata.Get(netron.MetaKind) != netron.KindReply {
		t.Fatalf("remote injected call: %d, %v", sum, err)
	}
	// An error comes back as an *rpc.Error.
	m = call(client, "server", "calculator@1.0.0", "nope")
	var rerr *rpc.Error
	if err := netron.DecodeResult(clientReply(m.UUID), nil); !errors.As(err, &rerr) || rerr.Code != 404 {
		t.Fatalf("unknown method: %v", err)
	}
	if s := client.BusStats(); s.Calls != 2 {
		t.Errorf("client stats %+v", s)
	}

	// Malformed calls: no metadata, a payload that is not an array, an
	// unknown encoding. Each is answered with a 400 and counted.
	bad := []*message.Message{
		message.NewMessage("bad-1", []byte("hello")),
		withMeta(message.NewMessage("bad-2", []byte{0xc1}), netron.MetaService, "calculator", netron.MetaMethod, "add"),
		withMeta(message.NewMessage("bad-3", []byte{0x92, 0x01}), netron.MetaService, "calculator", netron.MetaMethod, "add"),
		withMeta(message.NewMessage("bad-4", []byte("[1,2]")), netron.MetaService, "calculator", netron.MetaMethod, "add", netron.MetaEncoding, "xml"),
	}
	for _, b := range bad {
		if err := server.Bus().Publish(netron.TopicCalls, b); err != nil {
			t.Fatal(err)
		}
		if err := netron.DecodeResult(serverReply(b.UUID), nil); !errors.As(err, &rerr) || rerr.Code != 400 {
			t.Fatalf("%s: %v", b.UUID, err)
		}
	}
	// A JSON call works too.
	j := withMeta(message.NewMessage("json-1", []byte("[1.5,2]")), netron.MetaService, "calculator", netron.MetaMethod, "add", netron.MetaEncoding, netron.EncodingJSON)
	if err := server.Bus().Publish(netron.TopicCalls, j); err != nil {
		t.Fatal(err)
	}
	if err := netron.DecodeResult(serverReply("json-1"), &sum); err == nil {
		// benchCalc.Add takes ints: 1.5 is refused, as from any caller.
		t.Fatalf("1.5 + 2 = %d", sum)
	}

	// Events: a message on TopicEvents reaches local handlers and the
	// peers subscribed to the event.
	local := make(chan netron.Event, 4)
	remote := make(chan netron.Event, 4)
	on(t, server, "order:created", func(e netron.Event) { local <- e })
	sub, err := p.On(ctx, "order:created", func(e netron.Event) { remote <- e })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	em, err := netron.NewEventMessage("order:created", "A-17", 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Bus().Publish(netron.TopicEvents, em); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []chan netron.Event{local, remote} {
		e := recvEvent(t, ch)
		var n3 int
		if e.Name != "order:created" || e.Source != "server" || e.Decode(1, &n3) != nil || n3 != 3 {
			t.Fatalf("injected event %+v", e)
		}
	}
	// A foreign message on TopicEvents is dropped and counted.
	before := server.BusStats().Rejected
	if err := server.Bus().Publish(netron.TopicEvents, message.NewMessage("foreign", []byte(`{"hello":1}`))); err != nil {
		t.Fatal(err)
	}
	if s := server.BusStats(); s.Rejected != before+1 || s.Events != 1 {
		t.Fatalf("stats after a foreign event %+v (rejected before %d)", s, before)
	}

	// The topics of connections are read-only: the message of the issue,
	// published on the requests topic, is refused instead of crashing a
	// subscriber.
	for _, topic := range []string{netron.TopicRequests, netron.TopicResponses, netron.TopicStreams, netron.TopicConnected, netron.TopicOutbound, netron.TopicPeerEvents} {
		err := server.Bus().Publish(topic, message.NewMessage("x", []byte(`{"Conn":{},"Packet":{"ID":6,"Flags":67,"Data":"lA=="}}`)))
		if !errors.Is(err, bus.ErrReadOnly) {
			t.Fatalf("publish on %s: %v", topic, err)
		}
	}
	svc, err := p.Service(ctx, "calculator@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rpc.Call[int](ctx, svc, "add", 1, 1); err != nil || got != 2 {
		t.Fatalf("after the bad messages: %d, %v", got, err)
	}
	if strings.Contains(logs.String(), "panic") {
		t.Fatalf("a panic was logged:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "injected message dropped") {
		t.Fatalf("no rejection was logged:\n%s", logs.String())
	}
}

func withMeta(m *message.Message, kv ...string) *message.Message {
	for i := 0; i+1 < len(kv); i += 2 {
		m.Metadata.Set(kv[i], kv[i+1])
	}
	return m
}

// A Router handler stuck on every traffic topic does not hold up the
// node: with the taps blocked (a fake that waits for the test), 2,000
// sequential calls complete, and the taps count what they dropped.
func TestBusStuckTapDoesNotThrottle(t *testing.T) {
	ctx := context.Background()
	server := startNode(t, nodeConfig("server", true))
	if err := server.Expose("calculator@1.0.0", benchCalc{}); err != nil {
		t.Fatal(err)
	}
	client := startNode(t, nodeConfig("client", false))
	r, err := message.NewRouter(message.RouterConfig{}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	entered := make(chan string, 16)
	sc := server.Bus().Scope()
	topics := []string{netron.TopicRequests, netron.TopicOutbound, netron.TopicConnected, netron.TopicEvents}
	for _, topic := range topics {
		var once sync.Once
		r.AddNoPublisherHandler("stuck "+topic, topic, sc, func(*message.Message) error {
			once.Do(func() { entered <- topic })
			<-release
			return nil
		})
	}
	runRouter(t, r)
	defer close(release)

	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := p.Service(ctx, "calculator@1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	// The handlers of requests and outbound are stuck in their first
	// message before the calls that must get past them.
	stuck := map[string]bool{}
	for len(stuck) < 2 || !stuck[netron.TopicRequests] || !stuck[netron.TopicOutbound] {
		if _, err := rpc.Call[int](ctx, svc, "add", 1, 1); err != nil {
			t.Fatal(err)
		}
		select {
		case topic := <-entered:
			stuck[topic] = true
		default:
		}
	}
	const calls = 2000
	for i := range calls {
		if got, err := rpc.Call[int](ctx, svc, "add", i, 1); err != nil || got != i+1 {
			t.Fatalf("call %d: %d, %v", i, got, err)
		}
	}
	// Each stuck topic saw 2,000 messages and holds at most its buffer
	// and the one in the handler.
	if d := sc.Dropped(); d < 2*(calls-bus.DefaultBufferSize-1) {
		t.Fatalf("dropped %d, want at least %d", d, 2*(calls-bus.DefaultBufferSize-1))
	}
}

// An event injected through Watermill reaches a plain Netron (Titan)
// subscriber as the same emit request Node.Emit sends it (capture 2,
// phase 2, byte for byte).
func TestInjectedEventReachesTitanPeer(t *testing.T) {
	server := startNode(t, netron.Config{ID: "ts-server", Host: "127.0.0.1", Server: true})
	raw := dialRaw(t, server.URL(), "ts-client", true)
	raw.send(unhex(t, "00000010 44 92 a9 737562736372696265 a4 6e657773")) // subscribe "news"
	if r := raw.recv(); !bytes.Equal(r.Append(nil), unhex(t, "00000010 04 d40000")) {
		t.Fatalf("subscribe answer % x", r.Append(nil))
	}
	em, err := netron.NewEventMessage("news", map[string]any{"headline": "first", "n": 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Bus().Publish(netron.TopicEvents, em); err != nil {
		t.Fatal(err)
	}
	r := raw.recv()
	if r.Flags != 0x44 || !bytes.Equal(r.Data, unhex(t, "93 a4656d6974 a46e657773 82 a8686561646c696e65 a56669727374 a16e 01")) {
		t.Fatalf("injected event to the Titan peer: %x % x", r.Flags, r.Data)
	}
	raw.send(append(wire.AppendHeader(nil, r.ID, 0x04), 0xd4, 0, 0))
	if s := server.BusStats(); s.Events != 1 || s.Rejected != 0 {
		t.Fatalf("stats %+v", s)
	}
}
