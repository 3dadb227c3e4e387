// Package transport holds a node's WebSocket connections to other Netron nodes
// and bridges them to the bus.
//
// A Hub accepts connections (it is an http.Handler; Listen also serves it on
// a listener of its own) and dials them, running Titan's handshake: the
// client dials /?id=<its id> (and sends the x-netron-id header), the server
// sends {"type":"id","id":<its id>}, and the client may answer
// {"type":"client-id","id":<its id>} in a binary or text frame. A Titan
// client gets that hello only once it has answered a ping (see
// Hub.ServeHTTP): it loses one that arrives with the 101 response.
//
// Each Conn has one reader goroutine. It decodes packet headers and
// publishes Inbound messages on TopicRequests, TopicResponses or
// TopicStreams; it answers PING packets itself. Outbound packets are
// published on the connection's own outbound topic, whose subscriber queues
// them, bounded by WithOutboundQueue: a full queue makes senders wait
// (backpressure). There is no writer goroutine: the sender that finds no
// write in progress writes, taking along what others queued meanwhile (one
// WebSocket message for all of them between Go peers, see ExtensionBatch),
// and hands the role to a short-lived goroutine if the queue keeps filling.
// A lone call therefore costs no goroutine hand-off on its way out, and an
// idle connection costs one goroutine. After writing a lone packet the
// sender yields the processor once, which wakes an idle one to poll the
// network for the answer (see Conn.Send). Keep-alive pings run on a timer and
// close a connection whose peer stops answering; a write watchdog, armed
// while writes go on, closes one whose peer stops reading (a write that
// makes no progress for WithWriteTimeout) with peer.ErrWriteTimeout. A
// dialled connection writes each WebSocket frame in one system call, not
// in the 4 KiB parts coder/websocket masks a client's frames in (see
// frameWriter); a reader starts a message's buffer at the size of the
// connection's last large message, so a stream's chunks are read without
// growing it. WithCompression offers permessage-deflate, negotiated per
// connection (Conn.Compressed).
//
// A frame that is not a packet (garbage, a truncated packet, an unknown
// packet type) closes that connection with status 1002 and the reason; a
// text frame that is not UTF-8 with 1007; a frame over the read limit with
// 1009. Other connections are not affected.
//
// What the hub's connections make the node hold is bounded node-wide by
// its Memory (WithInboundMemory), each connection to a quarter of it: the
// reader charges every message as it reads it (replies to the node's own
// calls aside: AwaitReplies), and hands the charge over to the subscriber
// that keeps the packet (Adopt, Keep): package rpc for a request and its
// decoding, package stream for the chunks of peers without flow control,
// the root package for events. Its users take, never wait: what does not
// fit is refused, and a message that does not fit is read and dropped
// (Inbound.Refused), the connection kept. Connections that are not peers
// yet are bounded too: upgrades in their handshake count against
// WithMaxPeers and WithMaxPending, and Listen's server times out
// (WithReadHeaderTimeout, WithIdleTimeout) and bounds HTTP connections
// before their upgrade. When a connection closes, its Err wraps peer.ErrDisconnected and a
// ConnEvent is published on TopicDisconnected before anything else
// happens, so that pending requests fail at once.
package transport
