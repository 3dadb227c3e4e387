package peer

import "errors"

// Sentinel errors of package peer.
var (
	// ErrDisconnected is the error every pending operation on a connection
	// fails with when the connection closes. The connection's Err wraps it
	// together with the cause.
	ErrDisconnected = errors.New("peer: disconnected")
	// ErrClosed is returned by a Hub that has been closed.
	ErrClosed = errors.New("peer: hub closed")
	// ErrHandshake reports a failed Netron handshake.
	ErrHandshake = errors.New("peer: handshake failed")
	// ErrProtocol reports a frame from the peer that is not a Netron packet.
	ErrProtocol = errors.New("peer: protocol violation")
	// ErrGoingAway is returned for requests to a peer that announced it is
	// shutting down (goaway): they should go to another node.
	ErrGoingAway = errors.New("peer: going away")
	// ErrWriteTimeout is the cause of a connection closed because a write
	// to the peer made no progress for the write timeout (WithWriteTimeout):
	// the peer stopped reading.
	ErrWriteTimeout = errors.New("peer: write timeout")
	// ErrTooManyPeers is returned when the hub's peer limit is reached.
	ErrTooManyPeers = errors.New("peer: too many peers")
	// ErrPolicy is the cause of a connection closed because its peer kept
	// sending what the node refuses (Conn.ClosePolicy, status 1008).
	ErrPolicy = errors.New("peer: policy violation")
)
