package discovery

import "errors"

// Sentinel errors. Errors returned by this package and by the backends in its
// subpackages wrap one of these, so callers can test them with errors.Is.
var (
	// ErrClosed is returned by every method called after Close (or Kill).
	ErrClosed = errors.New("discovery: closed")
	// ErrInvalidNode reports a NodeInfo that cannot be registered: an empty
	// or oversized id, an empty service name, too many services or metadata
	// entries.
	ErrInvalidNode = errors.New("discovery: invalid node")
	// ErrInvalidVersion reports a service version that is not semantic
	// versioning ("1.2.3", "v1.2", "1.0.0-rc.1").
	ErrInvalidVersion = errors.New("discovery: invalid version")
	// ErrInvalidRange reports a version range MatchVersion and Find cannot
	// parse.
	ErrInvalidRange = errors.New("discovery: invalid version range")
	// ErrInvalidOption reports an option value a constructor rejects.
	ErrInvalidOption = errors.New("discovery: invalid option")
	// ErrDuplicateID reports a Register of a node id that a live node of
	// another instance holds (see the backend for what counts as the same
	// node coming back).
	ErrDuplicateID = errors.New("discovery: node id in use")
	// ErrUnavailable reports that the backend (for example Redis) could not be
	// reached. The instance keeps its last view of the cluster and keeps
	// retrying in the background; see the backend's documentation for what
	// happens to the request that failed.
	ErrUnavailable = errors.New("discovery: backend unavailable")
)
