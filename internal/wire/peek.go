package wire

import "github.com/vmihailenco/msgpack/v5"

// PeekExtType returns the extension type of the next value of dec, a
// decoder of this package, without consuming it; false when the next value
// is not an extension (or dec is not a decoder of this package).
func PeekExtType(dec *msgpack.Decoder) (int8, bool) {
	s := stateOf(dec)
	if s == nil {
		return 0, false
	}
	return extTypeAt(s.rest())
}

// Offset returns how many bytes of its input dec, a decoder of this
// package, has consumed; -1 for any other decoder.
func Offset(dec *msgpack.Decoder) int {
	s := stateOf(dec)
	if s == nil {
		return -1
	}
	return s.off
}
