package wire

import (
	"encoding/binary"
	"fmt"
)

// EachBatchFrame calls fn with each packet of the data of a batch packet
// (["batch", bin, bin, …], see docs/protocol.md), in order. The frames
// alias data. It stops at the first error of fn, and fails with an error
// wrapping ErrMalformed when data is not a well-formed batch.
func EachBatchFrame(data []byte, fn func(frame []byte) error) error {
	if _, err := SkipValue(data); err != nil {
		return err
	}
	var n, off int
	switch c := data[0]; {
	case c >= 0x90 && c <= 0x9f:
		n, off = int(c&0x0f), 1
	case c == 0xdc && len(data) >= 3:
		n, off = int(binary.BigEndian.Uint16(data[1:])), 3
	case c == 0xdd && len(data) >= 5:
		n, off = int(binary.BigEndian.Uint32(data[1:])), 5
	default:
		return fmt.Errorf("%w: batch data is not an array", ErrBadMsgpack)
	}
	if n < 1 {
		return fmt.Errorf("%w: empty batch", ErrBadMsgpack)
	}
	l, err := SkipValue(data[off:]) // the "batch" kind
	if err != nil {
		return err
	}
	off += l
	for i := 1; i < n; i++ {
		var size, hdr int
		switch data[off] {
		case 0xc4:
			size, hdr = int(data[off+1]), 2
		case 0xc5:
			size, hdr = int(binary.BigEndian.Uint16(data[off+1:])), 3
		case 0xc6:
			size, hdr = int(binary.BigEndian.Uint32(data[off+1:])), 5
		default:
			return fmt.Errorf("%w: batch element %d is not bin", ErrBadMsgpack, i)
		}
		// SkipValue validated the whole value, so the bin lies inside data.
		frame := data[off+hdr : off+hdr+size : off+hdr+size]
		off += hdr + size
		if err := fn(frame); err != nil {
			return err
		}
	}
	return nil
}

// ExtKind returns the kind of an EXT packet's data, the string that starts
// its array, without allocating; "" when data does not start that way.
// The result aliases data.
func ExtKind(data []byte) []byte {
	off := 0
	switch {
	case len(data) == 0:
		return nil
	case data[0] >= 0x91 && data[0] <= 0x9f:
		off = 1
	case data[0] == 0xdc:
		off = 3
	case data[0] == 0xdd:
		off = 5
	default:
		return nil
	}
	if len(data) <= off {
		return nil
	}
	var n int
	switch c := data[off]; {
	case c >= 0xa0 && c <= 0xbf:
		n, off = int(c&0x1f), off+1
	case c == 0xd9 && len(data) > off+1:
		n, off = int(data[off+1]), off+2
	default:
		return nil
	}
	if len(data) < off+n {
		return nil
	}
	return data[off : off+n]
}
