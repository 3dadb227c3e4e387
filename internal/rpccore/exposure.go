package rpccore

import (
	"context"
	"errors"
	"fmt"
	"github.com/netron-go/netron/rpc"
	"regexp"

	"github.com/Masterminds/semver/v3"
	"github.com/google/uuid"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
)

// Remote service exposure: a connected peer publishes one of its services
// on this node (the expose_service task), which third peers then call
// through this node as if it served it. Off by default: the tasks answer
// Titan's 403 (coretasks.go).

// AllowRemoteExposure lets peers publish their services on this node with
// expose_service and withdraw them with unexpose_service, and relays the
// requests for them through c (the node's client). A published service is
// registered as "name@version" (lookups by the bare name find it too, as
// on a Titan node), with the publishing peer's id as its definition's
// peerId. As on Titan, a name belongs to one peer: another peer's
// expose_service of it is 409, and the same peer's replaces what it
// published under that name; CALL, GET and SET requests for it are sent to that peer with the
// same data and its answers, errors included, go back byte for byte.
// Streams are relayed both ways (relaystreams.go): the node reads a stream
// argument from the caller and writes it to the publisher as a stream of
// its own, and a stream result the other way, chunk by chunk. When the
// peer disconnects its services are withdrawn. The server's Authorizer, if any, decides who may
// publish or withdraw what: it is asked with the service's qualified name
// and the method "expose_service" or "unexpose_service".
func (s *Server) AllowRemoteExposure(c *Client) {
	s.mu.Lock()
	s.relay = c
	s.mu.Unlock()
	s.reg.mu.Lock()
	s.reg.relay = c
	s.reg.mu.Unlock()
	s.HandleTask("expose_service", s.exposeService)
	s.HandleTask("unexpose_service", s.unexposeService)
}

// exposedMeta is the meta a peer sends with expose_service (Titan's
// Definition meta map).
type exposedMeta struct {
	Name       string                       `msgpack:"name"`
	Version    string                       `msgpack:"version"`
	Properties map[string]wire.PropertyMeta `msgpack:"properties"`
	Methods    map[string]wire.MethodMeta   `msgpack:"methods"`
}

// titanServiceName is Titan's rule for a name a defId may be.
var titanServiceName = regexp.MustCompile(`^[\w.-]+$`)

func (s *Server) exposeService(ctx context.Context, conn *transport.Conn, args *rpc.Args) (any, error) {
	var meta exposedMeta
	if args.Len() == 0 {
		return nil, badRequest("ArgumentCount", "expose_service takes the service's meta", nil)
	}
	if err := args.Next(&meta); err != nil {
		return nil, err
	}
	if !titanServiceName.MatchString(meta.Name) || len(meta.Name) > 255 {
		return nil, badRequest("ArgumentType", fmt.Sprintf("expose_service: invalid service name %q", meta.Name), nil)
	}
	ver, err := semver.StrictNewVersion(meta.Version)
	if err != nil {
		return nil, badRequest("ArgumentType", fmt.Sprintf("expose_service: invalid version %q of %s", meta.Version, meta.Name), nil)
	}
	qn := meta.Name + "@" + ver.String()
	if conn == nil {
		return nil, badRequest("Malformed", "expose_service is a task for peers", nil)
	}
	if s.authz != nil && !s.authz.Authorize(ctx, conn.Identity(), qn, "expose_service") {
		return nil, &rpc.Error{Code: 403, Name: "TitanError", Message: fmt.Sprintf("Peer %s may not expose %s", conn.ID(), qn),
			Details: map[string]any{"task": "expose_service", "peerId": conn.ID()}}
	}
	if meta.Properties == nil {
		meta.Properties = map[string]wire.PropertyMeta{}
	}
	if meta.Methods == nil {
		meta.Methods = map[string]wire.MethodMeta{}
	}
	id := uuid.NewString()
	e := &exposed{
		name: meta.Name, version: ver, qn: qn, defID: id, relay: conn, methods: map[string]*method{},
		def: wire.Definition{ID: id, PeerID: conn.ID(), Meta: wire.ServiceMeta{
			Name: meta.Name, Version: ver.String(), Properties: meta.Properties, Methods: meta.Methods}},
	}
	conflict := &rpc.Error{Code: 409, Name: "TitanError", Message: fmt.Sprintf("Service '%s' already exposed by a different peer", meta.Name), Details: map[string]any{}}
	if !s.reg.replaceRelayed(conn, meta.Name) {
		return nil, conflict
	}
	err = s.reg.add(e, func(old *exposed) bool { return old.relay == conn })
	if errors.Is(err, rpc.ErrAlreadyExposed) {
		return nil, conflict
	}
	if err != nil {
		return nil, err
	}
	select {
	case <-conn.Done():
		s.reg.dropRelayed(conn) // closed meanwhile: its services go
	default:
	}
	return e.def, nil
}

func (s *Server) unexposeService(ctx context.Context, conn *transport.Conn, args *rpc.Args) (any, error) {
	if conn == nil {
		return nil, badRequest("Malformed", "unexpose_service is a task for peers", nil)
	}
	var name string
	if args.Len() == 0 {
		return nil, badRequest("ArgumentCount", "unexpose_service takes the service's name", nil)
	}
	if err := args.Next(&name); err != nil {
		return nil, err
	}
	e := s.reg.relayedByName(conn, name)
	if e == nil {
		return nil, notFound("Service", name, fmt.Sprintf("Service with id %s not found", name))
	}
	if e.relay != conn {
		return nil, &rpc.Error{Code: 403, Name: "TitanError", Message: fmt.Sprintf("Peer %s does not own service definition %s", conn.ID(), e.defID),
			Details: map[string]any{"task": "unexpose_service", "peerId": conn.ID(), "ownerPeerId": e.def.PeerID}}
	}
	if s.authz != nil && !s.authz.Authorize(ctx, conn.Identity(), e.qn, "unexpose_service") {
		return nil, &rpc.Error{Code: 403, Name: "TitanError", Message: fmt.Sprintf("Peer %s may not unexpose %s", conn.ID(), e.qn),
			Details: map[string]any{"task": "unexpose_service", "peerId": conn.ID()}}
	}
	s.reg.notifyMu.Lock()
	s.reg.removeLocked(e)
	s.reg.notifyMu.Unlock()
	return e.defID, nil
}

// relayedByName finds the service name ("name@version", or a bare name:
// the one conn published, else the highest version) for unexpose_service.
func (r *Registry) relayedByName(conn *transport.Conn, name string) *exposed {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e := r.byQN[name]; e != nil {
		return e
	}
	list := r.byName[name]
	for _, e := range list {
		if e.relay == conn {
			return e
		}
	}
	if len(list) > 0 {
		return list[0]
	}
	return nil
}

// replaceRelayed prepares conn's publication of the service name: as on
// a Titan node, whose registry keys published services by their bare
// name, a name another peer published is a conflict (false), and what
// conn published under that name before, in any version, is withdrawn.
// Services of this node with that name stay.
func (r *Registry) replaceRelayed(conn *transport.Conn, name string) bool {
	r.notifyMu.Lock()
	defer r.notifyMu.Unlock()
	r.mu.RLock()
	var mine []*exposed
	for _, e := range r.byName[name] {
		switch e.relay {
		case nil:
		case conn:
			mine = append(mine, e)
		default:
			r.mu.RUnlock()
			return false
		}
	}
	r.mu.RUnlock()
	for _, e := range mine {
		r.removeLocked(e)
	}
	return true
}

// dropRelayed withdraws the services conn published (it closed).
func (r *Registry) dropRelayed(conn *transport.Conn) {
	r.notifyMu.Lock()
	defer r.notifyMu.Unlock()
	r.mu.RLock()
	var gone []*exposed
	for _, e := range r.byQN {
		if e.relay == conn {
			gone = append(gone, e)
		}
	}
	r.mu.RUnlock()
	for _, e := range gone {
		r.removeLocked(e)
	}
}

// relayTo is what call and property return for a service a peer
// published: handleData forwards the request to it.
type relayTo struct{ e *exposed }

// relayedError is an error response of the publishing peer, sent on as
// it came.
type relayedError struct{ data []byte }

func (e *relayedError) Error() string { return "rpc: error relayed from the service's peer" }

// forward sends the request p (CALL, GET or SET) for the published
// service e to its peer, the target rewritten to e's id, and returns its
// answer as it came.
func (s *Server) forward(ctx context.Context, conn *transport.Conn, e *exposed, p *wire.Packet) (any, error) {
	s.mu.RLock()
	c := s.relay
	s.mu.RUnlock()
	if c == nil {
		return nil, &rpc.Error{Code: 503, Name: "TitanError", Message: "remote exposure is off"}
	}
	data, err := retarget(p.Data, e.defID)
	if err != nil {
		return nil, badRequest("Malformed", err.Error(), nil)
	}
	var pumps []*relayPump
	if p.Type() == wire.TypeCall {
		if data, pumps, err = s.relayedArgs(conn, e.relay, data); err != nil {
			return nil, streamError(err)
		}
	}
	res, isErr, err := c.forward(ctx, e.relay, p.Type(), data, func(sent bool) {
		for _, p := range pumps {
			if sent {
				p.start()
			} else {
				p.abort(errRelayNotSent)
			}
		}
	})
	switch {
	case err != nil:
		return nil, &rpc.Error{Code: 503, Name: "TitanError", Message: fmt.Sprintf("%s: its peer %s did not answer: %v", e.qn, e.def.PeerID, err),
			Details: map[string]any{"reason": "Relay"}}
	case isErr:
		return nil, &relayedError{data: res}
	case isStreamRef(res) && p.Type() == wire.TypeCall:
		return s.relayedResult(conn, e.relay, e, res)
	}
	return msgpack.RawMessage(res), nil
}

var errRelayNotSent = errors.New("rpc: the relayed call was not sent")

// retarget returns data, [target, ...rest], with id as its target.
func retarget(data []byte, id string) ([]byte, error) {
	n, head := arrayHeader(data)
	if head == 0 || n < 1 {
		return nil, errors.New("request data must be an array starting with the target")
	}
	sl := strHeader(data[head:])
	if sl < 0 || head+sl > len(data) {
		return nil, errors.New("the target must be a string")
	}
	b := wire.AppendArrayHeader(make([]byte, 0, len(data)+len(id)), n)
	b = wire.AppendString(b, id)
	return append(b, data[head+sl:]...), nil
}

// arrayHeader returns the length of the msgpack array at the start of b
// and the size of its header (0: not an array).
func arrayHeader(b []byte) (n, size int) {
	if len(b) == 0 {
		return 0, 0
	}
	switch c := b[0]; {
	case c >= 0x90 && c <= 0x9f:
		return int(c & 0x0f), 1
	case c == 0xdc && len(b) >= 3:
		return int(b[1])<<8 | int(b[2]), 3
	case c == 0xdd && len(b) >= 5:
		return int(b[1])<<24 | int(b[2])<<16 | int(b[3])<<8 | int(b[4]), 5
	}
	return 0, 0
}

// strHeader returns the whole size of the msgpack string at the start
// of b, -1 when it is not a string.
func strHeader(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	switch c := b[0]; {
	case c >= 0xa0 && c <= 0xbf:
		return 1 + int(c&0x1f)
	case c == 0xd9 && len(b) >= 2:
		return 2 + int(b[1])
	case c == 0xda && len(b) >= 3:
		return 3 + (int(b[1])<<8 | int(b[2]))
	case c == 0xdb && len(b) >= 5:
		return 5 + (int(b[1])<<24 | int(b[2])<<16 | int(b[3])<<8 | int(b[4]))
	}
	return -1
}

// hasStreamArg reports whether a CALL's data has a StreamReference among
// its arguments.
func hasStreamArg(data []byte) bool {
	dec := wire.NewTrustedDecoder(data)
	defer wire.ReleaseDecoder(dec)
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return false
	}
	for i := range n {
		if i >= 2 {
			if t, ok := wire.NextExt(dec); ok && t == wire.ExtStreamReference {
				return true
			}
		}
		if wire.SkipArg(dec) != nil {
			return false
		}
	}
	return false
}

// forward sends a request of type t with data as it is on conn and
// returns the answer's data as it came, and whether it is an error.
// sent is told whether the request went out, before the answer is
// awaited.
func (c *Client) forward(ctx context.Context, conn *transport.Conn, t wire.Type, data []byte, sent func(bool)) ([]byte, bool, error) {
	deadline := c.deadline(ctx)
	id, ps, ch, err := c.send(ctx, deadline, deadline, conn, t, func(b []byte) ([]byte, error) { return append(b, data...), nil })
	sent(err == nil)
	if err != nil {
		return nil, false, err
	}
	select {
	case r := <-ch:
		respChanPool.Put(ch)
		if r.err == errNoResponse {
			return nil, false, fmt.Errorf("no response within %s: %w", c.timeout, context.DeadlineExceeded)
		}
		return r.data, r.isErr, r.err
	case <-ctx.Done():
		c.forget(ps, id, ch)
		return nil, false, ctx.Err()
	}
}

// relayedToWire sends a relayed error response as it came.
func relayedToWire(err error) (any, bool) {
	var re *relayedError
	if errors.As(err, &re) {
		return msgpack.RawMessage(re.data), true
	}
	return nil, false
}

// Publish asks the node on conn to relay the service qualifiedName of reg
// (this node's registry) to its other peers: the expose_service task with
// the service's meta. The node answers a definition whose id it will send
// its peers' requests with; reg answers that id as the service's until
// Unpublish, the service's Unexpose or the connection's close. It fails
// with the node's error: 403 when the node does not allow it, 409 when
// another peer published the name there.
func (c *Client) Publish(ctx context.Context, conn *transport.Conn, reg *Registry, qualifiedName string) (wire.Definition, error) {
	e, err := reg.resolve(qualifiedName)
	if err != nil {
		return wire.Definition{}, err
	}
	m := e.def.Meta
	data, err := c.Request(ctx, conn, wire.TypeTask, func(b []byte) ([]byte, error) {
		b = wire.AppendArrayHeader(b, 2)
		b = wire.AppendString(b, "expose_service")
		return wire.AppendMarshal(b, exposedMeta{Name: m.Name, Version: m.Version, Properties: m.Properties, Methods: m.Methods})
	})
	if err != nil {
		return wire.Definition{}, err
	}
	var def wire.Definition
	if err := wire.UnmarshalMax(data, &def, conn.MaxDecodeMemory()); err != nil {
		return wire.Definition{}, fmt.Errorf("%w: expose_service: %w", rpc.ErrMalformedResult, err)
	}
	if def.ID == "" || !reg.alias(def.ID, e) {
		return wire.Definition{}, fmt.Errorf("%w: expose_service answered the id %q, which this node cannot take", rpc.ErrMalformedResult, def.ID)
	}
	context.AfterFunc(conn.Context(), func() { reg.unalias(def.ID, e) })
	return def, nil
}

// Unpublish withdraws a service Publish published on the node on conn
// (the unexpose_service task, with the service's bare name: the key a
// Titan node has it under, which a Go node takes too).
func (c *Client) Unpublish(ctx context.Context, conn *transport.Conn, reg *Registry, qualifiedName string) error {
	e, err := reg.resolve(qualifiedName)
	if err != nil {
		return err
	}
	data, err := c.Request(ctx, conn, wire.TypeTask, func(b []byte) ([]byte, error) {
		b = wire.AppendArrayHeader(b, 2)
		b = wire.AppendString(b, "unexpose_service")
		return wire.AppendString(b, e.name), nil // the bare name: a Titan node's key
	})
	if err != nil {
		return err
	}
	var id string
	if wire.UnmarshalMax(data, &id, conn.MaxDecodeMemory()) == nil && id != "" {
		reg.unalias(id, e)
	}
	return nil
}

// alias makes id name e too, unless id names something else already.
func (r *Registry) alias(id string, e *exposed) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byQN[e.qn] != e {
		return false // unexposed meanwhile
	}
	if x, taken := r.byDef[id]; taken {
		return x == e
	}
	r.byDef[id] = e
	return true
}

// unalias removes the alias id of e.
func (r *Registry) unalias(id string, e *exposed) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id != e.defID && r.byDef[id] == e {
		delete(r.byDef, id)
	}
}
