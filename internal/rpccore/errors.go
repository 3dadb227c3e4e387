package rpccore

import (
	"errors"
	"github.com/netron-go/netron/internal/rpclink"
	"maps"
	"time"

	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
)

// The engine's side of rpc.Error: the errors it answers with, and the
// conversions to and from the wire.

func notFound(resource, id, msg string) *rpc.Error {
	return &rpc.Error{Code: 404, Name: "TitanError", Message: msg, Details: map[string]any{"resource": resource, "id": id}}
}

func badRequest(reason, msg string, details map[string]any) *rpc.Error {
	d := map[string]any{"reason": reason}
	maps.Copy(d, details)
	return &rpc.Error{Code: 400, Name: "TitanError", Message: msg, Details: d}
}

// toWire turns a handler's error into the value sent to the peer: an
// *rpc.Error becomes a TitanError (ext 110), any other error a JS rpc.Error
// (ext 126) named "Error", like a thrown JavaScript error. Stacks are sent
// only when withStack is set.
func toWire(err error, withStack bool) any {
	if v, ok := jsToWire(err, withStack); ok {
		return v
	}
	var e *rpc.Error
	if errors.As(err, &e) {
		name := e.Name
		if name == "" {
			name = "TitanError"
		}
		te := wire.TitanError{
			Name:      name,
			Code:      e.Code,
			Message:   e.Message,
			Details:   e.Details,
			Timestamp: float64(time.Now().UnixMilli()),
			Extras:    e.Fields,
			Cause:     causeToWire(e.Cause, 0),
		}
		if withStack {
			te.Stack = e.Stack
		}
		return te
	}
	return wire.JSError{Kind: wire.JSKindError, Name: "Error", Message: err.Error()}
}

// fromWire turns the data of an error response into an *rpc.Error.
func fromWire(v any) *rpc.Error { return rpclink.Get().FromWire(v).(*rpc.Error) }
