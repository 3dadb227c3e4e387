package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// gRPC without protoc: a service registered by hand with a ServiceDesc and
// a codec that passes []byte through, so that what is measured is gRPC's
// transport and framing, not protobuf.

// rawCodec is a gRPC codec for []byte messages.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case []byte:
		return m, nil
	case *[]byte:
		return *m, nil
	}
	return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	*p = data // gRPC hands the codec a copy of its own
	return nil
}

func (rawCodec) Name() string { return "raw" }

// grpcBench is a gRPC server and one client connection to it.
type grpcBench struct {
	srv          *grpc.Server
	conn         *grpc.ClientConn
	eventStreams chan grpc.ServerStream // server ends of Events calls
}

var grpcDesc = grpc.ServiceDesc{
	ServiceName: "bench.Bench",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Add",
		Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			if len(in) != 16 {
				return nil, errors.New("add: want 16 bytes")
			}
			out := make([]byte, 8)
			le.PutUint64(out, le.Uint64(in)+le.Uint64(in[8:]))
			return out, nil
		},
	}},
	Streams: []grpc.StreamDesc{
		{
			// Download: one request (the duration in ms), then 64 KiB
			// chunks until that time has passed: server streaming.
			StreamName:    "Download",
			ServerStreams: true,
			Handler: func(_ any, ss grpc.ServerStream) error {
				var in []byte
				if err := ss.RecvMsg(&in); err != nil {
					return err
				}
				buf := make([]byte, chunkSize)
				end := time.Now().Add(time.Duration(le.Uint64(in)) * time.Millisecond)
				for time.Now().Before(end) {
					if err := ss.SendMsg(buf); err != nil {
						return err
					}
				}
				return nil
			},
		},
		{
			// Upload: chunks from the client, the byte count back:
			// client streaming.
			StreamName:    "Upload",
			ClientStreams: true,
			Handler: func(_ any, ss grpc.ServerStream) error {
				var n uint64
				for {
					var in []byte
					err := ss.RecvMsg(&in)
					if err == io.EOF {
						break
					}
					if err != nil {
						return err
					}
					n += uint64(len(in))
				}
				out := make([]byte, 8)
				le.PutUint64(out, n)
				return ss.SendMsg(out)
			},
		},
	},
}

func startGRPC(ctx context.Context) (*grpcBench, error) {
	gb := &grpcBench{eventStreams: make(chan grpc.ServerStream, 1)}
	desc := grpcDesc
	desc.Streams = append(desc.Streams[:len(desc.Streams):len(desc.Streams)], grpc.StreamDesc{
		// Events: the server sends small messages for as long as the
		// call lasts; the benchmark's emitter calls SendMsg on it.
		StreamName:    "Events",
		ServerStreams: true,
		Handler: func(_ any, ss grpc.ServerStream) error {
			var in []byte
			if err := ss.RecvMsg(&in); err != nil {
				return err
			}
			done := make(chan struct{})
			gb.eventStreams <- &doneStream{ServerStream: ss, done: done}
			select {
			case <-done:
			case <-ss.Context().Done():
			}
			return nil
		},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	gb.srv = grpc.NewServer(grpc.ForceServerCodec(rawCodec{}))
	gb.srv.RegisterService(&desc, struct{}{})
	go gb.srv.Serve(ln)
	gb.conn, err = grpc.NewClient(ln.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		gb.srv.Stop()
		return nil, err
	}
	return gb, nil
}

// doneStream is the server end of an Events call; closing done ends it.
type doneStream struct {
	grpc.ServerStream
	done chan struct{}
}

func (gb *grpcBench) close() {
	gb.conn.Close()
	gb.srv.Stop()
}

func (gb *grpcBench) add(ctx context.Context, a, b int64) (int64, error) {
	var req [16]byte
	le.PutUint64(req[:], uint64(a))
	le.PutUint64(req[8:], uint64(b))
	var out []byte
	if err := gb.conn.Invoke(ctx, "/bench.Bench/Add", req[:], &out); err != nil {
		return 0, err
	}
	if len(out) != 8 {
		return 0, errors.New("add: short reply")
	}
	return int64(le.Uint64(out)), nil
}

func (gb *grpcBench) download(ctx context.Context, d time.Duration) (int64, time.Duration, error) {
	start := time.Now()
	cs, err := gb.conn.NewStream(ctx, &grpcDesc.Streams[0], "/bench.Bench/Download")
	if err != nil {
		return 0, 0, err
	}
	req := make([]byte, 8)
	le.PutUint64(req, uint64(d.Milliseconds()))
	if err := cs.SendMsg(req); err != nil {
		return 0, 0, err
	}
	if err := cs.CloseSend(); err != nil {
		return 0, 0, err
	}
	var n int64
	for {
		var b []byte
		err := cs.RecvMsg(&b)
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, 0, err
		}
		n += int64(len(b))
	}
	return n, time.Since(start), nil
}

func (gb *grpcBench) upload(ctx context.Context, d time.Duration) (int64, time.Duration, error) {
	start := time.Now()
	cs, err := gb.conn.NewStream(ctx, &grpcDesc.Streams[1], "/bench.Bench/Upload")
	if err != nil {
		return 0, 0, err
	}
	buf := make([]byte, chunkSize)
	var sent int64
	for end := start.Add(d); time.Now().Before(end); {
		if err := cs.SendMsg(buf); err != nil {
			return 0, 0, err
		}
		sent += chunkSize
	}
	if err := cs.CloseSend(); err != nil {
		return 0, 0, err
	}
	var out []byte
	if err := cs.RecvMsg(&out); err != nil {
		return 0, 0, err
	}
	if n := int64(le.Uint64(out)); n != sent {
		return 0, 0, fmt.Errorf("upload: server counted %d bytes of %d", n, sent)
	}
	return sent, time.Since(start), nil
}

// events measures small messages on a server stream: the emitter calls
// SendMsg on the server end, a goroutine of the client receives them.
func (gb *grpcBench) events(ctx context.Context, d time.Duration) (rateResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cs, err := gb.conn.NewStream(ctx, &grpc.StreamDesc{StreamName: "Events", ServerStreams: true}, "/bench.Bench/Events")
	if err != nil {
		return rateResult{}, err
	}
	if err := cs.SendMsg([]byte{}); err != nil {
		return rateResult{}, err
	}
	if err := cs.CloseSend(); err != nil {
		return rateResult{}, err
	}
	var ss grpc.ServerStream
	select {
	case ss = <-gb.eventStreams:
	case <-time.After(5 * time.Second):
		return rateResult{}, errors.New("events: the server did not get the call")
	}
	defer close(ss.(*doneStream).done)
	w := newWindow(windowSize)
	recvDone := make(chan error, 1)
	go func() {
		for {
			var b []byte
			if err := cs.RecvMsg(&b); err != nil {
				recvDone <- err
				return
			}
			w.got(int64(le.Uint64(b)))
		}
	}()
	r, err := measureOneWay(d, w, func(seq int64) error {
		p := make([]byte, 16)
		le.PutUint64(p, uint64(seq))
		return ss.SendMsg(p)
	})
	cancel()
	<-recvDone
	return r, err
}
