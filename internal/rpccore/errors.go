package rpccore

import (
	"errors"
	"fmt"
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
		}
		if withStack {
			te.Stack = e.Stack
		}
		return te
	}
	return wire.JSError{Kind: wire.JSKindError, Name: "Error", Message: err.Error()}
}

// fromWire turns the data of an error response into an *rpc.Error.
func fromWire(v any) *rpc.Error {
	switch x := v.(type) {
	case wire.TitanError:
		return &rpc.Error{Code: x.Code, Name: x.Name, Message: x.Message, Details: x.Details, Fields: x.Extras, Stack: x.Stack}
	case *wire.TitanError:
		return fromWire(*x)
	case wire.JSError:
		e := &rpc.Error{Code: 500, Name: x.Name, Message: x.Message, Fields: x.Fields, Stack: x.Stack}
		if c, ok := numericCode(x.Fields["code"]); ok {
			e.Code = c
		}
		return e
	case *wire.JSError:
		return fromWire(*x)
	case string:
		return &rpc.Error{Code: 500, Name: "Error", Message: x}
	case nil:
		return &rpc.Error{Code: 500, Name: "Error", Message: "error without data"}
	default:
		return &rpc.Error{Code: 500, Name: "Error", Message: fmt.Sprint(x)}
	}
}

func numericCode(v any) (int, bool) {
	switch n := v.(type) {
	case int8:
		return int(n), true
	case int16:
		return int(n), true
	case int32:
		return int(n), true
	case int64:
		return int(n), true
	case uint8:
		return int(n), true
	case uint16:
		return int(n), true
	case uint32:
		return int(n), true
	case uint64:
		return int(n), true
	case int:
		return n, true
	case float64:
		if n == float64(int(n)) {
			return int(n), true
		}
	}
	return 0, false
}
