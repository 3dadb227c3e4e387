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
