package main

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// natsBench is an embedded nats-server on loopback, a responder connection
// (the "server" side) and a requester connection (the "client" side): a
// request goes requester → nats-server → responder → nats-server →
// requester, as it does in a NATS deployment.
type natsBench struct {
	srv       *server.Server
	responder *nats.Conn
	requester *nats.Conn
}

func startNATS(context.Context) (*natsBench, error) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		return nil, err
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("nats-server did not start")
	}
	nb := &natsBench{srv: srv}
	if nb.responder, err = nats.Connect(srv.ClientURL()); err != nil {
		nb.close()
		return nil, err
	}
	if nb.requester, err = nats.Connect(srv.ClientURL()); err != nil {
		nb.close()
		return nil, err
	}
	_, err = nb.responder.Subscribe("bench.add", func(m *nats.Msg) {
		var out [8]byte
		if len(m.Data) == 16 {
			le.PutUint64(out[:], le.Uint64(m.Data)+le.Uint64(m.Data[8:]))
		}
		m.Respond(out[:])
	})
	if err == nil {
		err = nb.responder.Flush()
	}
	if err != nil {
		nb.close()
		return nil, err
	}
	return nb, nil
}

func (nb *natsBench) close() {
	if nb.requester != nil {
		nb.requester.Close()
	}
	if nb.responder != nil {
		nb.responder.Close()
	}
	nb.srv.Shutdown()
	nb.srv.WaitForShutdown()
}

// add is a request/reply round trip with the same default timeout as
// Netron's calls (5 s).
func (nb *natsBench) add(_ context.Context, a, b int64) (int64, error) {
	var req [16]byte
	le.PutUint64(req[:], uint64(a))
	le.PutUint64(req[8:], uint64(b))
	m, err := nb.requester.Request("bench.add", req[:], 5*time.Second)
	if err != nil {
		return 0, err
	}
	if len(m.Data) != 8 {
		return 0, errors.New("add: short reply")
	}
	return int64(le.Uint64(m.Data)), nil
}

// events measures core pub/sub: the requester connection publishes 16-byte
// messages, the responder connection's subscription receives them.
func (nb *natsBench) events(_ context.Context, d time.Duration) (rateResult, error) {
	w := newWindow(windowSize)
	sub, err := nb.responder.Subscribe("bench.tick", func(m *nats.Msg) {
		w.got(int64(le.Uint64(m.Data)))
	})
	if err != nil {
		return rateResult{}, err
	}
	defer sub.Unsubscribe()
	if err := nb.responder.Flush(); err != nil {
		return rateResult{}, err
	}
	return measureOneWay(d, w, func(seq int64) error {
		p := make([]byte, 16)
		le.PutUint64(p, uint64(seq))
		return nb.requester.Publish("bench.tick", p)
	})
}
