package netron

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
)

// Topics of the node's bus that are not events (see docs/bus.md for the
// whole map). Packets travel on the transport's topics, which the node
// keeps read-only for Watermill publishers.
const (
	// TopicRequests carries every request packet a peer sent to this
	// node (calls, property reads and writes, tasks, emitted events).
	TopicRequests = transport.TopicRequests
	// TopicResponses carries every reply a peer sent to this node.
	TopicResponses = transport.TopicResponses
	// TopicStreams carries every stream packet a peer sent to this node.
	TopicStreams = transport.TopicStreams
	// TopicOutbound carries every packet this node sends, to any peer:
	// the node-wide tap of outbound traffic.
	TopicOutbound = transport.TopicOutbound
	// TopicConnected announces a connection whose handshake completed.
	TopicConnected = transport.TopicConnected
	// TopicDisconnected announces a connection that closed.
	TopicDisconnected = transport.TopicDisconnected
	// TopicCalls takes calls injected through Watermill (NewCallMessage):
	// the node runs each and publishes its reply on TopicReplies, or on
	// the topic in the message's MetaReplyTo.
	TopicCalls = "netron.calls"
	// TopicReplies carries the replies to the calls of TopicCalls, with
	// the correlation id of their call.
	TopicReplies = "netron.replies"
)

// Metadata keys of the Watermill messages a node publishes on its bus and
// takes from it. Every message a node marshals carries MetaKind and
// MetaEncoding; the others as the kind has them.
const (
	// MetaKind says what the message is: KindCall, KindReply, KindEvent,
	// KindStream, KindPeer, KindTask, KindExt, KindPing or KindPresence.
	MetaKind = "netron.kind"
	// MetaPeer is the peer a packet came from or goes to, the peer that
	// connected or disconnected, the peer an event came from; on an
	// injected call, the peer to call (empty: this node, or discovery).
	MetaPeer = "netron.peer"
	// MetaDirection is "in" for a packet received, "out" for one sent.
	MetaDirection = "netron.direction"
	// MetaService is the qualified name of the service a call addresses
	// (empty when the node cannot tell, e.g. a definition id of a peer it
	// has no catalogue of; MetaDef has the id).
	MetaService = "netron.service"
	// MetaDef is the definition id (or name) a call packet addresses.
	MetaDef = "netron.def"
	// MetaMethod is the method called, or the property read or written.
	MetaMethod = "netron.method"
	// MetaTask is the name of a task.
	MetaTask = "netron.task"
	// MetaEvent is the name of an event.
	MetaEvent = "netron.event"
	// MetaSource is the id of the node an event was emitted on.
	MetaSource = "netron.source"
	// MetaPacket is the packet type (CALL, GET, SET, TASK, STREAM, …).
	MetaPacket = "netron.packet"
	// MetaPacketID is the packet id, in decimal.
	MetaPacketID = "netron.packet_id"
	// MetaStreamID and MetaStreamIndex locate a stream chunk.
	MetaStreamID    = "netron.stream_id"
	MetaStreamIndex = "netron.stream_index"
	// MetaError is "true" on a reply that carries an error.
	MetaError = "netron.error"
	// MetaEncoding is the payload's encoding: EncodingMsgpack or
	// EncodingJSON.
	MetaEncoding = "netron.encoding"
	// MetaReplyTo, on an injected call, names the topic its reply goes
	// to (TopicReplies if empty).
	MetaReplyTo = "netron.reply_to"
	// MetaConnected is "true" on a KindPeer message for a connection
	// that opened, "false" for one that closed.
	MetaConnected = "netron.connected"
	// MetaCorrelationID is Watermill's correlation id
	// (middleware.CorrelationIDMetadataKey). A request packet and its
	// reply share one ("<peer>/<packet id>"); an injected call's reply has
	// the call's.
	MetaCorrelationID = "correlation_id"
)

// Values of MetaKind.
const (
	KindCall   = "call"   // a CALL, GET or SET request
	KindReply  = "reply"  // the answer to a request, or to an injected call
	KindEvent  = "event"  // an event (emitted here, by a peer, or lifecycle)
	KindStream = "stream" // a stream chunk, error or close
	KindPeer   = "peer"   // a connection opened or closed
	KindTask   = "task"   // a TASK request other than emit
	KindExt    = "ext"    // an extension packet between Go peers
	KindPing   = "ping"   // a keep-alive PING or its answer
)

// Values of MetaEncoding.
const (
	// EncodingMsgpack: the payload is msgpack as the wire carries it. The
	// default.
	EncodingMsgpack = "msgpack"
	// EncodingJSON: the payload is JSON (Config.BusJSON, or an injected
	// message that says so).
	EncodingJSON = "json"
)

// ErrInvalidMessage is wrapped by the errors of the message decoders: a
// Watermill message that is not what its topic or its metadata says.
var ErrInvalidMessage = errors.New("netron: invalid message")

// maxMessageDecode bounds the memory one decode of a message's payload may
// take (its budget, see the wire package): payloads come from anyone who
// can publish on the bus's backend.
const maxMessageDecode = 64 << 20

// nodeMarshaler turns the node's typed bus values into self-describing
// Watermill messages, and injected messages into events. Other values go
// through JSON.
type nodeMarshaler struct {
	n    *Node
	json bool
}

var _ bus.Marshaler = (*nodeMarshaler)(nil)

func (m *nodeMarshaler) Marshal(topic string, v any) (*message.Message, error) {
	switch v := v.(type) {
	case transport.Inbound:
		if v.Conn == nil {
			return nil, fmt.Errorf("%w: inbound packet without a connection", ErrInvalidMessage)
		}
		return m.packet(v.Packet, "in", v.Conn)
	case transport.Sent:
		p, err := wire.Decode(v.Frame)
		if err != nil {
			return nil, err
		}
		return m.packet(p, "out", v.Conn)
	case transport.Outbound:
		return nil, fmt.Errorf("%w: %s is a connection's own topic; subscribe to %s", ErrInvalidMessage, topic, TopicOutbound)
	case transport.ConnEvent:
		msg := m.newMessage(KindPeer)
		msg.Metadata.Set(MetaPeer, v.PeerID)
		msg.Metadata.Set(MetaConnected, strconv.FormatBool(topic == TopicConnected))
		ev := PeerEvent{PeerID: v.PeerID, Connected: topic == TopicConnected}
		return m.withPayload(msg, ev)
	case Event:
		return m.event(v.Name, v.Source, v.Peer, v.Args)
	case PeerEvent:
		name := EventPeerDisconnect
		if v.Connected {
			name = EventPeerConnect
		}
		return m.event(name, m.n.cfg.ID, v.Peer, []any{v})
	case ServiceEvent:
		name := EventServiceUnexpose
		if v.Exposed {
			name = EventServiceExpose
		}
		return m.event(name, m.n.cfg.ID, nil, []any{v})
	case NodeEvent:
		name := EventNodeLeft
		if v.Joined {
			name = EventNodeJoined
		}
		return m.event(name, m.n.cfg.ID, nil, []any{v})
	case ServiceDiscovered:
		return m.event(EventServiceDiscovered, m.n.cfg.ID, nil, []any{v})
	case NodeChange:
		return m.presenceMessage(v)
	}
	return bus.JSONMarshaler{}.Marshal(topic, v)
}

// Unmarshal decodes an injected message into an Event (TopicEvents); the
// node's internal types cannot be made from a message.
func (m *nodeMarshaler) Unmarshal(msg *message.Message, v any) error {
	switch v := v.(type) {
	case *Event:
		ev, err := DecodeEvent(msg)
		if err != nil {
			m.n.rejectMessage("event", msg, err)
			return err
		}
		if err := checkName(ev.Name, false); err != nil {
			m.n.rejectMessage("event", msg, err)
			return err
		}
		ev.Name = canonical(ev.Name)
		ev.Peer = nil
		if ev.Source == "" {
			ev.Source = m.n.cfg.ID
		}
		m.n.inject.events.Add(1)
		*v = ev
		return nil
	case *transport.Inbound, *transport.ConnEvent, *transport.Sent, *transport.Outbound,
		*PeerEvent, *ServiceEvent, *NodeEvent, *ServiceDiscovered, *NodeChange:
		err := fmt.Errorf("%w: a %T cannot come from a Watermill message", ErrInvalidMessage, v)
		m.n.rejectMessage("internal", msg, err)
		return err
	}
	return bus.JSONMarshaler{}.Unmarshal(msg, v)
}

func (m *nodeMarshaler) newMessage(kind string) *message.Message {
	msg := message.NewMessage("", nil)
	msg.Metadata.Set(MetaKind, kind)
	if m.json {
		msg.Metadata.Set(MetaEncoding, EncodingJSON)
	} else {
		msg.Metadata.Set(MetaEncoding, EncodingMsgpack)
	}
	return msg
}

// withPayload encodes v as the message's payload.
func (m *nodeMarshaler) withPayload(msg *message.Message, v any) (*message.Message, error) {
	var err error
	if m.json {
		msg.Payload, err = json.Marshal(v)
	} else {
		msg.Payload, err = wire.Marshal(v)
	}
	if err != nil {
		return nil, err
	}
	return msg, nil
}

// withRaw sets msgpack bytes as the payload, converted to JSON if asked.
func (m *nodeMarshaler) withRaw(msg *message.Message, raw []byte) (*message.Message, error) {
	if !m.json {
		msg.Payload = append([]byte(nil), raw...)
		return msg, nil
	}
	var v any
	if err := wire.UnmarshalMax(raw, &v, maxMessageDecode); err != nil {
		return nil, err
	}
	p, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	msg.Payload = p
	return msg, nil
}

func (m *nodeMarshaler) event(name, source string, p *Peer, args []any) (*message.Message, error) {
	msg := m.newMessage(KindEvent)
	msg.Metadata.Set(MetaEvent, name)
	msg.Metadata.Set(MetaSource, source)
	if p != nil {
		msg.Metadata.Set(MetaPeer, p.ID())
	}
	if args == nil {
		args = []any{}
	}
	return m.withPayload(msg, args)
}

// packet describes a packet received from (dir "in") or sent to ("out")
// the peer of c. The payload is the packet's data; for a request, the
// arguments alone, as an array.
func (m *nodeMarshaler) packet(p wire.Packet, dir string, c *transport.Conn) (*message.Message, error) {
	peerID := c.ID()
	var msg *message.Message
	raw := p.Data
	t := p.Type()
	switch {
	case t >= wire.TypeStream && t <= wire.TypeStreamClose:
		msg = m.newMessage(KindStream)
		msg.Metadata.Set(MetaStreamID, strconv.FormatUint(uint64(p.StreamID), 10))
		msg.Metadata.Set(MetaStreamIndex, strconv.FormatUint(uint64(p.StreamIndex), 10))
	case t == wire.TypePing:
		msg = m.newMessage(KindPing)
	case !p.IsRequest():
		msg = m.newMessage(KindReply)
		if p.IsError() {
			msg.Metadata.Set(MetaError, "true")
		}
	default:
		hd, err := splitRequest(p.Data, t)
		if err != nil {
			return nil, err
		}
		raw = hd.args
		switch {
		case t == wire.TypeTask && hd.first == "emit", t == wire.TypeExt && hd.first == extEventKind:
			msg = m.newMessage(KindEvent)
			msg.Metadata.Set(MetaEvent, hd.second)
			if dir == "in" {
				msg.Metadata.Set(MetaSource, peerID)
			} else {
				msg.Metadata.Set(MetaSource, m.n.cfg.ID)
			}
		case t == wire.TypeTask:
			msg = m.newMessage(KindTask)
			msg.Metadata.Set(MetaTask, hd.first)
			if hd.hasSecond {
				raw = hd.afterFirst
			}
		case t == wire.TypeExt:
			msg = m.newMessage(KindExt)
			msg.Metadata.Set(MetaTask, hd.first)
			raw = hd.afterFirst
		default:
			msg = m.newMessage(KindCall)
			msg.Metadata.Set(MetaDef, hd.first)
			msg.Metadata.Set(MetaMethod, hd.second)
			if qn := m.serviceOf(hd.first, dir, c); qn != "" {
				msg.Metadata.Set(MetaService, qn)
			}
		}
	}
	msg.Metadata.Set(MetaPeer, peerID)
	msg.Metadata.Set(MetaDirection, dir)
	msg.Metadata.Set(MetaPacket, t.String())
	id := strconv.FormatUint(uint64(p.ID), 10)
	msg.Metadata.Set(MetaPacketID, id)
	msg.Metadata.Set(MetaCorrelationID, peerID+"/"+id)
	return m.withRaw(msg, raw)
}

// serviceOf names the service a definition id of a call addresses: one of
// ours for a request received, one of the peer's for a request sent.
func (m *nodeMarshaler) serviceOf(def, dir string, c *transport.Conn) string {
	if dir == "in" {
		return m.n.reg.QualifiedName(def)
	}
	p := m.n.peerOf(c)
	p.mu.Lock()
	defer p.mu.Unlock()
	for qn, d := range p.catalog {
		if d.ID == def || qn == def {
			return qn
		}
	}
	return ""
}

// requestHead is a request's data split: [first, second, ...args].
type requestHead struct {
	first, second string
	hasSecond     bool
	args          []byte // msgpack array of what follows second (or first for GET with one)
	afterFirst    []byte // msgpack array of what follows first
}

// splitRequest splits the data of a request packet, a msgpack array whose
// first element is a string (a definition id, a task name, an extension
// kind) and whose second, for calls and events, is a string too.
func splitRequest(data []byte, t wire.Type) (requestHead, error) {
	var h requestHead
	n, body, err := arrayHeader(data)
	if err != nil {
		return h, err
	}
	elems := make([][]byte, 0, min(n, 64))
	for i := 0; i < n; i++ {
		k, err := wire.SkipValue(body)
		if err != nil {
			return h, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
		}
		elems = append(elems, body[:k])
		body = body[k:]
	}
	if len(elems) == 0 {
		return h, fmt.Errorf("%w: empty %s request", ErrInvalidMessage, t)
	}
	if err := msgpack.Unmarshal(elems[0], &h.first); err != nil {
		return h, fmt.Errorf("%w: %s request's first element: %w", ErrInvalidMessage, t, err)
	}
	h.afterFirst = joinArray(elems[1:])
	if len(elems) > 1 {
		if err := msgpack.Unmarshal(elems[1], &h.second); err == nil {
			h.hasSecond = true
		}
	}
	if h.hasSecond {
		h.args = joinArray(elems[2:])
	} else {
		h.args = h.afterFirst
	}
	return h, nil
}

// arrayHeader reads a msgpack array header and returns its length and
// what follows it.
func arrayHeader(b []byte) (int, []byte, error) {
	if len(b) == 0 {
		return 0, nil, fmt.Errorf("%w: empty payload", ErrInvalidMessage)
	}
	c := b[0]
	switch {
	case c >= 0x90 && c <= 0x9f:
		return int(c & 0x0f), b[1:], nil
	case c == 0xdc && len(b) >= 3:
		return int(b[1])<<8 | int(b[2]), b[3:], nil
	case c == 0xdd && len(b) >= 5:
		n := int(uint32(b[1])<<24 | uint32(b[2])<<16 | uint32(b[3])<<8 | uint32(b[4]))
		if n > len(b) { // every element takes at least one byte
			return 0, nil, fmt.Errorf("%w: array of %d elements in %d bytes", ErrInvalidMessage, n, len(b))
		}
		return n, b[5:], nil
	}
	return 0, nil, fmt.Errorf("%w: payload is not a msgpack array", ErrInvalidMessage)
}

// joinArray encodes elems, each one msgpack value, as a msgpack array.
func joinArray(elems [][]byte) []byte {
	size := 5
	for _, e := range elems {
		size += len(e)
	}
	out := wire.AppendArrayHeader(make([]byte, 0, size), len(elems))
	for _, e := range elems {
		out = append(out, e...)
	}
	return out
}

// ---------------------------------------------------------------------------
// Decoding helpers and constructors for users.

// encodingOf returns the encoding msg says its payload has.
func encodingOf(msg *message.Message) (string, error) {
	switch e := msg.Metadata.Get(MetaEncoding); e {
	case "", EncodingMsgpack:
		return EncodingMsgpack, nil
	case EncodingJSON:
		return EncodingJSON, nil
	default:
		return "", fmt.Errorf("%w: unknown encoding %q", ErrInvalidMessage, e)
	}
}

// rawArgs splits the payload of msg, an array, into its elements, each
// still encoded (msgpack.RawMessage or json.RawMessage).
func rawArgs(msg *message.Message) ([]any, error) {
	enc, err := encodingOf(msg)
	if err != nil {
		return nil, err
	}
	if enc == EncodingJSON {
		var list []json.RawMessage
		if err := json.Unmarshal(msg.Payload, &list); err != nil {
			return nil, fmt.Errorf("%w: payload is not a JSON array: %w", ErrInvalidMessage, err)
		}
		out := make([]any, len(list))
		for i, r := range list {
			var v any
			if err := json.Unmarshal(r, &v); err != nil {
				return nil, fmt.Errorf("%w: argument %d: %w", ErrInvalidMessage, i+1, err)
			}
			out[i] = v
		}
		return out, nil
	}
	n, body, err := arrayHeader(msg.Payload)
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, min(n, 64))
	for i := 0; i < n; i++ {
		k, err := wire.SkipValue(body)
		if err != nil {
			return nil, fmt.Errorf("%w: argument %d: %w", ErrInvalidMessage, i+1, err)
		}
		out = append(out, msgpack.RawMessage(body[:k:k]))
		body = body[k:]
	}
	if len(body) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the arguments", ErrInvalidMessage, len(body))
	}
	return out, nil
}

// DecodeArgs returns the arguments a message carries (a call's, an
// event's, a task's), decoded generically: numbers as int64, uint64 or
// float64, maps as map[string]any, as Event.Args from a peer. Use
// DecodeArg for a typed view.
func DecodeArgs(msg *message.Message) ([]any, error) {
	args, err := rawArgs(msg)
	if err != nil {
		return nil, err
	}
	for i, a := range args {
		raw, ok := a.(msgpack.RawMessage)
		if !ok {
			continue
		}
		var v any
		if err := wire.UnmarshalMax(raw, &v, maxMessageDecode); err != nil {
			return nil, fmt.Errorf("%w: argument %d: %w", ErrInvalidMessage, i+1, err)
		}
		args[i] = v
	}
	return args, nil
}

// DecodeArg stores argument i (from 0) of the message's arguments in v, a
// non-nil pointer.
func DecodeArg(msg *message.Message, i int, v any) error {
	args, err := rawArgs(msg)
	if err != nil {
		return err
	}
	if i < 0 || i >= len(args) {
		return fmt.Errorf("%w: no argument %d (it has %d)", ErrInvalidMessage, i+1, len(args))
	}
	switch a := args[i].(type) {
	case msgpack.RawMessage:
		return wire.UnmarshalMax(a, v, maxMessageDecode)
	default:
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, v)
	}
}

// DecodeEvent returns the event a KindEvent message carries: its name
// (MetaEvent), source (MetaSource) and arguments, decoded as DecodeArgs
// does. Peer is nil.
func DecodeEvent(msg *message.Message) (Event, error) {
	if k := msg.Metadata.Get(MetaKind); k != "" && k != KindEvent {
		return Event{}, fmt.Errorf("%w: kind %q is not %q", ErrInvalidMessage, k, KindEvent)
	}
	name := msg.Metadata.Get(MetaEvent)
	if name == "" {
		return Event{}, fmt.Errorf("%w: no %s", ErrInvalidMessage, MetaEvent)
	}
	args, err := DecodeArgs(msg)
	if err != nil {
		return Event{}, err
	}
	return Event{Name: name, Args: args, Source: msg.Metadata.Get(MetaSource)}, nil
}

// DecodeResult decodes the reply of a call (an injected call's, from
// TopicReplies, or a peer's reply packet) into v, a non-nil pointer, or
// returns the call's error: an *rpc.Error when the reply carries one. A
// nil v only checks for the error.
func DecodeResult(msg *message.Message, v any) error {
	enc, err := encodingOf(msg)
	if err != nil {
		return err
	}
	if msg.Metadata.Get(MetaError) == "true" {
		return decodeReplyError(msg.Payload, enc)
	}
	if v == nil {
		return nil
	}
	if enc == EncodingJSON {
		return json.Unmarshal(msg.Payload, v)
	}
	return wire.UnmarshalMax(msg.Payload, v, maxMessageDecode)
}

// replyError is an error as a reply message carries it.
type replyError struct {
	Code    int            `msgpack:"code" json:"code"`
	Name    string         `msgpack:"name" json:"name"`
	Message string         `msgpack:"message" json:"message"`
	Details map[string]any `msgpack:"details,omitempty" json:"details,omitempty"`
}

func decodeReplyError(p []byte, enc string) error {
	if enc == EncodingJSON {
		var re replyError
		if err := json.Unmarshal(p, &re); err != nil {
			return fmt.Errorf("%w: error reply: %w", ErrInvalidMessage, err)
		}
		return &rpc.Error{Code: re.Code, Name: re.Name, Message: re.Message, Details: re.Details}
	}
	// A peer's error reply is Netron's error value; ours a replyError.
	var v any
	if err := wire.UnmarshalMax(p, &v, maxMessageDecode); err != nil {
		return fmt.Errorf("%w: error reply: %w", ErrInvalidMessage, err)
	}
	switch e := v.(type) {
	case *rpc.Error:
		return e
	case error:
		return e
	case map[string]any:
		re := &rpc.Error{}
		if c, ok := e["code"].(int64); ok {
			re.Code = int(c)
		}
		re.Name, _ = e["name"].(string)
		re.Message, _ = e["message"].(string)
		re.Details, _ = e["details"].(map[string]any)
		return re
	}
	return &rpc.Error{Message: fmt.Sprint(v), Thrown: v}
}

// NewEventMessage returns a Watermill message that, published on a
// node's TopicEvents, emits the event name with args on that node (as
// Node.Emit would, to its handlers and its subscribed peers, Titan peers
// included). args are encoded as msgpack now.
func NewEventMessage(name string, args ...any) (*message.Message, error) {
	if err := checkName(name, false); err != nil {
		return nil, err
	}
	if args == nil {
		args = []any{}
	}
	p, err := wire.Marshal(args)
	if err != nil {
		return nil, err
	}
	msg := message.NewMessage(uuid.NewString(), p)
	msg.Metadata.Set(MetaKind, KindEvent)
	msg.Metadata.Set(MetaEvent, name)
	msg.Metadata.Set(MetaEncoding, EncodingMsgpack)
	return msg, nil
}

// NewCallMessage returns a Watermill message that, published on a node's
// TopicCalls, calls method of service (a spec as for Node.Service) with
// args: on the node itself or through discovery, or, when the message's
// MetaPeer is set, on that connected peer. The reply, or the error, comes
// on TopicReplies (or the topic in MetaReplyTo) with the message's
// correlation id, which NewCallMessage sets to the message's UUID.
func NewCallMessage(service, method string, args ...any) (*message.Message, error) {
	if args == nil {
		args = []any{}
	}
	p, err := wire.Marshal(args)
	if err != nil {
		return nil, err
	}
	id := uuid.NewString()
	msg := message.NewMessage(id, p)
	msg.Metadata.Set(MetaKind, KindCall)
	msg.Metadata.Set(MetaService, service)
	msg.Metadata.Set(MetaMethod, method)
	msg.Metadata.Set(MetaEncoding, EncodingMsgpack)
	msg.Metadata.Set(MetaCorrelationID, id)
	return msg, nil
}
