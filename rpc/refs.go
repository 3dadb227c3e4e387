package rpc

import (
	"context"
	"fmt"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/netron-go/netron/internal/rpclink"
	"github.com/netron-go/netron/internal/wire"
)

// Ref is a service a method hands its caller: the caller gets a handle on
// it (a child service), as a Titan method that returns a service instance.
// Return it from a method (a result of type Ref) or hold it in a Property:
//
//	func (s *Shop) Cart(ctx context.Context, user string) (rpc.Ref, error) {
//		return rpc.Child("cart@1.0.0", s.cartOf(user)), nil
//	}
//
// The first time a value is handed out it becomes a child service of the
// service whose method returned it: a new definition id, its parentId set
// to that service's id, its methods and properties found as Expose finds
// them. It is callable over the connections it was handed to (and by this
// node), each of which holds it until it sends unref_service for it or
// closes; when none holds it, it is forgotten. The same value (by ==)
// handed out again keeps its id. A Ref of a value exposed with Expose
// hands out that service's own definition.
type Ref struct {
	qn string
	v  any
}

// Child returns a Ref that hands out v as the service qualifiedName
// ("cart@1.0.0"). v must have callable methods or properties (see
// Node.Expose).
func Child(qualifiedName string, v any) Ref { return Ref{qn: qualifiedName, v: v} }

// EncodeMsgpack sends a service handle as a Reference (ext 108) to its
// definition: passed as an argument, it names the service to the node
// that serves it, which hands the method the service itself.
func (s *Service) EncodeMsgpack(enc *msgpack.Encoder) error {
	return enc.Encode(wire.Reference{DefID: s.def.ID})
}

// Service returns a handle on the service the result is (a definition,
// ext 109: a method that returned a Ref, or a Titan method that returned a
// service instance), bound to the connection the call went over. Release
// it when done (Service.Release).
func (r Result) Service() (*Service, error) {
	var def wire.Definition
	if err := r.Decode(&def); err != nil {
		return nil, err
	}
	if def.ID == "" {
		return nil, fmt.Errorf("%w: not a service definition", ErrMalformedResult)
	}
	if r.h == nil {
		return nil, fmt.Errorf("%w: a service without a connection", ErrMalformedResult)
	}
	child := ""
	if def.ParentID != "" {
		child = def.ID
	}
	h, hold := r.h.Bind(child)
	if h == nil {
		return nil, fmt.Errorf("%w: a service without a connection", ErrMalformedResult)
	}
	return newHeldService(def, h, hold), nil
}

// decodeInto decodes the result into out; a **Service gets a handle on
// the service the result is (see Result.Service).
func (r Result) decodeInto(out any) error {
	if p, ok := out.(**Service); ok {
		s, err := r.Service()
		*p = s
		return err
	}
	return r.Decode(out)
}

// held is a handle's hold on a child service.
type held struct {
	once sync.Once
	h    rpclink.Held
}

// Release gives a handle on a child service back (see Ref and
// Result.Service): once every handle on it from its connection is
// released, the node that serves it hears so (unref_service) and forgets
// it when nobody else holds it. Calls through the handle fail after.
// Releasing a service exposed by name, or a handle twice, does nothing.
func (s *Service) Release(ctx context.Context) error {
	if s.held == nil {
		return nil
	}
	var err error
	s.held.once.Do(func() { err = s.held.h.Release(ctx) })
	return err
}

func newHeldService(def wire.Definition, h rpclink.Handle, hold rpclink.Held) *Service {
	s := &Service{def: def, h: h}
	if hold != nil {
		s.held = &held{h: hold}
	}
	return s
}

// refOf returns what a Ref holds.
func refOf(v any) (string, any, bool) {
	switch x := v.(type) {
	case Ref:
		return x.qn, x.v, true
	case *Ref:
		if x != nil {
			return x.qn, x.v, true
		}
	}
	return "", nil, false
}
