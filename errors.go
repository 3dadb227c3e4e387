package netron

import (
	"errors"

	"github.com/netron-go/netron/peer"
)

// Errors of package netron. Errors of the packages below are returned
// as they are and match their own sentinels (rpc.ErrMethodNotFound, …).
var (
	// ErrPeerDisconnected matches the error of every call pending on a
	// connection that closed (it is peer.ErrDisconnected).
	ErrPeerDisconnected = peer.ErrDisconnected
	// ErrNotStarted is returned by operations that need a started node.
	ErrNotStarted = errors.New("netron: node not started")
	// ErrStopped is returned after Stop.
	ErrStopped = errors.New("netron: node stopped")
	// ErrAlreadyStarted is returned by a second Start.
	ErrAlreadyStarted = errors.New("netron: node already started")
	// ErrReconnecting is the error of calls, lookups and subscriptions
	// made through a dialled Peer while it is between connections
	// (Config.Reconnect): they fail at once, they are never queued or
	// replayed. It also matches ErrPeerDisconnected.
	ErrReconnecting error = reconnectingError{}
)

type reconnectingError struct{}

func (reconnectingError) Error() string { return "netron: peer disconnected, reconnecting" }

// Is makes ErrReconnecting match ErrPeerDisconnected.
func (reconnectingError) Is(target error) bool { return target == peer.ErrDisconnected }
