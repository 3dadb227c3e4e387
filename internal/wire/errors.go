package wire

import (
	"errors"
	"fmt"
)

// Errors returned by the decoders. Every error from Decode, SkipValue,
// Unmarshal, DecodeArg and the extension decoders wraps ErrMalformed, so
// errors.Is(err, ErrMalformed) tells bad input from a peer apart from
// everything else; the more specific sentinels below say why.
var (
	ErrMalformed     = errors.New("wire: malformed packet")
	ErrTruncated     = wrap("truncated")
	ErrUnknownType   = wrap("unknown packet type")
	ErrTrailingBytes = wrap("trailing bytes")
	ErrTooDeep       = wrap("msgpack value nested too deeply")
	ErrBadMsgpack    = wrap("invalid msgpack")
	// ErrBadExt reports an extension payload (ext 0, 107–110, 126) whose
	// fields do not have the layout Titan gives them.
	ErrBadExt = wrap("invalid extension payload")
	// ErrUnknownExt reports a msgpack extension type this package does not
	// decode (for example Titan's 125 Date or 124 Map).
	ErrUnknownExt = wrap("unknown msgpack extension type")
	// ErrType reports a well-formed value that does not fit the Go type it
	// is decoded into: a string for an int, 2.5 for an int, 300 for an
	// int8, -1 for a uint.
	ErrType = wrap("value does not fit the target type")
)

type malformed struct{ msg string }

func wrap(msg string) error               { return &malformed{msg} }
func (e *malformed) Error() string        { return "wire: " + e.msg }
func (e *malformed) Is(target error) bool { return target == ErrMalformed }

// located is an error that names the place in a value where it happened.
// Outer values do not add their own place to it: with one place per level
// of nesting, the error texts of a deeply nested value would cost the
// square of its depth.
type located struct{ err error }

func (e *located) Error() string { return e.err.Error() }
func (e *located) Unwrap() error { return e.err }

// locate prefixes err with the place where (a format and its arguments),
// unless err names its place already.
func locate(err error, where string, args ...any) error {
	var l *located
	if errors.As(err, &l) {
		return err
	}
	return &located{fmt.Errorf(where+": %w", append(args, err)...)}
}
