// Package rpccore is the RPC engine of a node: the Registry of its exposed
// services, the Server that answers peers' CALL and TASK requests, and the
// Client that sends requests and matches their responses. The root package
// builds them from its Config; users see them through package rpc (Service,
// Result, Args, Error), whose values this package builds through
// internal/rpclink.
//
// A Registry holds the services of a node under "name@version". Exposing a
// value makes its exported methods callable under their lowerCamel
// WireName; the rules are in package rpc's doc.
//
// A Server consumes transport.TopicRequests from the bus. query_interface and
// the old package's abilities task are built in; HandleTask adds more (the
// root's subscribe, unsubscribe and emit, and Node.HandleTask). A handler's
// panic becomes a 500 error for the caller and a log line. A Client sends
// requests and matches responses through one long-lived subscription; a
// ConnSource gives it the connection of a peer that reconnects at each
// call (RemoteVia).
//
// Streams: the reply of a streaming method carries a StreamReference and
// the chunks follow through the node's streamcore.Manager (WithStreams,
// WithClientStreams).
//
// Memory: decoding a request's arguments allocates at most its decode
// budget (wire.Budget: 32 × its bytes + 64 KiB, at most
// transport.WithMaxDecodeMemory, 64 MiB), or the call fails with
// rpc.ErrDecodeBudget (400); the third request of a connection in a row
// whose own data does that (no successful request between; a handler's
// error matching rpc.ErrDecodeBudget does not count) closes the connection
// (1008). Each request takes over its message's charge to the node's
// inbound memory (transport.WithInboundMemory; a batched request is copied and
// charged its own bytes), charges its decoding as it goes (wire.Account)
// and keeps what its arguments took until its reply is sent; a request
// that does not fit is refused at once with a 503 error (reason
// "InboundMemory"). Calls to a service of this node (Registry.Local) decode
// without a budget; results from peers decode within the connection's cap,
// not charged (the caller asked for them). A plain Netron peer's stream
// arguments are registered as its CALL is read (streamcore.Manager.Expect), so
// the chunks it sends right behind it are kept.
package rpccore
