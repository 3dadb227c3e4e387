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
)
