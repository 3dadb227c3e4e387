package rpc

import (
	"context"
	"fmt"
	"slices"

	"github.com/netron-go/netron/internal/rpclink"
	"github.com/netron-go/netron/internal/wire"
)

// Service is a handle for calling one service, on a peer or on this node.
// It is safe for concurrent use.
type Service struct {
	def  wire.Definition
	h    rpclink.Handle
	held *held // a child service's hold (refs.go), nil otherwise
}

// Description returns the service's description as its node announced
// it (a copy).
func (s *Service) Description() ServiceDescription { return describe(s.def) }

// Name returns the service name.
func (s *Service) Name() string { return s.def.Meta.Name }

// Version returns the service version.
func (s *Service) Version() string { return s.def.Meta.Version }

// QualifiedName returns "name@version".
func (s *Service) QualifiedName() string { return s.def.Meta.Name + "@" + s.def.Meta.Version }

// PeerID returns the id of the node that serves the service.
func (s *Service) PeerID() string { return s.h.PeerID() }

// Methods returns the wire names of the service's methods, sorted.
func (s *Service) Methods() []string {
	out := make([]string, 0, len(s.def.Meta.Methods))
	for m := range s.def.Meta.Methods {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

// Call calls method with args and returns its undecoded result. ctx bounds
// the call; without a deadline the client's request timeout applies.
func (s *Service) Call(ctx context.Context, method string, args ...any) (Result, error) {
	data, err := s.h.Invoke(ctx, s.def.ID, method, args)
	if err != nil {
		return Result{}, s.callError(method, err)
	}
	return Result{raw: data, max: s.h.DecodeMax(), h: s.h}, nil
}

// callError names what was called in err: an *Error from the peer gets
// it as its subject ("rpc: calculator@1.0.0.divide: division by zero
// (400)"), and, when the method was not found, the service's methods as
// what is available; any other error gets it as a prefix.
func (s *Service) callError(method string, err error) error {
	if re, ok := err.(*Error); ok && !re.sentinel() {
		c := *re
		c.op = s.QualifiedName() + "." + method
		if c.Reason() == "Method" && c.Available == nil {
			c.Available = s.Methods()
		}
		return &c
	}
	return fmt.Errorf("%s.%s: %w", s.QualifiedName(), method, err)
}

// Result is a call's result, still encoded.
type Result struct {
	raw []byte
	max int64          // cap of its decode budget; rpclink.Trusted: none
	h   rpclink.Handle // what made the call, for a result that is a service (refs.go)
}

// Decode decodes the result into v, a pointer. Integer targets accept
// floats that hold exact integers (what JavaScript peers send). A result
// from a peer decodes within its decode budget (32 × its bytes + 64 KiB,
// capped by Config.MaxDecodeMemory; it fails with ErrMalformedResult beyond), not
// charged to the node's inbound memory: the caller asked for it. A result
// of a local call has no budget.
//
// Values decoded into empty interfaces (a v of type *any, []any, a map or
// struct field of type any) are Go values: nil, bool, int64, uint64,
// float64, string, []byte, []any, map[string]any, and for Netron's own
// types a ServiceDescription (a service definition), an *Error (an error
// value) or a string (a reference to a service definition: its id).
func (r Result) Decode(v any) error {
	if len(r.raw) == 0 {
		return nil
	}
	var err error
	if r.max == rpclink.Trusted {
		err = wire.UnmarshalTrusted(r.raw, v)
	} else {
		err = wire.UnmarshalMax(r.raw, v, r.max)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformedResult, err)
	}
	publicInto(v)
	return nil
}

// Raw returns the msgpack encoding of the result.
func (r Result) Raw() []byte { return r.raw }

// Call calls method on s and decodes the result as a T.
//
//	sum, err := rpc.Call[int](ctx, calc, "add", 2, 3)
func Call[T any](ctx context.Context, s *Service, method string, args ...any) (T, error) {
	var out T
	r, err := s.Call(ctx, method, args...)
	if err != nil {
		return out, err
	}
	if err := r.decodeInto(&out); err != nil {
		return out, fmt.Errorf("%s.%s: %w", s.QualifiedName(), method, err)
	}
	return out, nil
}
