package rpccore

import (
	"context"
	"errors"
	"fmt"
	"github.com/netron-go/netron/internal/streamcore"
	"github.com/netron-go/netron/rpc"
	"io"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
)

// Streams through a service a peer published (exposure.go): the node
// reads the stream on one connection and writes it on the other, chunk
// by chunk, each chunk's bytes as they came, with the node's own stream
// ids on each side.

// relayedArgs rewrites the stream arguments of a relayed CALL from conn
// (the caller) to streams from this node to to (the publisher): each
// StreamReference argument is opened on conn (Accept: the node reads it)
// and replaced by the reference of a new stream to to, whose peerId is
// this node's id (what a Titan node needs to find the sender). It returns
// the new data and the pumps to start once the CALL is sent; without
// stream arguments, data itself and none.
func (s *Server) relayedArgs(conn, to *transport.Conn, data []byte) ([]byte, []*relayPump, error) {
	if s.streams == nil || !hasStreamArg(data) {
		return data, nil, nil
	}
	dec := wire.NewTrustedDecoder(data)
	defer wire.ReleaseDecoder(dec)
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return nil, nil, err
	}
	var out []byte
	var pumps []*relayPump
	fail := func(err error) ([]byte, []*relayPump, error) {
		for _, p := range pumps {
			p.abort(err)
		}
		return nil, nil, err
	}
	last := 0
	for i := range n {
		start := len(data) - wire.Remaining(dec)
		if t, ok := wire.NextExt(dec); i >= 2 && ok && t == wire.ExtStreamReference {
			var ref wire.StreamReference
			if err := wire.DecodeArg(dec, reflect.ValueOf(&ref).Elem()); err != nil {
				return fail(err)
			}
			in, err := s.streams.Accept(conn, ref)
			if err != nil {
				return fail(err)
			}
			o, err := s.streams.NewOutbound(to, ref.Live)
			if err != nil {
				in.Close()
				return fail(err)
			}
			pumps = append(pumps, &relayPump{in: in, out: o})
			nref := o.Reference()
			nref.PeerID = s.reg.peerID
			if out == nil {
				out = make([]byte, 0, len(data)+32)
			}
			out = append(out, data[last:start]...)
			if out, err = wire.AppendMarshal(out, nref); err != nil {
				return fail(err)
			}
			last = len(data) - wire.Remaining(dec)
			continue
		}
		if err := wire.SkipArg(dec); err != nil {
			return fail(err)
		}
	}
	return append(out, data[last:]...), pumps, nil
}

// relayPump copies the stream in to out.
type relayPump struct {
	in  *streamcore.Inbound
	out *streamcore.Outbound
}

// start runs the copy on the stream's own goroutine (Outbound.Start).
func (p *relayPump) start() {
	if !p.out.Start(p.run) {
		p.in.Close()
	}
}

func (p *relayPump) run(ctx context.Context) error {
	defer p.in.Close()
	for {
		b, err := p.in.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := p.out.Send(ctx, msgpack.RawMessage(b)); err != nil {
			return err
		}
	}
}

func (p *relayPump) abort(err error) {
	p.out.Abort(err)
	p.in.Close()
}

// relayedResult turns the StreamReference that the publisher from
// answered into a stream from this node to conn, which copies the
// publisher's stream chunk by chunk once the reply is out.
func (s *Server) relayedResult(conn, from *transport.Conn, e *exposed, res []byte) (any, error) {
	if s.streams == nil {
		return nil, &rpc.Error{Code: 500, Name: "TitanError", Message: fmt.Sprintf("%s: a stream result, and this node has no streams", e.qn)}
	}
	ref, err := streamRefOf(res)
	if err != nil {
		return nil, err
	}
	in, err := s.streams.Accept(from, ref)
	if err != nil {
		return nil, streamError(err)
	}
	o, err := s.streams.NewOutbound(conn, ref.Live)
	if err != nil {
		in.Close()
		return nil, streamError(err)
	}
	p := &relayPump{in: in, out: o}
	sc := &streamCall{env: callEnv{conn: conn, streams: s.streams, logger: s.logger}, out: o, readers: []io.Closer{in}}
	return &pendingStream{sc: sc, run: p.run}, nil
}

// eachRelayedStreamArg calls fn with each StreamReference argument of a
// plain peer's CALL of a service a peer published (dec is after its
// target; n is the number of values of the CALL's data).
func (s *Server) eachRelayedStreamArg(dec *msgpack.Decoder, n int, fn func(wire.StreamReference)) {
	for i := 1; i < n; i++ {
		if t, ok := wire.NextExt(dec); i >= 2 && ok && t == wire.ExtStreamReference {
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
