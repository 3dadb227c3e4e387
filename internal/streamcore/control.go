package streamcore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/netron-go/netron/internal/wire"
)

// Extension is the name of the protocol extension this package adds,
// negotiated in the abilities exchange between Go peers: credit-based flow
// control and consumer cancel, both carried by EXT (type 8) packets, and
// streams passed as call arguments. Plain Netron peers never see it.
const Extension = "stream-credit"

// Sub-kinds of our EXT packets. The data of an EXT packet is a msgpack
// array whose first element names its kind; other kinds (events, …)
// belong to other packages and are ignored here.
const (
	extCredit = "credit" // ["credit", streamId, bytes]
	extCancel = "cancel" // ["cancel", streamId, reason]
)

// Flags of the packets this package sends.
var (
	flagsChunk     = wire.Flags(wire.TypeStream, true, 0)             // 0x45
	flagsChunkLive = wire.Flags(wire.TypeStream, true, wire.FlagLive) // 0x65
	flagsError     = wire.Flags(wire.TypeStreamError, true, 0)        // 0x46
	flagsClose     = wire.Flags(wire.TypeStreamClose, true, 0)        // 0x47
	flagsExt       = wire.Flags(wire.TypeExt, true, 0)                // 0x48
)

// frameCost is what a chunk whose data has n bytes costs in credit: the
// size of its whole STREAM packet (header, data, trailer).
func frameCost(n int) int64 { return int64(wire.HeaderSize + n + wire.TrailerSize) }

// appendUint appends v as the most compact msgpack unsigned integer.
func appendUint(b []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcf), v)
}

// appendCredit appends an EXT credit packet granting n bytes on streamID.
func appendCredit(b []byte, packetID, streamID uint32, n uint32) []byte {
	b = wire.AppendHeader(b, packetID, flagsExt)
	b = wire.AppendArrayHeader(b, 3)
	b = wire.AppendString(b, extCredit)
	b = appendUint(b, uint64(streamID))
	return appendUint(b, uint64(n))
}

// appendCancel appends an EXT cancel packet for streamID.
func appendCancel(b []byte, packetID, streamID uint32, reason string) []byte {
	b = wire.AppendHeader(b, packetID, flagsExt)
	b = wire.AppendArrayHeader(b, 3)
	b = wire.AppendString(b, extCancel)
	b = appendUint(b, uint64(streamID))
	return wire.AppendString(b, reason)
}

// appendEnd appends a STREAM_ERROR {streamId, message} or STREAM_CLOSE
// {streamId, reason} packet, keys in Titan's order.
func appendEnd(b []byte, packetID uint32, t wire.Type, streamID uint32, text string) []byte {
	key, flags := "reason", flagsClose
	if t == wire.TypeStreamError {
		key, flags = "message", flagsError
	}
	b = wire.AppendHeader(b, packetID, flags)
	b = wire.AppendMapHeader(b, 2)
	b = wire.AppendString(b, "streamId")
	b = appendUint(b, uint64(streamID))
	b = wire.AppendString(b, key)
	return wire.AppendString(b, text)
}

// appendEOS appends the end-of-stream packet: data nil, index = the number
// of chunks sent.
func appendEOS(b []byte, packetID uint32, live bool, streamID, index uint32) []byte {
	f := flagsChunk
	if live {
		f = flagsChunkLive
	}
	b = wire.AppendHeader(b, packetID, f|wire.FlagEOS)
	b = wire.AppendNil(b)
	return wire.AppendTrailer(b, streamID, index)
}

// control is a decoded EXT packet of ours.
type control struct {
	kind     string // extCredit or extCancel
	streamID uint32
	credit   uint32 // extCredit: bytes granted, > 0
	reason   string // extCancel
}

// errNotOurs marks an EXT packet of another package.
var errNotOurs = errors.New("stream: not a stream EXT packet")

// errMalformed wraps what is wrong with a control packet of ours.
var errMalformed = errors.New("stream: malformed stream packet")

// decodeControl decodes the data of an EXT packet. It returns errNotOurs
// for kinds this package does not own, and an error wrapping errMalformed
// for a packet of ours it cannot use.
func decodeControl(data []byte) (control, error) {
	switch string(wire.ExtKind(data)) { // no allocation: most EXT packets are events
	case extCredit:
		if c, ok := decodeCredit(data); ok {
			return c, nil // the common case: a credit as appendCredit writes it
		}
	case extCancel:
	default:
		return control{}, errNotOurs
	}
	return decodeControlValue(data)
}

// decodeControlValue is decodeControl for any encoding of a credit or
// cancel packet (integers of any width, floats from JavaScript peers).
func decodeControlValue(data []byte) (control, error) {
	var c control
	var v []any
	if err := wire.Unmarshal(data, &v); err != nil || len(v) == 0 {
		return c, errNotOurs // not an array with a kind: not ours to judge
	}
	kind, _ := v[0].(string)
	switch kind {
	case extCredit, extCancel:
	default:
		return c, errNotOurs
	}
	c.kind = kind
	if len(v) < 2 || len(v) > 3 {
		return c, fmt.Errorf("%w: %s with %d elements", errMalformed, kind, len(v))
	}
	id, ok := uintOf(v[1], math.MaxUint32)
	if !ok || id == 0 {
		return c, fmt.Errorf("%w: %s: bad stream id %v", errMalformed, kind, v[1])
	}
	c.streamID = uint32(id)
	switch kind {
	case extCredit:
		if len(v) != 3 {
			return c, fmt.Errorf("%w: credit without an amount", errMalformed)
		}
		n, ok := uintOf(v[2], math.MaxUint32)
		if !ok || n == 0 {
			return c, fmt.Errorf("%w: credit: bad amount %v", errMalformed, v[2])
		}
		c.credit = uint32(n)
	case extCancel:
		if len(v) == 3 {
			r, ok := v[2].(string)
			if !ok && v[2] != nil {
				return c, fmt.Errorf("%w: cancel: reason is %T", errMalformed, v[2])
			}
			c.reason = r
		}
	}
	return c, nil
}

// decodeCredit decodes a well-formed credit packet as appendCredit writes
// it (["credit", streamId, bytes], unsigned integers, both > 0) without
// allocating (decodeControlValue allocates the array and its values);
// anything else is left to decodeControlValue (false).
func decodeCredit(data []byte) (control, bool) {
	const head = "\x93\xa6" + extCredit
	if len(data) < len(head) || string(data[:len(head)]) != head {
		return control{}, false
	}
	rest := data[len(head):]
	id, rest, ok := readUint32(rest)
	if !ok || id == 0 {
		return control{}, false
	}
	n, rest, ok := readUint32(rest)
	if !ok || n == 0 || len(rest) != 0 {
		return control{}, false
	}
	return control{kind: extCredit, streamID: id, credit: n}, true
}

// readUint32 reads a msgpack unsigned integer (positive fixint, uint 8, 16
// or 32) at the start of b.
func readUint32(b []byte) (uint32, []byte, bool) {
	if len(b) == 0 {
		return 0, b, false
	}
	switch c := b[0]; {
	case c <= 0x7f:
		return uint32(c), b[1:], true
	case c == 0xcc && len(b) >= 2:
		return uint32(b[1]), b[2:], true
	case c == 0xcd && len(b) >= 3:
		return uint32(binary.BigEndian.Uint16(b[1:])), b[3:], true
	case c == 0xce && len(b) >= 5:
		return binary.BigEndian.Uint32(b[1:]), b[5:], true
	}
	return 0, b, false
}

// decodeEnd decodes the data of STREAM_ERROR {streamId, message} or
// STREAM_CLOSE {streamId, reason}. The text key may be missing.
func decodeEnd(data []byte, t wire.Type) (uint32, string, error) {
	var m map[string]any
	if err := wire.Unmarshal(data, &m); err != nil {
		return 0, "", fmt.Errorf("%w: %s data: %w", errMalformed, t, err)
	}
	id, ok := uintOf(m["streamId"], math.MaxUint32)
	if !ok || id == 0 {
		return 0, "", fmt.Errorf("%w: %s: bad streamId %v", errMalformed, t, m["streamId"])
	}
	key := "reason"
	if t == wire.TypeStreamError {
		key = "message"
	}
	text, _ := m[key].(string)
	if text == "" {
		// Either key, whatever the type: be lenient with what peers send.
		if s, ok := m["message"].(string); ok {
			text = s
		} else if s, ok := m["reason"].(string); ok {
			text = s
		}
	}
	return uint32(id), text, nil
}

// uintOf returns v as an integer in [0, limit]; JavaScript peers send
// floats for some integers, accepted when exact.
func uintOf(v any, limit uint64) (uint64, bool) {
	var u uint64
	switch n := v.(type) {
	case int64:
		if n < 0 {
			return 0, false
		}
		u = uint64(n)
	case uint64:
		u = n
	case float64:
		if n < 0 || n != math.Trunc(n) || n > float64(limit) {
			return 0, false
		}
		u = uint64(n)
	case float32:
		return uintOf(float64(n), limit)
	default:
		return 0, false
	}
	return u, u <= limit
}
