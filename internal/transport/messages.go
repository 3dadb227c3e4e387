package transport

import (
	"github.com/netron-go/netron/internal/wire"
)

// Bus topics on which a Hub publishes what its connections receive and
// send, and on which it announces connections. Each Conn also has an
// outbound topic of its own (Conn.OutboundTopic), whose packets the
// connection writes; TopicOutbound is the node-wide view of what all of
// them send.
const (
	// TopicRequests carries Inbound requests (impulse bit set) of types
	// GET, SET, CALL and TASK. PING is answered by the connection itself.
	TopicRequests = "netron.peer.requests"
	// TopicResponses carries Inbound responses (impulse bit clear).
	TopicResponses = "netron.peer.responses"
	// TopicStreams carries Inbound STREAM, STREAM_ERROR, STREAM_CLOSE and
	// extension packets.
	TopicStreams = "netron.peer.streams"
	// TopicConnected carries a ConnEvent once a handshake completes.
	TopicConnected = "netron.peer.connected"
	// TopicDisconnected carries a ConnEvent once a connection has closed
	// and every resource it held is released.
	TopicDisconnected = "netron.peer.disconnected"
	// TopicOutbound carries a Sent for every packet a connection queues
	// for writing, published before the writer can take it. Nothing
	// consumes it inside the node: it is the tap for observers.
	TopicOutbound = "netron.peer.outbound"
)

// Sent is a packet on its way to a peer, as TopicOutbound shows it. Frame
// is the encoded packet; it is valid only during the publish (the
// connection releases it once written): a subscriber that keeps it must
// copy it.
type Sent struct {
	Conn  *Conn
	Frame []byte
}

// Inbound is a packet received from a peer. Packet.Data aliases the frame
// it arrived in, which is not reused.
type Inbound struct {
	Conn   *Conn
	Packet wire.Packet
	// Message is the size of the WebSocket message the packet came in:
	// more than the packet's when a Go peer batched several packets into
	// one (ExtensionBatch). The packet's data aliases that message.
	Message int
	// Refused is set on a request (TopicRequests) or a STREAM chunk
	// (TopicStreams) whose message did not fit the node's inbound memory
	// (WithInboundMemory): it was read and dropped, and Packet has its
	// header (and a chunk its stream id and index) but no data. The RPC
	// server answers such a request with 503; its stream fails.
	Refused bool

	seq   uint32       // the reader's number of its message, for Conn.Adopt; 0 in a batch
	batch *batchCharge // the charge of its batch, for Conn.Keep
}

// Outbound is an encoded packet on its way to a peer. The connection
// takes ownership of Frame; Release, if set, is called after the write
// (or once the packet is dropped because the connection closed).
type Outbound struct {
	Frame   []byte
	Release func([]byte)

	sender bool // published by Conn.Send, which writes it itself
	queued bool // given to the writer by Conn.queue before it was published
}

func (o *Outbound) release() {
	if o.Release != nil {
		o.Release(o.Frame)
	}
}

// ConnEvent announces a connection that opened or closed.
type ConnEvent struct {
	Conn   *Conn
	PeerID string
	// Err is the reason a connection closed (wraps peer.ErrDisconnected); nil
	// for TopicConnected.
	Err error
}
