// Package stream carries streams of values between nodes as Go channels
// and iterators, with flow control that reaches the producer.
//
// # Producing
//
// A service method produces a stream by returning a receive-only channel
// (<-chan T), an iterator (iter.Seq2[T, error]) or a Source, or by taking
// a *Writer[T] as its last parameter and sending to it (package rpc does
// the wiring). The context the method gets is cancelled when the consumer
// stops, so a producer that would run forever stops when nobody reads: a
// channel send, or Writer.Send, waits while the consumer is behind and
// returns (or must select on ctx) when it stops. A producer's error
// reaches the consumer after the chunks it sent before it.
//
// # Consuming
//
// A caller gets a *Reader[T] (rpc.OpenStream) or an iterator
// (rpc.Stream): range over Reader.C or Reader.All, or loop over
// Reader.Recv. Reader.Err (or the last pair of All) is nil only after the
// producer's end of stream: a consumer can always tell a complete stream
// from a broken one (producer error, disconnect, protocol violation,
// inactivity). Stopping early cancels the producer: breaking out of All,
// Close, or cancelling the context the stream was opened with.
//
// A stream can also go the other way: a caller passes a Source (or a
// channel or iterator) as a call argument, and the method takes a
// *Reader[T] parameter. Titan cannot do this: it needs the extension Go
// peers negotiate.
//
// # Limits
//
// Between Go peers every stream has credit-based flow control: the memory
// a stream holds is bounded by its consumer's window (Config.StreamWindow, 1 MiB, growing while
// the consumer keeps up), however slow the consumer; plain Netron peers get
// Titan's framing without it, bounded by the connection's queues and the
// node's inbound memory. Finite (non-live) streams end with ErrInactive
// when no chunk comes for the inactivity timeout (Config.StreamTimeout,
// 60 s) while the consumer waits; live streams (the default for methods, as
// Titan's generators) have no timeout. A node holds at most
// Config.MaxStreamsPerPeer streams per peer and direction (1000) and
// refuses chunks larger than Config.MaxStreamChunkSize (4 MiB). A disconnect ends
// every stream of the connection with the connection's error (it matches
// peer.ErrDisconnected) on the consumer and cancels the producer.
// docs/protocol.md documents the wire and the flow control.
package stream
