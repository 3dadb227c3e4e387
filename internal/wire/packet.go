package wire

import (
	"encoding/binary"
	"fmt"
)

// Type is the packet type held in bits 0–3 of the flags byte.
type Type uint8

// Packet types as Titan's Netron numbers them.
const (
	TypePing        Type = 0
	TypeGet         Type = 1
	TypeSet         Type = 2
	TypeCall        Type = 3
	TypeTask        Type = 4
	TypeStream      Type = 5
	TypeStreamError Type = 6
	TypeStreamClose Type = 7
	// TypeExt is not a Titan type: it carries the extensions negotiated
	// between Go peers (credit, cancel, goaway, batched events). A plain
	// Netron peer never receives it.
	TypeExt Type = 8
)

func (t Type) String() string {
	switch t {
	case TypePing:
		return "PING"
	case TypeGet:
		return "GET"
	case TypeSet:
		return "SET"
	case TypeCall:
		return "CALL"
	case TypeTask:
		return "TASK"
	case TypeStream:
		return "STREAM"
	case TypeStreamError:
		return "STREAM_ERROR"
	case TypeStreamClose:
		return "STREAM_CLOSE"
	case TypeExt:
		return "EXT"
	}
	return fmt.Sprintf("TYPE%d", uint8(t))
}

// Flag bits above the type.
const (
	FlagEOS     uint8 = 0x10
	FlagLive    uint8 = 0x20
	FlagImpulse uint8 = 0x40 // 1 = request, 0 = response
	FlagError   uint8 = 0x80
	typeMask    uint8 = 0x0f
)

// Sizes of the fixed parts of a packet.
const (
	HeaderSize  = 5 // u32 id, u8 flags
	TrailerSize = 8 // u32 streamId, u32 streamIndex (STREAM only)
)

// Packet is one Netron packet. Data holds exactly one msgpack value; after
// Decode it aliases the frame it was decoded from.
type Packet struct {
	ID          uint32
	Flags       uint8
	Data        []byte
	StreamID    uint32
	StreamIndex uint32
}

// Type returns the packet type.
func (p *Packet) Type() Type { return Type(p.Flags & typeMask) }

// IsRequest reports whether the impulse bit is set.
func (p *Packet) IsRequest() bool { return p.Flags&FlagImpulse != 0 }

// IsError reports whether the error bit is set.
func (p *Packet) IsError() bool { return p.Flags&FlagError != 0 }

// EOS reports whether the end-of-stream bit is set.
func (p *Packet) EOS() bool { return p.Flags&FlagEOS != 0 }

// Live reports whether the live-stream bit is set.
func (p *Packet) Live() bool { return p.Flags&FlagLive != 0 }

// Flags builds a flags byte.
func Flags(t Type, request bool, extra uint8) uint8 {
	f := uint8(t)&typeMask | extra
	if request {
		f |= FlagImpulse
	}
	return f
}

// Decode parses one packet from a WebSocket message. It checks the header,
// the type, that Data is exactly one well-formed msgpack value, and the
// stream trailer; it does not decode Data. The returned Data aliases frame.
func Decode(frame []byte) (Packet, error) {
	var p Packet
	if len(frame) < HeaderSize+1 {
		return p, fmt.Errorf("%w: %d bytes, need at least %d", ErrTruncated, len(frame), HeaderSize+1)
	}
	p.ID = binary.BigEndian.Uint32(frame)
	p.Flags = frame[4]
	if t := p.Type(); t > TypeExt {
		return p, fmt.Errorf("%w: %d", ErrUnknownType, uint8(t))
	}
	body := frame[HeaderSize:]
	n, err := SkipValue(body)
	if err != nil {
		return p, err
	}
	p.Data = body[:n:n]
	rest := body[n:]
	if p.Type() == TypeStream {
		if len(rest) < TrailerSize {
			return p, fmt.Errorf("%w: stream packet without its %d-byte trailer", ErrTruncated, TrailerSize)
		}
		p.StreamID = binary.BigEndian.Uint32(rest)
		p.StreamIndex = binary.BigEndian.Uint32(rest[4:])
		rest = rest[TrailerSize:]
	}
	if len(rest) != 0 {
		return p, fmt.Errorf("%w: %d bytes after the packet", ErrTrailingBytes, len(rest))
	}
	return p, nil
}

// AppendHeader appends a packet header to dst.
func AppendHeader(dst []byte, id uint32, flags uint8) []byte {
	dst = binary.BigEndian.AppendUint32(dst, id)
	return append(dst, flags)
}

// AppendTrailer appends the stream trailer to dst.
func AppendTrailer(dst []byte, streamID, streamIndex uint32) []byte {
	dst = binary.BigEndian.AppendUint32(dst, streamID)
	return binary.BigEndian.AppendUint32(dst, streamIndex)
}

// Append appends the encoding of p to dst. p.Data must hold exactly one
// msgpack value (nil Data is written as msgpack nil).
func (p *Packet) Append(dst []byte) []byte {
	dst = AppendHeader(dst, p.ID, p.Flags)
	if len(p.Data) == 0 {
		dst = append(dst, 0xc0)
	} else {
		dst = append(dst, p.Data...)
	}
	if p.Type() == TypeStream {
		dst = AppendTrailer(dst, p.StreamID, p.StreamIndex)
	}
	return dst
}
