package wire

// Extension type numbers of Titan's msgpack serializer.
const (
	ExtUndefined       int8 = 0
	ExtStreamReference int8 = 107
	ExtReference       int8 = 108
	ExtDefinition      int8 = 109
	ExtTitanError      int8 = 110
	ExtJSError         int8 = 126
)

// Undefined is JavaScript's undefined: fixext1 type 0, payload 0x00 (d4 00 00).
type Undefined struct{}

// JSError is a JavaScript Error as Titan serializes it (ext 126): a raw u16
// standard kind, then name, stack and message as msgpack strings, then a raw
// u16 count of custom fields followed by that many key/value pairs.
type JSError struct {
	Kind    uint16 // 1 Error, 2 SyntaxError, 3 TypeError, 4 ReferenceError, 5 RangeError, 6 EvalError, 7 URIError
	Name    string
	Stack   string
	Message string
	Fields  map[string]any // custom own fields (code, meta, ...); encoded in key order
}

// Standard JS error kinds of JSError.Kind.
const (
	JSKindError          uint16 = 1
	JSKindSyntaxError    uint16 = 2
	JSKindTypeError      uint16 = 3
	JSKindReferenceError uint16 = 4
	JSKindRangeError     uint16 = 5
	JSKindEvalError      uint16 = 6
	JSKindURIError       uint16 = 7
)

// TitanError is Titan's structured error (ext 110): 13 msgpack values in a
// row. Empty strings are written as undefined (RequestID, CorrelationID,
// SpanID, TraceID) or nil (Stack); nil maps as {} (Details, Context) or nil
// (Extras).
type TitanError struct {
	Name          string
	Code          int
	Message       string
	Details       map[string]any
	Context       map[string]any
	Timestamp     float64 // milliseconds since the Unix epoch
	RequestID     string
	CorrelationID string
	SpanID        string
	TraceID       string
	Stack         string
	Cause         any
	Extras        map[string]any
}

// Definition describes one exposed service (ext 109): id, parentId, peerId,
// meta, as four msgpack values in a row.
type Definition struct {
	ID       string
	ParentID string
	PeerID   string
	Meta     ServiceMeta
}

// ServiceMeta is a Definition's meta map. On the wire its keys come in
// Titan's order: name, version, properties, methods, contract, transports,
// _transports, transportConfig (the last four undefined).
type ServiceMeta struct {
	Name       string
	Version    string
	Properties map[string]PropertyMeta
	Methods    map[string]MethodMeta
}

// PropertyMeta describes a property of a service.
type PropertyMeta struct {
	Type     string `msgpack:"type"`
	Readonly bool   `msgpack:"readonly"`
}

// MethodMeta describes a method of a service: its result type and arguments.
type MethodMeta struct {
	Type      string         `msgpack:"type"`
	Arguments []ArgumentMeta `msgpack:"arguments"`
	// Idempotent is ours (Titan's method metadata has no such key and
	// ignores it): a caller may run the method again on another instance
	// of the service when a call of it failed in transit. On the wire only
	// when true, as a third key "idempotent": true.
	Idempotent bool `msgpack:"idempotent,omitempty"`
}

// ArgumentMeta describes one argument of a method.
type ArgumentMeta struct {
	Index int    `msgpack:"index"`
	Type  string `msgpack:"type"`
}

// Reference refers to a service definition held by the receiver (ext 108).
type Reference struct {
	DefID string
}

// StreamReference announces a stream in a reply or an argument (ext 107): a
// msgpack string stream id, a raw u8 type (1 = writable, the sending side;
// 0 = readable), a raw u8 live flag, and the msgpack string peer id.
type StreamReference struct {
	StreamID string
	Type     uint8
	Live     bool
	PeerID   string
}

// StreamCloseData is the data of a STREAM_CLOSE packet, {streamId, reason},
// with the keys in Titan's order.
type StreamCloseData struct {
	StreamID uint32 `msgpack:"streamId"`
	Reason   string `msgpack:"reason"`
}

// StreamErrorData is the data of a STREAM_ERROR packet, {streamId, message},
// with the keys in Titan's order.
type StreamErrorData struct {
	StreamID uint32 `msgpack:"streamId"`
	Message  string `msgpack:"message"`
}
