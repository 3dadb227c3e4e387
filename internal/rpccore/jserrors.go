package rpccore

import (
	"errors"
	"time"

	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
)

// jsToWire is toWire for the errors of this file: a *Thrown becomes its
// value, an *Error with a Kind an ext 126 (its stack "<name>: <message>",
// or the Go stack when withStack). ok is false for other errors.
func jsToWire(err error, withStack bool) (v any, ok bool) {
	if v, ok := relayedToWire(err); ok {
		return v, true
	}
	var t *rpc.Thrown
	if errors.As(err, &t) {
		return t.Value, true
	}
	var e *rpc.Error
	if !errors.As(err, &e) || e.Kind == 0 {
		return nil, false
	}
	kind := e.Kind
	if kind > rpc.KindURIError {
		kind = rpc.KindError // Titan cannot decode another class: it drops the reply
	}
	name := e.Name
	if name == "" {
		name = kind.String()
	}
	stack := name + ": " + e.Message
	if withStack && e.Stack != "" {
		stack = e.Stack
	}
	fields := e.Fields
	for _, k := range [...]string{"name", "message", "stack"} {
		if _, clash := fields[k]; clash { // would override them in Titan's decoder
			fields = withoutKeys(fields, "name", "message", "stack")
			break
		}
	}
	return wire.JSError{Kind: uint16(kind), Name: name, Stack: stack, Message: e.Message, Fields: fields}, true
}

func withoutKeys(m map[string]any, keys ...string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

// causeToWire encodes an *Error's Cause as Titan does: a TitanError (ext
// 110) for a TitanError, the map {__errorType, name, message, stack} for
// a JavaScript error.
func causeToWire(c *rpc.Error, depth int) any {
	if c == nil || depth > 8 {
		return nil
	}
	if c.Kind != 0 {
		return plainCause{ErrorType: "Error", Name: c.Name, Message: c.Message}
	}
	name := c.Name
	if name == "" {
		name = "TitanError"
	}
	return wire.TitanError{Name: name, Code: c.Code, Message: c.Message, Details: c.Details,
		Timestamp: float64(time.Now().UnixMilli()), Extras: c.Fields, Cause: causeToWire(c.Cause, depth+1)}
}

// plainCause is a JavaScript error as the cause of a TitanError, with
// Titan's keys in Titan's order.
type plainCause struct {
	ErrorType string         `msgpack:"__errorType"`
	Name      string         `msgpack:"name"`
	Message   string         `msgpack:"message"`
	Stack     wire.Undefined `msgpack:"stack"`
}
