package wire

import (
	"encoding/binary"
	"fmt"
)

// MaxDepth bounds the nesting of arrays, maps and extensions a decoder
// accepts from a peer.
const MaxDepth = 64

// SkipValue returns the length of the single msgpack value at the start of
// b without allocating. It fails on truncated input, the never-used marker
// 0xc1, and nesting deeper than MaxDepth.
func SkipValue(b []byte) (int, error) {
	return skip(b, 0, 0)
}

func need(b []byte, off, n int) error {
	if n < 0 || len(b)-off < n {
		return fmt.Errorf("%w: msgpack value needs %d more bytes at offset %d", ErrTruncated, n, off)
	}
	return nil
}

func skip(b []byte, off, depth int) (int, error) {
	if depth > MaxDepth {
		return 0, ErrTooDeep
	}
	if err := need(b, off, 1); err != nil {
		return 0, err
	}
	c := b[off]
	off++
	var n, items int // n: raw bytes to skip; items: nested values to skip
	switch {
	case c <= 0x7f || c >= 0xe0: // fixint
		return off, nil
	case c <= 0x8f:
		items = 2 * int(c&0x0f)
	case c <= 0x9f:
		items = int(c & 0x0f)
	case c <= 0xbf:
		n = int(c & 0x1f)
	default:
		switch c {
		case 0xc0, 0xc2, 0xc3:
		case 0xc1:
			return 0, fmt.Errorf("%w: marker 0xc1 at offset %d", ErrBadMsgpack, off-1)
		case 0xc4, 0xd9: // bin8, str8
			if err := need(b, off, 1); err != nil {
				return 0, err
			}
			n = int(b[off])
			off++
		case 0xc5, 0xda:
			if err := need(b, off, 2); err != nil {
				return 0, err
			}
			n = int(binary.BigEndian.Uint16(b[off:]))
			off += 2
		case 0xc6, 0xdb:
			if err := need(b, off, 4); err != nil {
				return 0, err
			}
			n = int(binary.BigEndian.Uint32(b[off:]))
			off += 4
		case 0xc7, 0xc8, 0xc9: // ext8/16/32: length, type, data
			l := 1 << (c - 0xc7)
			if err := need(b, off, l+1); err != nil {
				return 0, err
			}
			switch l {
			case 1:
				n = int(b[off])
			case 2:
				n = int(binary.BigEndian.Uint16(b[off:]))
			default:
				n = int(binary.BigEndian.Uint32(b[off:]))
			}
			off += l + 1
		case 0xca:
			n = 4
		case 0xcb:
			n = 8
		case 0xcc, 0xd0:
			n = 1
		case 0xcd, 0xd1:
			n = 2
		case 0xce, 0xd2:
			n = 4
		case 0xcf, 0xd3:
			n = 8
		case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1/2/4/8/16 plus the type byte
			n = 1 + 1<<(c-0xd4)
		case 0xdc, 0xde:
			if err := need(b, off, 2); err != nil {
				return 0, err
			}
			items = int(binary.BigEndian.Uint16(b[off:]))
			off += 2
		case 0xdd, 0xdf:
			if err := need(b, off, 4); err != nil {
				return 0, err
			}
			items = int(binary.BigEndian.Uint32(b[off:]))
			off += 4
		}
		if c == 0xde || c == 0xdf {
			items *= 2
		}
	}
	if err := need(b, off, n); err != nil {
		return 0, err
	}
	off += n
	// Every nested value takes at least one byte: reject impossible counts
	// before looping so a 5-byte header cannot make us spin 2^32 times.
	if items < 0 || items > len(b)-off { // items < 0: a u32 count overflowed int on 32-bit platforms
		return 0, fmt.Errorf("%w: %d nested values announced, %d bytes left", ErrTruncated, items, len(b)-off)
	}
	var err error
	for range items {
		if off, err = skip(b, off, depth+1); err != nil {
			return 0, err
		}
	}
	return off, nil
}
