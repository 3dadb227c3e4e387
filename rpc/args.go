package rpc

import (
	"context"
	"errors"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/netron-go/netron/internal/wire"
)

// TaskFunc runs a TASK ["name", ...args] from a peer (Node.HandleTask):
// its result is sent back as the task's response. ctx carries the caller's
// identity (peer.IdentityFrom) and is cancelled when its connection closes.
type TaskFunc func(ctx context.Context, args *Args) (any, error)

// Args are the arguments of a TASK, decoded one at a time.
type Args struct {
	dec    *msgpack.Decoder
	n      int
	argErr func(error) error // the engine's error for a value that does not decode
}

// Len returns the number of arguments not yet decoded.
func (a *Args) Len() int { return a.n }

// Next decodes the next argument into v (a pointer), as Result.Decode
// decodes a result.
func (a *Args) Next(v any) error {
	if a.n == 0 {
		return badRequest("ArgumentCount", "missing argument", nil)
	}
	a.n--
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errors.New("rpc: Args.Next needs a non-nil pointer")
	}
	if err := wire.DecodeArg(a.dec, rv.Elem()); err != nil {
		return a.argErr(err)
	}
	publicInto(v)
	return nil
}

// Rest decodes the remaining arguments generically.
func (a *Args) Rest() ([]any, error) {
	out := make([]any, 0, a.n)
	for a.n > 0 {
		var v any
		if err := a.Next(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
