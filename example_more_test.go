package netron_test

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/peer"
	"github.com/netron-go/netron/rpc"
	"github.com/netron-go/netron/stream"
)

// Numbers produces a stream (Count) and reads one (Sum).
type Numbers struct{}

func (Numbers) Count(n int) iter.Seq2[int, error] {
	return func(yield func(int, error) bool) {
		for i := 1; i <= n; i++ {
			if !yield(i, nil) {
				return
			}
		}
	}
}

func (Numbers) Sum(ctx context.Context, r *stream.Reader[int]) (int, error) {
	sum := 0
	for v, err := range r.All() {
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// Streams between nodes: a method that returns an iterator produces a
// stream the caller ranges over; a stream.Source passed as an argument is
// uploaded to a method that takes a *stream.Reader. Flow control holds the
// producer back while the consumer is behind.
func Example_streams() {
	ctx := context.Background()
	server, _ := netron.New(netron.Config{ID: "numbers-node", Host: "127.0.0.1", Server: true})
	_ = server.Expose("numbers@1.0.0", Numbers{})
	if err := server.Start(ctx); err != nil {
		panic(err)
	}
	defer server.Stop(ctx)
	client, _ := netron.New(netron.Config{ID: "client"})
	_ = client.Start(ctx)
	defer client.Stop(ctx)
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		panic(err)
	}
	nums, _ := p.Service(ctx, "numbers@^1")

	for v, err := range rpc.Stream[int](ctx, nums, "count", 3) {
		fmt.Println("count:", v, err)
	}
	sum, err := rpc.Call[int](ctx, nums, "sum", stream.FromSeq(Numbers{}.Count(3)))
	fmt.Println("sum:", sum, err)
	// Output:
	// count: 1 <nil>
	// count: 2 <nil>
	// count: 3 <nil>
	// sum: 6 <nil>
}

// Discovery: nodes register themselves and their services; a node finds a
// service by name and semver range on whichever node has it, and connects
// to that node. Here the two nodes share an in-memory registry; with
// Config.Discovery.Redis they share Redis Streams instead.
func Example_discovery() {
	ctx := context.Background()
	hub := discovery.NewHub() // one registry for this example's nodes
	calcReg, clientReg := discovery.NewMemory(discovery.WithHub(hub)), discovery.NewMemory(discovery.WithHub(hub))
	defer calcReg.Close() // a backend given in Config is the caller's to close
	defer clientReg.Close()
	calc, _ := netron.New(netron.Config{ID: "calc-1", Host: "127.0.0.1", Server: true, DiscoveryBackend: calcReg})
	_ = calc.Expose("calculator@1.2.0", Calculator{}) // registered when the node starts
	if err := calc.Start(ctx); err != nil {
		panic(err)
	}
	defer calc.Stop(ctx)
	client, _ := netron.New(netron.Config{ID: "client", DiscoveryBackend: clientReg})
	_ = client.Start(ctx)
	defer client.Stop(ctx)

	svc, err := client.Service(ctx, "calculator@^1") // found on calc-1, connected to it
	if err != nil {
		panic(err)
	}
	sum, err := rpc.Call[float64](ctx, svc, "add", 2, 3)
	fmt.Println(svc.PeerID(), svc.QualifiedName(), sum, err)
	_, err = client.Service(ctx, "calculator@^2")
	fmt.Println(errors.Is(err, rpc.ErrServiceNotFound))
	// Output:
	// calc-1 calculator@1.2.0 5 <nil>
	// true
}

// The bus: every event of a node is a message on its bus, which implements
// Watermill's Subscriber (and Publisher), so Watermill's Router and
// middleware work on it.
func Example_bus() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, _ := netron.New(netron.Config{ID: "bus-node"})
	_ = n.Start(ctx)
	defer n.Stop(context.Background())

	msgs, err := n.Bus().Subscribe(ctx, netron.TopicEvents)
	if err != nil {
		panic(err)
	}
	_ = n.Emit(ctx, "order:created", "A-17", 3)
	msg := <-msgs
	ev, err := netron.DecodeEvent(msg)
	msg.Ack()
	fmt.Println(msg.Metadata.Get(netron.MetaKind), msg.Metadata.Get(netron.MetaEvent), ev.Args, ev.Source, err)
	// Output: event order:created [A-17 3] bus-node <nil>
}

// Typed events of a node: connections opening and closing as PeerEvents.
func ExampleSubscribe() {
	ctx := context.Background()
	server, _ := netron.New(netron.Config{ID: "server", Host: "127.0.0.1", Server: true})
	if err := server.Start(ctx); err != nil {
		panic(err)
	}
	defer server.Stop(ctx)
	sub, err := netron.Subscribe[netron.PeerEvent](server)
	if err != nil {
		panic(err)
	}
	defer sub.Close()

	client, _ := netron.New(netron.Config{ID: "client"})
	_ = client.Start(ctx)
	p, _ := client.Connect(ctx, server.URL())
	_ = p.Close()
	for range 2 {
		e := <-sub.C()
		fmt.Println(e.PeerID, e.Connected)
	}
	_ = client.Stop(ctx)
	// Output:
	// client true
	// client false
}

// The channel form of a subscription, with a pattern.
func ExampleNode_Events() {
	ctx := context.Background()
	n, _ := netron.New(netron.Config{ID: "events-node"})
	_ = n.Start(ctx)
	defer n.Stop(ctx)

	sub, err := n.Events("order:*")
	if err != nil {
		panic(err)
	}
	_ = n.Emit(ctx, "order:created", "A-17")
	_ = n.Emit(ctx, "invoice:sent", "I-3") // does not match
	_ = n.Emit(ctx, "order:shipped", "A-17")
	for range 2 {
		e := <-sub.C()
		fmt.Println(e.Name, e.Args)
	}
	_ = sub.Close()
	_, open := <-sub.C()
	fmt.Println("open after Close:", open)
	// Output:
	// order:created [A-17]
	// order:shipped [A-17]
	// open after Close: false
}

// A task: a function peers run by name (Netron's TASK), with the caller's
// identity in its context. The tasks the node answers itself are reserved.
func ExampleNode_HandleTask() {
	ctx := context.Background()
	server, _ := netron.New(netron.Config{ID: "task-node", Host: "127.0.0.1", Server: true})
	err := server.HandleTask("greet", func(ctx context.Context, args *rpc.Args) (any, error) {
		var name string
		if err := args.Next(&name); err != nil {
			return nil, err
		}
		_, authenticated := peer.IdentityFrom(ctx)
		return fmt.Sprintf("hello %s (authenticated: %v)", name, authenticated), nil
	})
	fmt.Println(err)
	fmt.Println(errors.Is(server.HandleTask("subscribe", nil), rpc.ErrInvalidTask))
	if err := server.Start(ctx); err != nil {
		panic(err)
	}
	defer server.Stop(ctx)

	client, _ := netron.New(netron.Config{ID: "client"})
	_ = client.Start(ctx)
	defer client.Stop(ctx)
	p, _ := client.Connect(ctx, server.URL())
	r, err := p.RunTask(ctx, "greet", "ada")
	var s string
	if err == nil {
		err = r.Decode(&s)
	}
	fmt.Println(s, err)
	// Output:
	// <nil>
	// true
	// hello ada (authenticated: false) <nil>
}

// A peer's events as a channel; the subscription ends by itself when the
// peer is gone, and says why.
func ExamplePeer_Events() {
	ctx := context.Background()
	server, _ := netron.New(netron.Config{ID: "news-node", Host: "127.0.0.1", Server: true})
	if err := server.Start(ctx); err != nil {
		panic(err)
	}
	client, _ := netron.New(netron.Config{ID: "reader", Reconnect: netron.ReconnectConfig{Disabled: true}})
	_ = client.Start(ctx)
	defer client.Stop(ctx)
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		panic(err)
	}
	sub, err := p.Events(ctx, "news")
	if err != nil {
		panic(err)
	}
	_ = server.Emit(ctx, "news", "first")
	e := <-sub.C()
	fmt.Println(e.Name, e.Args, "from", e.Source)

	_ = server.Stop(ctx)
	<-sub.Done()
	fmt.Println(errors.Is(sub.Err(), netron.ErrPeerDisconnected))
	// Output:
	// news [first] from news-node
	// true
}
