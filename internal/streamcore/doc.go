// Package streamcore is the stream engine of a node: the Manager of its
// streams, the producer's (Outbound) and consumer's (Inbound) state of
// each, and their control packets. Users see package stream (Reader,
// Writer, Source), which registers its typed ends here (RegisterTyped) for
// the engines to find them among a method's parameters and results.
//
// # Wire
//
// Streams are Titan's: the reply (or the argument) carries a
// StreamReference (ext 107: stream id as a msgpack string, u8 type 1, u8
// live, peer id); each chunk is a STREAM request (flags 0x45, 0x65 when
// live) with a fresh packet id and the trailer u32 streamId, u32
// streamIndex (0, 1, 2, …); the end is the same with the eos bit and nil
// data at index = chunk count; a producer's error is STREAM_ERROR
// {streamId, message}; STREAM_CLOSE {streamId, reason} closes a stream
// early. Titan sends a failing generator's error as STREAM_CLOSE and its
// consumer ends normally; here STREAM_CLOSE before the end of stream is an
// error (ErrClosedByPeer), and our producers send STREAM_ERROR, also when
// they stop before their end without an error of their own
// (Outbound.Abort, the claim timeout below).
//
// Titan reorders chunks by index; the transport is ordered, so here a
// chunk out of order fails its stream (ErrIndexGap). Titan opens a stream
// for any unknown id; here chunks of streams that were not announced in a
// reply or opened by a call are dropped (and logged at debug level).
//
// # Flow control (the extension)
//
// Between Go peers that negotiated Extension ("stream-credit") in the
// abilities exchange, every stream has credit-based flow control, carried
// in EXT packets (type 8) whose data is a msgpack array starting with a
// sub-kind: ["credit", streamId, bytes] from consumer to producer grants
// credit, ["cancel", streamId, reason] stops the producer. Credit counts
// the bytes of whole STREAM packets. A producer starts with none and may
// send a chunk while its credit is positive (one chunk may overdraw it);
// the consumer grants its window (WithWindow, 1 MiB by default) when it
// opens the stream and grants what it has taken whenever that reaches half
// the window; a grant made with nothing left in its queue (the consumer
// keeps up) also doubles the window, up to WithMaxWindow. The memory a
// stream holds is therefore bounded by its (grown) window plus one chunk
// on each side, however slow the consumer. (Between Go peers several
// packets may share a WebSocket message, extension batch1, and a chunk's
// bytes alias their message: a chunk that shares it is copied out so that
// it does not keep the message alive, unless it is 64 KiB or more and the
// rest of the message at most 512 KiB, as in a Go sender's batches.) A
// peer that
// sends without credit, or grants more than MaxWindow, fails the stream
// with ErrCreditOverflow.
//
// A producer that gets no credit within the claim timeout (WithClaimTimeout,
// 10 s) gives up (ErrNotClaimed) and sends STREAM_ERROR {streamId,
// "not-claimed"}; credit for a stream the producer no longer has gets the
// same answer. A consumer that opens the stream too late (a method that
// starts late and reads its stream argument) therefore fails with a
// RemoteError matching ErrNotClaimed instead of waiting for ever. With the
// extension a consumer cancels with EXT cancel only, so STREAM_ERROR and
// STREAM_CLOSE name the receiver's inbound streams only: one for an id the
// receiver does not consume never ends the receiver's own stream of that
// id.
//
// Plain Netron peers get streams without the extension: our producer is
// bounded by the connection's outbound queue, our consumer buffers at most
// WithMaxBuffered (10,000 chunks, like Titan, and 64 MiB) and fails the
// stream with ErrBufferOverflow beyond, or when the node's inbound memory
// (transport.WithInboundMemory), which such chunks count against at what they
// cost (the message each keeps, or its copy, and its queue entry) until
// they are read, is full, or their message did not fit it and was dropped. A plain peer sends the chunks of a stream it passes as an
// argument right behind its CALL: package rpc registers the stream with
// Expect as the CALL is read, so they are buffered until the method opens
// it, and Forget lets it go if the call fails first. A consumer stops a
// plain producer with STREAM_CLOSE {streamId, "consumer-cancel"}: Titan
// ignores it, our producers honour it (STREAM_ERROR or STREAM_CLOSE whose
// id is not a stream we consume). Titan looks STREAM_CLOSE up among the streams it
// reads, so while we produce a stream with the same id (both sides number
// from 1) the cancel is not sent, lest Titan end our stream early; the
// peer's producer then runs to its end and its chunks are dropped. Of a
// plain peer's STREAM_CLOSE, only "stream-limit-reached" is about a stream
// we produce, whatever we consume.
//
// # Limits
//
// Finite (non-live) streams end with ErrInactive when no chunk comes for
// WithInactivityTimeout (60 s) while the consumer waits; live streams (the
// default for methods, as Titan's generators) have no timeout. At most
// WithMaxStreams (1000) streams per peer and direction: beyond, the call
// fails and the consumer sends the reason "stream-limit-reached". A chunk
// larger than WithMaxChunkSize (4 MiB) fails its stream. A disconnect ends
// every stream of the connection with the connection's error (it matches
// peer.ErrDisconnected) on the consumer and cancels the producer.
//
// # The Manager
//
// One Manager per node consumes transport.TopicStreams and
// transport.TopicDisconnected from the bus. Its callbacks run in the
// connections' reader goroutines and never block; chunks travel on the bus
// as typed transport.Inbound messages like every other packet, and outgoing
// chunks go through each connection's outbound topic.
package streamcore
