package streamcore

import (
	"errors"
	"testing"

	"github.com/netron-go/netron/internal/wire"
)

// The seed corpora are checked in under testdata/fuzz/<FuzzName>/: our
// own control packets, Titan's STREAM_CLOSE of capture 2 (#38, #341) and
// STREAM_ERROR (#343), and broken variants.

// FuzzDecodeControl: the decoder of our EXT packets never panics, accepts
// only what it can use, and reads back what appendCredit and appendCancel
// write.
func FuzzDecodeControl(f *testing.F) {
	f.Add(appendCredit(nil, 1, 7, 1<<20)[wire.HeaderSize:])
	f.Add(appendCancel(nil, 1, 7, ReasonConsumerCancel)[wire.HeaderSize:])
	f.Add([]byte{0x93, 0xa5, 'e', 'v', 'e', 'n', 't', 0xa1, 'x', 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decodeControl(data)
		if err != nil {
			if !errors.Is(err, errNotOurs) && !errors.Is(err, errMalformed) {
				t.Fatalf("error %v is neither errNotOurs nor errMalformed", err)
			}
			return
		}
		if c.streamID == 0 {
			t.Fatal("accepted stream id 0")
		}
		var again []byte
		switch c.kind {
		case extCredit:
			if c.credit == 0 {
				t.Fatal("accepted a zero credit")
			}
			again = appendCredit(nil, 1, c.streamID, c.credit)
		case extCancel:
			again = appendCancel(nil, 1, c.streamID, c.reason)
		default:
			t.Fatalf("kind %q", c.kind)
		}
		c2, err := decodeControl(again[wire.HeaderSize:])
		if err != nil || c2 != c {
			t.Fatalf("re-encoded %+v decodes as %+v, %v", c, c2, err)
		}
	})
}

// FuzzDecodeCredit: the fast decoder of credit packets accepts only what
// the general decoder accepts, with the same result.
func FuzzDecodeCredit(f *testing.F) {
	for _, n := range []uint32{1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 1 << 20, 1<<32 - 1} {
		f.Add(appendCredit(nil, 1, n, n)[wire.HeaderSize:])
	}
	f.Add([]byte("\x93\xa6credit\x00\x01"))
	f.Add([]byte("\x93\xa6credit\x01\xcf\x00\x00\x00\x00\x00\x00\x00\x01"))
	f.Add([]byte("\x93\xa6credit\x01\xcb\x41\x30\x00\x00\x00\x00\x00\x00"))
	f.Add([]byte("\x93\xa6credit\x01\x02\x03"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, ok := decodeCredit(data)
		if !ok {
			return
		}
		want, err := decodeControlValue(data)
		if err != nil || c != want {
			t.Fatalf("decodeCredit(%x) = %+v; decodeControlValue: %+v, %v", data, c, want, err)
		}
	})
}

// FuzzDecodeEnd: the decoder of STREAM_ERROR and STREAM_CLOSE data never
// panics and reads back what appendEnd writes.
func FuzzDecodeEnd(f *testing.F) {
	f.Add(appendEnd(nil, 1, wire.TypeStreamClose, 1, "generator boom")[wire.HeaderSize:])
	f.Add(appendEnd(nil, 1, wire.TypeStreamError, 4, "consumer-error")[wire.HeaderSize:])
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, typ := range []wire.Type{wire.TypeStreamError, wire.TypeStreamClose} {
			id, text, err := decodeEnd(data, typ)
			if err != nil {
				if !errors.Is(err, errMalformed) {
					t.Fatalf("error %v does not wrap errMalformed", err)
				}
				continue
			}
			if id == 0 {
				t.Fatal("accepted stream id 0")
			}
			again := appendEnd(nil, 1, typ, id, text)
			id2, text2, err := decodeEnd(again[wire.HeaderSize:], typ)
			if err != nil || id2 != id || text2 != text {
				t.Fatalf("round trip of %d %q: %d %q %v", id, text, id2, text2, err)
			}
		}
	})
}

func TestControlVectors(t *testing.T) {
	// Byte for byte, as docs/protocol.md documents them.
	for _, v := range []struct {
		name  string
		frame []byte
		hex   string
	}{
		{"credit", appendCredit(nil, 9, 1, 1<<20), "00000009489" + "3a6637265646974" + "01" + "ce00100000"},
		{"cancel", appendCancel(nil, 10, 2, "consumer-cancel"), "0000000a4893a663616e63656c02af636f6e73756d65722d63616e63656c"},
		{"eos", appendEOS(nil, 6, true, 1, 3), "0000000675c00000000100000003"},
		{"error", appendEnd(nil, 11, wire.TypeStreamError, 1, "boom"), "0000000b4682a873747265616d496401a76d657373616765a4626f6f6d"},
		{"close", appendEnd(nil, 12, wire.TypeStreamClose, 4, "consumer-cancel"), "0000000c4782a873747265616d496404a6726561736f6eaf636f6e73756d65722d63616e63656c"},
	} {
		if got := hexOf(v.frame); got != v.hex {
			t.Errorf("%s: %s, want %s", v.name, got, v.hex)
		}
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
