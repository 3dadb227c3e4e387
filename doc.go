// Package netron is Netron for Go: an event-bus-centric messaging runtime
// that speaks the wire format of Netron from the Titan framework.
//
// A process runs a Node. Nodes connect to each other over WebSocket, expose
// versioned services ("name@semver"), and call each other's methods:
//
//	server, _ := netron.New(netron.Config{ID: "calc-node", Port: 9000})
//	_ = server.Start(ctx)
//	_ = server.Expose("calculator@1.0.0", &Calculator{}) // Add → "add"
//
//	client, _ := netron.New(netron.Config{ID: "client"})
//	_ = client.Start(ctx)
//	p, _ := client.Connect(ctx, "ws://127.0.0.1:9000")
//	calc, _ := p.Service(ctx, "calculator@^1")         // exact, latest or range
//	sum, _ := rpc.Call[int](ctx, calc, "add", 2, 3)
//
// Inside a node all traffic is typed messages on one bus (package bus,
// Node.Bus), which implements Watermill's Publisher and Subscriber: each
// connection's reader publishes the packets that arrive, the RPC server and
// client and the stream engine consume them, and each connection's writer
// consumes its own outbound topic. The node's events are on the bus too
// (TopicEvents, TopicPeerEvents, …), for Watermill's Router and middleware.
//
// When a connection closes, every call pending on it fails at once with an
// error that matches ErrPeerDisconnected, and is never sent again. A peer
// this node dialled reconnects with exponential backoff and jitter
// (Config.Reconnect) behind the same *Peer: its service handles and event
// subscriptions carry on over the new connection, and calls made between
// connections fail at once with ErrReconnecting (docs/reliability.md).
// Errors a peer sends back are
// *rpc.Error values that match the sentinels of package rpc
// (rpc.ErrServiceNotFound, rpc.ErrMethodNotFound, rpc.ErrArgumentCount, …).
//
// Events: Node.On subscribes to lifecycle events (peer:connected,
// service:expose, node:joined, … under both the seed's and Titan's names)
// and user events, with "prefix*" patterns; Node.Emit publishes; Peer.On
// follows a remote node's events with Titan's subscribe/emit tasks. Every
// way to subscribe (Node.On and Node.Events, Subscribe[E] for typed events,
// Peer.On and Peer.Events) returns a *Subscription: a handler or a channel,
// Close to end it, Done and Err to learn that it ended by itself.
//
// Streams: a method returning <-chan T or iter.Seq2[T, error], or writing
// to a *stream.Writer[T], produces a stream the caller ranges over with
// rpc.Stream; credit flow control, cancellation and errors travel with it.
//
// Discovery: with Config.Discovery enabled the node registers itself and
// its services (in-memory, or on Redis Streams), and Node.Service finds a
// service by name and semver range on the nodes of the cluster and
// balances its calls over them (WithBalancer, WithPinned,
// Config.OutlierDetection; see docs/balancing.md). With
// AutoConnect it also connects to every node that joins, or comes back at
// another address. A peer dialled because discovery named its node (by
// AutoConnect or a lookup) gives up reconnecting once its node has left
// discovery (peers from Node.Connect are left alone).
//
// Packages: bus (the in-process bus), rpc (service handles, calls,
// errors, service descriptions, access control), stream (the typed ends of
// a stream), peer (identities, authentication, connection errors),
// discovery (discovery and presence), app (application lifecycle). The
// engines they front (WebSocket transport, RPC, streams, the wire codec)
// are internal. docs/protocol.md documents every byte.
package netron
