package rpccore

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/netron-go/netron/internal/rpclink"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
)

// Local returns a handle for a service on this node, looked up like a
// remote one ("name", "name@1.2.3", "name@^1"). Calls run in the caller's
// goroutine without the network, with the same argument conversion and
// errors as remote calls; streams go through in-process pipes with the
// same flow control.
func (r *Registry) Local(spec string, logger *slog.Logger) (*rpc.Service, error) {
	e, err := r.resolve(spec)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if e.relay != nil { // published by a peer: call it there
		r.mu.RLock()
		c := r.relay
		r.mu.RUnlock()
		if c != nil {
			return c.Remote(e.relay, e.def), nil
		}
	}
	return newService(e.def, localInvoker{reg: r, logger: logger}), nil
}

type localInvoker struct {
	reg    *Registry
	logger *slog.Logger
}

func (l localInvoker) PeerID() string { return l.reg.peerID }

func (l localInvoker) DecodeMax() int64 { return rpclink.Trusted }

func (l localInvoker) Invoke(ctx context.Context, target, method string, args []any) ([]byte, error) {
	result, err := l.call(ctx, target, method, args)
	if err != nil {
		return nil, err
	}
	if ps, ok := result.(*pendingStream); ok {
		// Service.Call of a method that produces a stream: OpenStream
		// reads it.
		ps.abort(rpc.ErrStreamResult)
		return nil, rpc.ErrStreamResult
	}
	return wire.Marshal(result)
}

// call runs a method locally and returns its result as invoke made it.
func (l localInvoker) call(ctx context.Context, target, method string, args []any) (any, error) {
	e := l.reg.targetFor(nil, target)
	if e == nil {
		return nil, roundTrip(notFound("Service", target, fmt.Sprintf("Service with id %s not found", target)))
	}
	m := e.methods[method]
	if m == nil {
		return nil, roundTrip(notFound("Method", e.qn+"."+method, fmt.Sprintf("Method '%s.%s' not found", e.qn, method)))
	}
	var ups uploads
	fb := getBuf()
	enc, err := appendArgsUploading(wire.AppendArrayHeader(fb.b, len(args)), args, &ups, l.reg.streams, nil)
	defer fb.put(enc)
	if err != nil {
		ups.abort(fmt.Errorf("%w: %w", errCallFailed, err))
		return nil, err
	}
	ups.start()
	dec := wire.NewTrustedDecoder(enc) // our own bytes: no decode budget
	defer wire.ReleaseDecoder(dec)
	n, _ := dec.DecodeArrayLen()
	result, err := invoke(ctx, callEnv{streams: l.reg.streams, logger: l.logger, reg: l.reg}, e, m, dec, n)
	if err == nil {
		result, err = l.reg.result(nil, e, result)
	}
	if err != nil {
		ups.abort(fmt.Errorf("%w: %w", errCallFailed, err))
		return nil, roundTrip(err)
	}
	return result, nil
}

// roundTrip gives a local error the shape a remote caller would see.
func roundTrip(err error) error {
	b, e2 := wire.Marshal(toWire(err, false))
	if e2 != nil {
		return err
	}
	var v any
	if wire.UnmarshalTrusted(b, &v) != nil {
		return err
	}
	return fromWire(v)
}
