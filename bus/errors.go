package bus

import "errors"

var (
	// ErrClosed is returned by Publish and Subscribe once the Bus is closed,
	// and by a Publish that was blocked on a full subscriber when the Bus
	// closed.
	ErrClosed = errors.New("bus: closed")

	// ErrInvalidOption is wrapped by the error Subscribe returns for a
	// SubOption it cannot accept, such as a negative buffer size.
	ErrInvalidOption = errors.New("bus: invalid option")

	// ErrNilMessage is returned by Publish when one of the messages is nil.
	// No message of that call is delivered.
	ErrNilMessage = errors.New("bus: nil message")

	// ErrReadOnly is returned by Bus.Publish and Scope.Publish for a topic
	// closed to Watermill publishers (WithReadOnly).
	ErrReadOnly = errors.New("bus: topic is read-only for Watermill publishers")

	// ErrNilMarshal is reported (logged) when a Marshaler returns a nil
	// message and no error.
	ErrNilMarshal = errors.New("bus: marshaler returned nil message")
)
