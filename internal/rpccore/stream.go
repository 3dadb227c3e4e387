package rpccore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"go.opentelemetry.io/otel/trace"

	"github.com/netron-go/netron/internal/obs"
	"github.com/netron-go/netron/internal/streamcore"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/peer"
	"github.com/netron-go/netron/rpc"
	"github.com/netron-go/netron/stream"
)

// WithStreams lets the server's methods produce and take streams through
// m (and local calls of its registry). Without it a streaming method
// fails with a 500 error.
func WithStreams(m *streamcore.Manager) ServerOption {
	return serverOptionFunc(func(s *Server) {
		s.streams = m
		s.reg.streams = m
	})
}

// WithClientStreams lets the client open the streams replies announce and
// pass streams as arguments, through m.
func WithClientStreams(m *streamcore.Manager) ClientOption {
	return clientOptionFunc(func(c *Client) { c.streams = m })
}

// errNoStreams is the error of a streaming call on a node without a
// stream manager.
var errNoStreams = &rpc.Error{Code: 500, Name: "TitanError", Message: "streams are not enabled on this node"}

// callEnv is what invoke needs to know of the call besides its arguments.
type callEnv struct {
	conn    *transport.Conn // nil for local calls
	request uint32          // the request's id (remote calls)
	streams *streamcore.Manager
	logger  *slog.Logger
	// acct, if set, is shrunk once the arguments are decoded, before
	// the method runs (the server gives back what decoding took beyond
	// what the arguments hold).
	acct *wire.Account
	reg  *Registry // resolves Reference arguments (refs.go)
	// tracer, if set, makes a span of each stream a call produces.
	tracer *obs.Tracer
}

// callAttrs are the log attributes of the call of service.method (see
// docs/observability.md, "Logs"): the peer and the request id of a call
// from a peer, the service and the method.
func (env callEnv) callAttrs(service, method string) []any {
	if env.conn == nil {
		return []any{"service", service, "method", method}
	}
	return []any{"peer", env.conn.ID(), "request_id", env.request, "service", service, "method", method}
}

// streamCall is the streams of one invocation: the stream its reply
// announces and the streams its caller passed.
type streamCall struct {
	env     callEnv
	out     *streamcore.Outbound
	readers []io.Closer // the *stream.Reader[T] of the stream arguments
	span    trace.Span  // of the stream out, when traced; ended by endSpan
}

// startStream returns the context the producer of the call's stream runs
// with: the stream's, and, when traced, a span of the stream under the
// call's span in ctx.
func (sc *streamCall) startStream(ctx context.Context, e *exposed, m *method) context.Context {
	octx := sc.out.Context()
	if sc.env.tracer == nil || sc.env.conn == nil {
		return octx
	}
	octx, sc.span = sc.env.tracer.StartStream(trace.ContextWithSpan(octx, trace.SpanFromContext(ctx)),
		sc.env.conn.ID(), e.qn, m.name, sc.out.Reference().StreamID)
	return octx
}

// endSpan ends the stream's span, if any, with the stream's outcome.
func (sc *streamCall) endSpan(err error) {
	if sc.span == nil {
		return
	}
	code := codeOf(err)
	if err != nil && code == "error" {
		code = "500"
	}
	obs.End(sc.span, err, code)
	sc.span = nil
}

func (env callEnv) beginStreams(m *method) (*streamCall, error) {
	if env.streams == nil {
		return nil, errNoStreams
	}
	sc := &streamCall{env: env}
	if m.streaming() {
		out, err := env.streams.NewOutbound(env.conn, true)
		if err != nil {
			return nil, streamError(err)
		}
		sc.out = out
	}
	return sc, nil
}

// streamError gives a stream error its code for the caller.
func streamError(err error) error {
	switch {
	case errors.Is(err, streamcore.ErrTooManyStreams):
		return &rpc.Error{Code: 429, Name: "TitanError", Message: err.Error(), Details: map[string]any{"reason": streamcore.ReasonStreamLimit}}
	case errors.Is(err, streamcore.ErrInvalidReference):
		return badRequest("ArgumentType", err.Error(), nil)
	case errors.Is(err, peer.ErrDisconnected):
		return err
	}
	return &rpc.Error{Code: 500, Name: "TitanError", Message: err.Error()}
}

// reader decodes a StreamReference argument and opens it.
func (sc *streamCall) reader(dec *msgpack.Decoder, t reflect.Type, e *exposed, m *method, i int) (reflect.Value, error) {
	var ref wire.StreamReference
	if err := wire.DecodeArg(dec, reflect.ValueOf(&ref).Elem()); err != nil {
		return reflect.Value{}, badRequest("ArgumentType",
			fmt.Sprintf("%s.%s argument %d: want a stream: %v", e.qn, m.name, i+1, err),
			map[string]any{"index": i})
	}
	in, err := sc.env.streams.Accept(sc.env.conn, ref)
	if err != nil {
		return reflect.Value{}, streamError(err)
	}
	v := streamcore.T().NewReader(sc.readerContext(), t, in)
	sc.readers = append(sc.readers, v.Interface().(io.Closer))
	return v, nil
}

// readerContext is the context the stream arguments are bound to: the
// method's own (the stream it produces, or the connection), so that a
// method blocked on an argument is released when the call can no longer
// complete (the consumer of its stream stopped, the caller disconnected).
// Local calls: the caller's Abort of its uploads ends them.
func (sc *streamCall) readerContext() context.Context {
	switch {
	case sc.out != nil:
		return sc.out.Context()
	case sc.env.conn != nil:
		return sc.env.conn.Context()
	}
	return context.Background()
}

// closeReaders closes the streams the caller passed: they live as long as
// the method (or the stream it produces) runs.
func (sc *streamCall) closeReaders() {
	for _, r := range sc.readers {
		r.Close()
	}
}

// abort ends everything of a call that failed or will not stream.
func (sc *streamCall) abort(err error) {
	if sc.out != nil {
		sc.out.Abort(err)
	}
	sc.endSpan(err)
	sc.closeReaders()
}

// pendingStream is the result of a streaming method before its reply is
// sent: the reply carries reference(), and the producer starts once the
// reply is on its way (start), so chunks never overtake it.
type pendingStream struct {
	sc  *streamCall
	run func(ctx context.Context) error
	// release, if set, gives back the inbound memory the call's
	// arguments hold, once the stream has ended.
	release func()
}

func (p *pendingStream) reference() wire.StreamReference { return p.sc.out.Reference() }

func (p *pendingStream) start() {
	if !p.sc.out.Start(func(ctx context.Context) (err error) {
		defer func() {
			p.sc.endSpan(err)
			p.done()
		}()
		if p.sc.span != nil {
			ctx = trace.ContextWithSpan(ctx, p.sc.span)
		}
		return p.run(ctx)
	}) {
		err := context.Cause(p.sc.out.Context())
		if err == nil {
			err = errors.New("netron: stream not started")
		}
		p.sc.endSpan(err)
		p.done()
	}
}

func (p *pendingStream) abort(err error) {
	p.sc.abort(err)
	p.releaseMemory()
}

// done ends what the method held: the streams it was passed and the
// memory of its arguments.
func (p *pendingStream) done() {
	p.sc.closeReaders()
	p.releaseMemory()
}

func (p *pendingStream) releaseMemory() {
	if p.release != nil {
		p.release()
		p.release = nil
	}
}

// writerStream runs a method that streams by writing to its last
// parameter; its error ends the stream.
func (sc *streamCall) writerStream(m *method, in []reflect.Value) *pendingStream {
	in = append(in, streamcore.T().NewWriter(m.writer, sc.out))
	return &pendingStream{sc: sc, run: func(context.Context) error {
		out := m.fn.Call(in)
		if m.hasErr {
			if errv := out[len(out)-1]; !errv.IsNil() {
				return errv.Interface().(error)
			}
		}
		return nil
	}}
}

// sourceStream pumps the stream a method returned.
func (sc *streamCall) sourceStream(e *exposed, m *method, v reflect.Value) (*pendingStream, error) {
	src, err := streamcore.T().Producer(v)
	if err != nil {
		return nil, &rpc.Error{Code: 500, Name: "TitanError", Message: fmt.Sprintf("%s.%s: %v", e.qn, m.name, err)}
	}
	sc.out.SetLive(src.Live)
	return &pendingStream{sc: sc, run: func(ctx context.Context) error {
		return src.Run(ctx, sc.out)
	}}, nil
}

// announceStreams registers, as a CALL of a plain Netron peer is read,
// the streams it passes to a method that takes streams (see
// streamcore.Manager.Expect), and returns them: such a peer sends the chunks
// right behind the call, before the method has run and opened them. It
// runs in the reader goroutine and does not block.
func (s *Server) announceStreams(in *transport.Inbound) []*streamcore.Inbound {
	var expected []*streamcore.Inbound
	s.eachStreamArg(in, func(ref wire.StreamReference) {
		x, err := s.streams.Expect(in.Conn, ref)
		if err != nil {
			s.logger.Debug("netron: stream argument not registered", "peer", in.Conn.ID(), "stream", ref.StreamID, "err", err)
			return
		}
		if x != nil {
			expected = append(expected, x)
		}
	})
	return expected
}

// forgetStreams lets go of the streams announceStreams registered for a
// request that will not run, or that ran without opening them.
func (s *Server) forgetStreams(expected []*streamcore.Inbound) {
	for _, x := range expected {
		s.streams.Forget(x, "the call that passed it did not take it")
	}
}

// eachStreamArg calls fn with each StreamReference argument of a plain
// peer's CALL (in) that its method takes as a stream.
func (s *Server) eachStreamArg(in *transport.Inbound, fn func(wire.StreamReference)) {
	if s.streams == nil || in.Packet.Type() != wire.TypeCall || !in.Packet.IsRequest() ||
		in.Conn.Extensions().Has(streamcore.Extension) {
		return
	}
	dec := wire.NewDecoder(in.Packet.Data)
	defer wire.ReleaseDecoder(dec)
	n, err := dec.DecodeArrayLen()
	if err != nil || n < 2 {
		return
	}
	// Nothing allocated for the CALLs of methods that take no streams:
	// the names are looked up in place.
	target, err := wire.DecodeStringBytes(dec)
	if err != nil {
		return
	}
	e := s.reg.targetBytes(target)
	if e != nil && e.relay != nil {
		s.eachRelayedStreamArg(dec, n, fn) // exposure.go: any stream argument
		return
	}
	if e == nil || !e.hasReaders {
		return
	}
	name, err := wire.DecodeStringBytes(dec)
	if err != nil {
		return
	}
	m := e.methods[string(name)]
	if m == nil || m.readers == 0 {
		return
	}
	for i := 0; i < n-2 && i < len(m.args); i++ {
		if id, ok := wire.NextExt(dec); ok && id == wire.ExtStreamReference && streamcore.T().IsReader(m.args[i]) {
			var ref wire.StreamReference
			if err := wire.DecodeArg(dec, reflect.ValueOf(&ref).Elem()); err != nil {
				return
			}
			fn(ref)
			continue
		}
		if err := wire.SkipArg(dec); err != nil {
			return
		}
	}
}

// isStreamRef reports whether data is a msgpack ext 107 (StreamReference).
func isStreamRef(data []byte) bool {
	if len(data) < 3 {
		return false
	}
	switch data[0] {
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext
		return data[1] == byte(wire.ExtStreamReference)
	case 0xc7:
		return data[2] == byte(wire.ExtStreamReference)
	case 0xc8:
		return len(data) > 3 && data[3] == byte(wire.ExtStreamReference)
	case 0xc9:
		return len(data) > 5 && data[5] == byte(wire.ExtStreamReference)
	}
	return false
}

// announce registers the stream a reply announces, in the reader
// goroutine, before its chunks can arrive. A reply nobody waits for any
// more has its stream rejected.
func (c *Client) announce(conn *transport.Conn, data []byte, waited bool) {
	var ref wire.StreamReference
	if err := wire.Unmarshal(data, &ref); err != nil {
		return
	}
	if !waited {
		c.streams.Reject(conn, ref, streamcore.ReasonNotClaimed)
		return
	}
	if err := c.streams.Announce(conn, ref); err != nil {
		c.logger.Debug("netron: stream not announced", "peer", conn.ID(), "stream", ref.StreamID, "err", err)
	}
}

// streamRefOf decodes the StreamReference of a streaming call's reply.
func streamRefOf(data []byte) (wire.StreamReference, error) {
	var ref wire.StreamReference
	if !isStreamRef(data) {
		var v any
		_ = wire.Unmarshal(data, &v)
		return ref, fmt.Errorf("%w: the reply is %T", streamcore.ErrNotStream, v)
	}
	if err := wire.Unmarshal(data, &ref); err != nil {
		return ref, fmt.Errorf("%w: %w", rpc.ErrMalformedResult, err)
	}
	return ref, nil
}

func (r remoteInvoker) OpenStream(ctx context.Context, target, method string, args []any) (*streamcore.Inbound, error) {
	if r.c.streams == nil {
		return nil, errNoStreams
	}
	data, err := r.invoke(ctx, target, method, args)
	if err != nil {
		return nil, err
	}
	ref, err := streamRefOf(data)
	if err != nil {
		return nil, err
	}
	return r.c.streams.Accept(r.conn, ref)
}

func (l localInvoker) OpenStream(ctx context.Context, target, method string, args []any) (*streamcore.Inbound, error) {
	if l.reg.streams == nil {
		return nil, errNoStreams
	}
	result, err := l.call(ctx, target, method, args)
	if err != nil {
		return nil, err
	}
	ps, ok := result.(*pendingStream)
	if !ok {
		return nil, fmt.Errorf("%w: the result is %T", streamcore.ErrNotStream, result)
	}
	ps.start()
	return l.reg.streams.Accept(nil, ps.reference())
}

// uploads are the streams a caller passes as arguments.
type uploads struct {
	list []upload
}

type upload struct {
	o   *streamcore.Outbound
	src streamcore.Producer
}

// sourceOf reports whether a call argument is a stream to upload.
func sourceOf(a any) (streamcore.Producer, bool) {
	if s, ok := a.(stream.Source); ok {
		if s == nil {
			return streamcore.Producer{}, false
		}
		p, err := streamcore.T().Producer(reflect.ValueOf(a))
		return p, err == nil
	}
	switch k := reflect.TypeOf(a); {
	case k == nil:
		return streamcore.Producer{}, false
	case k.Kind() == reflect.Chan || k.Kind() == reflect.Func:
		if !streamcore.T().IsSource(k) {
			return streamcore.Producer{}, false
		}
		p, err := streamcore.T().Producer(reflect.ValueOf(a))
		return p, err == nil
	}
	return streamcore.Producer{}, false
}

func hasSources(args []any) bool {
	for _, a := range args {
		if _, ok := sourceOf(a); ok {
			return true
		}
	}
	return false
}

// appendArgsUploading appends args, opening a stream to conn (nil: an
// in-process stream) for each argument that is a stream and appending its
// StreamReference instead.
func appendArgsUploading(b []byte, args []any, ups *uploads, m *streamcore.Manager, conn *transport.Conn) ([]byte, error) {
	var err error
	for i, a := range args {
		src, ok := sourceOf(a)
		if !ok {
			if b, err = wire.AppendMarshal(b, a); err != nil {
				return b, fmt.Errorf("rpc: argument %d (%T): %w", i+1, a, err)
			}
			continue
		}
		if m == nil {
			return b, fmt.Errorf("rpc: argument %d is a stream: %w", i+1, errNoStreams)
		}
		if conn != nil && !conn.Extensions().Has(streamcore.Extension) {
			return b, fmt.Errorf("rpc: argument %d is a stream: %w: %s did not negotiate %q", i+1, streamcore.ErrUnsupported, conn.ID(), streamcore.Extension)
		}
		o, err := m.NewOutbound(conn, src.Live)
		if err != nil {
			return b, fmt.Errorf("rpc: argument %d: %w", i+1, err)
		}
		ups.list = append(ups.list, upload{o: o, src: src})
		if b, err = wire.AppendMarshal(b, o.Reference()); err != nil {
			return b, err
		}
	}
	return b, nil
}

func (u *uploads) start() {
	for _, x := range u.list {
		streamcore.Start(x.o, x.src)
	}
}

// abort stops the uploads of a call that failed. The uploads of a call
// that succeeded end by themselves: at their end, or when the method's
// Reader is closed (when the method returns, or when the stream it
// produces ends), which cancels them.
func (u *uploads) abort(err error) {
	for _, x := range u.list {
		x.o.Abort(err)
	}
}

var errCallFailed = errors.New("rpc: the call that took the stream failed")

// callWithUploads is a CALL with stream arguments. The client's request
// timeout bounds the wait to send the request, and then applies again from
// the end of the uploads, not from the start of the call: the call lasts
// as long as the server reads.
func (c *Client) callWithUploads(ctx context.Context, conn *transport.Conn, target, method string, args []any, sent *int) (_ []byte, err error) {
	ups := &uploads{}
	defer func() {
		if err != nil {
			ups.abort(fmt.Errorf("%w: %w", errCallFailed, err))
		}
	}()
	// The default timeout bounds the wait to be sent, not the uploads,
	// and starts again once they are done.
	deadline := c.deadline(ctx)
	id, ps, ch, err := c.send(ctx, deadline, time.Time{}, conn, wire.TypeCall, func(frame []byte) ([]byte, error) {
		frame = appendCallHead(ctx, c.obs, conn, frame, len(args), target, method)
		frame, err := appendArgsUploading(frame, args, ups, c.streams, conn)
		if sent != nil {
			*sent = len(frame)
		}
		return frame, err
	})
	if err != nil {
		return nil, err
	}
	ups.start()
	running := ups.list
	untimed := !deadline.IsZero() // the default timeout applies, from the end of the uploads
	for {
		var upDone <-chan struct{}
		if len(running) > 0 {
			upDone = running[0].o.Context().Done()
		} else if untimed {
			ps.setDeadline(id, ch, time.Now().Add(c.timeout))
			untimed = false
		}
		select {
		case r := <-ch:
			respChanPool.Put(ch)
			if r.err == errNoResponse {
				return nil, fmt.Errorf("rpc: request %d to %s: no response within %s: %w", id, conn.ID(), c.timeout, context.DeadlineExceeded)
			}
			return r.result()
		case <-upDone:
			running = running[1:]
		case <-ctx.Done():
			c.forget(ps, id, ch)
			return nil, fmt.Errorf("rpc: request %d to %s: %w", id, conn.ID(), ctx.Err())
		}
	}
}

// result turns a response into what Request returns.
func (r response) result() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.isErr {
		var v any
		if err := wire.Unmarshal(r.data, &v); err != nil {
			return nil, fmt.Errorf("%w: undecodable error reply: %w", rpc.ErrMalformedResult, err)
		}
		return nil, fromWire(v)
	}
	return r.data, nil
}
