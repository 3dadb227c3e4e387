package stream

import (
	"bytes"
	"testing"

	"github.com/netron-go/netron/internal/wire"
)

// The seed corpus is checked in under testdata/fuzz/FuzzBinPayload.

// FuzzBinPayload: the zero-copy []byte path agrees with the decoder.
func FuzzBinPayload(f *testing.F) {
	f.Add([]byte{0xc4, 0x02, 'h', 'i'})
	f.Add([]byte{0xc5, 0x00, 0x01, 'x'})
	f.Add([]byte{0xc6, 0x00, 0x00, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, ok := binPayload(data)
		if !ok {
			return
		}
		var want []byte
		if err := wire.Unmarshal(data, &want); err != nil {
			t.Fatalf("binPayload accepted %x, Unmarshal: %v", data, err)
		}
		if !bytes.Equal(b, want) {
			t.Fatalf("binPayload %x, Unmarshal %x", b, want)
		}
	})
}
