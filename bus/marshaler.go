package bus

import (
	"encoding/json"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Marshaler converts typed values to Watermill messages and back. The Bus
// uses it only where a typed value meets a Watermill subscriber, or a
// Watermill message meets a typed subscriber of another type; values that
// stay typed are never marshaled.
//
// Marshal may leave the message's UUID empty: the Bus then assigns a cheap
// unique id (a per-Bus prefix and a counter). Implementations must be safe
// for concurrent use.
type Marshaler interface {
	Marshal(topic string, v any) (*message.Message, error)
	Unmarshal(msg *message.Message, v any) error
}

// JSONMarshaler is the default Marshaler: the payload is the value encoded
// with encoding/json, and the metadata is empty.
type JSONMarshaler struct{}

var _ Marshaler = JSONMarshaler{}

// Marshal encodes v as JSON into a new message with an empty UUID.
func (JSONMarshaler) Marshal(_ string, v any) (*message.Message, error) {
	p, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return message.NewMessage("", p), nil
}

// Unmarshal decodes msg's JSON payload into v, which must be a pointer.
func (JSONMarshaler) Unmarshal(msg *message.Message, v any) error {
	return json.Unmarshal(msg.Payload, v)
}
