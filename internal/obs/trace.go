package obs

import (
	"context"
	"encoding/hex"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// ExtensionTrace is the protocol extension under which Go peers carry the
// W3C trace context of a call (see docs/protocol.md §11): the CALL's data
// starts with ExtTraceparent. A plain Netron peer never negotiates it, so
// it never sees one.
const ExtensionTrace = "trace1"

// ExtTraceparent is the msgpack extension type of a W3C traceparent
// ("00-<trace id>-<span id>-<flags>", 55 bytes of text).
const ExtTraceparent = 20

// TraceparentLen is the length of a version 00 traceparent.
const TraceparentLen = 55

// TracerName is the instrumentation name of the node's spans.
const TracerName = "github.com/netron-go/netron"

// Tracer makes the spans of a node's calls. A nil *Tracer makes none.
type Tracer struct {
	t    trace.Tracer
	node string
}

// NewTracer returns a Tracer of tp for node, or nil when tp is nil.
func NewTracer(tp trace.TracerProvider, node string) *Tracer {
	if tp == nil {
		return nil
	}
	return &Tracer{t: tp.Tracer(TracerName), node: node}
}

// StartClient starts the client span of a call to service.method on peer.
func (t *Tracer) StartClient(ctx context.Context, peer, service, method string) (context.Context, trace.Span) {
	return t.t.Start(ctx, service+"/"+method, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("rpc.system", "netron"),
		attribute.String("rpc.service", service),
		attribute.String("rpc.method", method),
		attribute.String("netron.node", t.node),
		attribute.String("netron.peer", peer),
	))
}

// StartServer starts the server span of a call of service.method from
// peer, a child of the remote span parent (when valid).
func (t *Tracer) StartServer(ctx context.Context, parent trace.SpanContext, peer, service, method string, id uint32) (context.Context, trace.Span) {
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	return t.t.Start(ctx, service+"/"+method, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String("rpc.system", "netron"),
		attribute.String("rpc.service", service),
		attribute.String("rpc.method", method),
		attribute.String("netron.node", t.node),
		attribute.String("netron.peer", peer),
		attribute.Int64("netron.request_id", int64(id)),
	))
}

// StartStream starts the server span of the stream a call of
// service.method from peer produces, a child of the call's span in ctx:
// it lasts from the call's reply to the stream's end.
func (t *Tracer) StartStream(ctx context.Context, peer, service, method, stream string) (context.Context, trace.Span) {
	return t.t.Start(ctx, service+"/"+method+" stream", trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String("rpc.system", "netron"),
		attribute.String("rpc.service", service),
		attribute.String("rpc.method", method),
		attribute.String("netron.node", t.node),
		attribute.String("netron.peer", peer),
		attribute.String("netron.stream_id", stream),
	))
}

// End ends span with the outcome of its call: code is Code's label or
// "ok".
func End(span trace.Span, err error, code string) {
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(attribute.String("netron.code", code))
	}
	span.End()
}

// AppendTraceparent appends sc to b as an ExtTraceparent value: ext8,
// length 55, type 20, then the traceparent text.
func AppendTraceparent(b []byte, sc trace.SpanContext) []byte {
	b = append(b, 0xc7, TraceparentLen, ExtTraceparent)
	b = append(b, "00-"...)
	tid, sid := sc.TraceID(), sc.SpanID()
	b = hex.AppendEncode(b, tid[:])
	b = append(b, '-')
	b = hex.AppendEncode(b, sid[:])
	b = append(b, '-')
	return hex.AppendEncode(b, []byte{byte(sc.TraceFlags())})
}

// TraceparentSize is how many bytes AppendTraceparent appends.
const TraceparentSize = 3 + TraceparentLen

// ParseTraceparent parses a version 00 traceparent (the text of an
// ExtTraceparent value) into a remote span context. ok is false when it is
// malformed: wrong length or version, not hex, or an all-zero id.
func ParseTraceparent(s []byte) (sc trace.SpanContext, ok bool) {
	if len(s) != TraceparentLen || s[0] != '0' || s[1] != '0' || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return trace.SpanContext{}, false
	}
	var tid trace.TraceID
	var sid trace.SpanID
	var flags [1]byte
	if _, err := hex.Decode(tid[:], s[3:35]); err != nil {
		return trace.SpanContext{}, false
	}
	if _, err := hex.Decode(sid[:], s[36:52]); err != nil {
		return trace.SpanContext{}, false
	}
	if _, err := hex.Decode(flags[:], s[53:55]); err != nil {
		return trace.SpanContext{}, false
	}
	sc = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(flags[0]) & trace.FlagsSampled, Remote: true})
	if !sc.IsValid() {
		return trace.SpanContext{}, false
	}
	return sc, true
}
