package rpccore

import (
	"context"
	"errors"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
	"go.opentelemetry.io/otel/trace"

	"github.com/netron-go/netron/internal/obs"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/peer"
	"github.com/netron-go/netron/rpc"
)

// This file is where the RPC engine reports to the node's observer
// (internal/obs): the client's calls through remoteInvoker.observe, the
// server's through serverCall, refusals through Server.refused. With no
// observer (the default) none of it runs: a nil check per call.

// observe makes the call of invoke, counted and traced.
func (r remoteInvoker) observe(ctx context.Context, target, method string, args []any) ([]byte, error) {
	o := r.c.obs
	var span trace.Span
	if o.Tracer != nil {
		ctx, span = o.Tracer.StartClient(ctx, r.conn.ID(), r.svc, method)
	}
	cm := o.Metrics.Call(obs.Client, r.svc, method)
	var start int64
	if cm != nil {
		start = cm.Start()
	}
	var sent int
	data, err := r.call(ctx, target, method, args, &sent)
	code := codeOf(err)
	if cm != nil {
		got := 0
		if data != nil {
			got = len(data) + wire.HeaderSize
		}
		cm.End(o.Metrics, start, sent, got, code)
	}
	if span != nil {
		obs.End(span, err, code)
	}
	return data, err
}

// codeOf is the code label of a call's outcome.
func codeOf(err error) string {
	if err == nil {
		return "ok"
	}
	var e *rpc.Error
	switch {
	case errors.As(err, &e):
		return obs.Code(e.Code)
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline"
	case errors.Is(err, peer.ErrDisconnected):
		return "disconnected"
	}
	return "error"
}

// serverCall is the observation of one request a worker serves; it lives
// in the job, so observing allocates nothing per request beyond the span.
type serverCall struct {
	on    bool // a CALL of a known method, being observed
	id    uint32
	cm    *obs.CallMetrics
	start int64 // obs.CallMetrics.Start
	span  trace.Span
}

// WithServerObserver makes the server report the calls it handles and
// the requests it refuses to o (nil: off).
func WithServerObserver(o *obs.Observer) ServerOption {
	return serverOptionFunc(func(s *Server) { s.obs = o })
}

// readTraceparent reads the ExtTraceparent value that starts a CALL's
// data from a peer that agreed to obs.ExtensionTrace.
func readTraceparent(dec *msgpack.Decoder) (trace.SpanContext, bool) {
	id, n, err := dec.DecodeExtHeader()
	if err != nil || id != obs.ExtTraceparent || n != obs.TraceparentLen {
		return trace.SpanContext{}, false
	}
	var buf [obs.TraceparentLen]byte
	if err := dec.ReadFull(buf[:]); err != nil {
		return trace.SpanContext{}, false
	}
	return obs.ParseTraceparent(buf[:])
}

// hasTraceparent reports whether the CALL data in dec goes on with a
// trace context: only a peer that agreed to obs.ExtensionTrace sends one.
func hasTraceparent(dec *msgpack.Decoder, conn *transport.Conn) bool {
	c, err := dec.PeekCode()
	return err == nil && c == msgpcode.Ext8 && conn != nil && conn.Extensions().Has(obs.ExtensionTrace)
}

// begin starts observing the call of service's method m (nil: a method
// or service the node does not have, counted as obs.Other), a child of the
// remote span parent; it returns the context the method runs with.
func (sc *serverCall) begin(ctx context.Context, o *obs.Observer, conn *transport.Conn, parent trace.SpanContext, service string, m *method) context.Context {
	sc.on = true
	name := obs.Other
	if m != nil {
		name = m.name
	}
	if o.Tracer != nil {
		ctx, sc.span = o.Tracer.StartServer(ctx, parent, conn.ID(), service, name, sc.id)
	}
	if o.Metrics == nil {
		return ctx
	}
	if m == nil {
		sc.cm = o.Metrics.Call(obs.Server, service, name)
	} else if sc.cm = m.server.Load(); sc.cm == nil {
		sc.cm = o.Metrics.Call(obs.Server, service, name)
		m.server.Store(sc.cm)
	}
	sc.start = sc.cm.Start()
	return ctx
}

// PeerCalls returns the calls this node's server received on conn and its
// client c made on it, counted while they observe.
func PeerCalls(c *Client, conn *transport.Conn) uint64 {
	return connRequestsOf(conn).calls.Load() + c.pendingOf(conn).sent.Load()
}

// spanContext is the span of the call, for the trace fields of its error
// reply.
func (sc *serverCall) spanContext() trace.SpanContext {
	if sc == nil || sc.span == nil {
		return trace.SpanContext{}
	}
	return sc.span.SpanContext()
}

// end ends the observation of a call with its outcome and the sizes of
// its request and reply packets, and clears sc for the next request.
func (sc *serverCall) end(o *obs.Observer, err error, reqBytes, resBytes int) {
	code := codeOf(err)
	var e *rpc.Error
	if err != nil && !errors.As(err, &e) {
		code = "500" // what the peer gets (see toWire)
	}
	if sc.cm != nil {
		sc.cm.End(o.Metrics, sc.start, reqBytes, resBytes, code)
	}
	if sc.span != nil {
		obs.End(sc.span, err, code)
	}
	*sc = serverCall{}
}

// refused counts a request refused by limit with code.
func (s *Server) refused(code int, limit string) {
	if s.obs != nil {
		s.obs.Metrics.Refused(code, limit)
	}
}

// tracer is the server's tracer, or nil.
func (s *Server) tracer() *obs.Tracer {
	if s.obs == nil {
		return nil
	}
	return s.obs.Tracer
}
