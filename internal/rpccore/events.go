package rpccore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
)

// ExtensionEvents is the name of the extension under which two Go peers
// deliver subscribed events as one-way EXT packets instead of TASK "emit"
// requests (docs/protocol.md, "Events").
const ExtensionEvents = "events1"

// SupportedExtensions returns the protocol extensions this build offers
// and accepts, in preference order.
func SupportedExtensions() []string { return slices.Clone(supportedExtensions) }

// Pending is a request that was sent and whose response has not been
// waited for yet: Client.Send splits Client.Request in two, so that a
// caller can keep several requests in flight on one connection, in order,
// from one goroutine.
type Pending struct {
	conn *transport.Conn
	ps   *pendingSet
	c    *Client
	id   uint32
	ch   chan response
}

// Send sends a request of type t on conn whose data is appended by build
// and returns without waiting for the response; Wait collects it. The
// request times out at the client's request timeout after Send unless the
// context given to Wait ends first. ctx bounds the send only (the wait for
// room in the connection's outbound queue).
func (c *Client) Send(ctx context.Context, conn *transport.Conn, t wire.Type, build func([]byte) ([]byte, error)) (*Pending, error) {
	id, ps, ch, err := c.send(ctx, time.Time{}, time.Time{}, conn, t, build)
	if err != nil {
		return nil, err
	}
	ps.setDeadline(id, ch, time.Now().Add(c.timeout))
	return &Pending{conn: conn, ps: ps, c: c, id: id, ch: ch}, nil
}

// Wait waits for the response of a request sent with Send, until ctx ends
// or the request times out, and returns what Client.Request would have.
// Call it once.
func (p *Pending) Wait(ctx context.Context) ([]byte, error) {
	select {
	case r := <-p.ch:
		respChanPool.Put(p.ch)
		if r.err == errNoResponse {
			return nil, fmt.Errorf("rpc: request %d to %s: %w", p.id, p.conn.ID(), context.DeadlineExceeded)
		}
		return r.result()
	case <-ctx.Done():
		p.c.forget(p.ps, p.id, p.ch)
		return nil, fmt.Errorf("rpc: request %d to %s: %w", p.id, p.conn.ID(), ctx.Err())
	}
}
