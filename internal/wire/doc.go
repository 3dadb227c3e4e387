// Package wire is Netron's wire format as Titan's TypeScript implementation
// speaks it: the packet codec and the msgpack extension types.
//
// One WebSocket message carries one packet:
//
//	u32 id | u8 flags | one msgpack value | u32 streamId, u32 streamIndex (STREAM only)
//
// All integers are big-endian. The flags byte holds the packet type in bits
// 0–3 (PING 0, GET 1, SET 2, CALL 3, TASK 4, STREAM 5, STREAM_ERROR 6,
// STREAM_CLOSE 7, and our own EXT 8, sent only to peers that negotiated
// it), then eos (0x10), live (0x20), impulse (0x40: 1 request, 0 response)
// and error (0x80). A response reuses the request's id and type. Decode
// checks a frame (header, type, exactly one well-formed msgpack value no
// deeper than MaxDepth, the trailer, nothing after it) without decoding the
// value; Packet.Append and AppendHeader/AppendTrailer build frames.
//
// Values are msgpack with Titan's extension types, registered with msgpack
// v5 in this package's init for the Go types in types.go: Undefined (ext 0,
// d4 00 00), StreamReference (107), Reference (108), Definition (109),
// TitanError (110) and JSError (126). Encoding a value or a pointer writes
// Titan's bytes; decoding into an interface yields the value types
// (wire.Definition, not *wire.Definition).
//
// Marshal and AppendMarshal encode with Titan's conventions (compact
// integers, float64 kept as float64, sorted map keys, struct fields by
// msgpack tag then json tag). Unmarshal, UnmarshalArg and DecodeArg check
// the bytes before msgpack v5 sees them (msgpack v5 preallocates from
// announced lengths and recurses without limit), accept a float holding an
// exact integer where an integer is expected (JavaScript sends every
// number outside int32 as float64), reject values that do not fit, and
// read undefined as the zero value. They decode slices, maps, pointers and
// structs themselves, and charge every allocation to the decode budget of
// the input (Budget: BudgetFactor × its bytes + BudgetSlack, capped per
// decode at DefaultMaxDecodeMemory or an Account's cap): decoding n bytes
// allocates at most Budget(n, cap), whatever the target type, and a value
// that would need more fails with ErrBudget before anything is allocated
// for it. An Account also draws what is charged from a Memory (the node's
// bound on inbound memory) as decoding goes on, and fails with
// ErrNoMemory when that is full. Bytes the process encoded itself decode
// without a budget (NewTrustedDecoder, UnmarshalTrusted).
//
// Every error caused by input wraps ErrMalformed (ErrNoMemory, which is
// not about the input, does not). docs/protocol.md
// describes the format byte by byte, with the test vectors of this
// package's tests.
package wire
