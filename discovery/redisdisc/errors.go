package redisdisc

import (
	"errors"

	"github.com/netron-go/netron/discovery"
)

// errMalformedEntry reports an announcement that decodeEntry rejects. The
// Redis backend logs and skips such entries; it never stops on them.
var errMalformedEntry = errors.New("redisdisc: malformed entry")

// Errors shared with package discovery, repeated here for convenience.
var (
	ErrClosed        = discovery.ErrClosed
	ErrUnavailable   = discovery.ErrUnavailable
	ErrInvalidOption = discovery.ErrInvalidOption
	ErrDuplicateID   = discovery.ErrDuplicateID
)
