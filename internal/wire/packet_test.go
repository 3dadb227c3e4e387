package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestDecodeMalformed feeds Decode the malformed frames of capture 2,
// phase 8 (and a few more): each must fail with the right sentinel, which
// wraps ErrMalformed. The peer package closes the connection on them.
func TestDecodeMalformed(t *testing.T) {
	deep := func(n int) []byte { // n nested fixarrays of one element, then nil
		return append(append(AppendHeader(nil, 1, 0x43), bytes.Repeat([]byte{0x91}, n)...), 0xc0)
	}
	tests := []struct {
		name  string
		frame string
		raw   []byte
		want  error
	}{
		{name: "c2 #283 never-used marker c1", frame: "7000003043c1", want: ErrBadMsgpack},
		{name: "c2 #287 random bytes: 2 trailing", frame: "9f13e2c1c107aa55", want: ErrTrailingBytes},
		{name: "c2 #291 truncated array", frame: "700000044392a361", want: ErrTruncated},
		{name: "c2 #295 3-byte frame", frame: "000001", want: ErrTruncated},
		{name: "c2 #299 CALL with 1 trailing byte", frame: "700000054394b063616c63756c61746f7240312e302e30a3616464010200", want: ErrTrailingBytes},
		// "hello" would be type 15 (flags 0x6f), but it is 5 bytes: no room for a value.
		{name: "c2 #303 text frame hello", raw: []byte("hello"), want: ErrTruncated},
		{name: "hello plus a value: type 15", raw: []byte("hello!"), want: ErrUnknownType},
		// {"ty = id 0x7b227479, flags 0x70 (PING), then 'e' (fixint 101) and 27 more bytes.
		{name: "c2 #307 handshake JSON after the handshake", raw: []byte(`{"type":"client-id","id":"again"}`), want: ErrTrailingBytes},
		{name: "c2 #324 STREAM without its trailer", frame: "700000094501", want: ErrTruncated},
		{name: "STREAM with half a trailer", frame: "700000094501000000010000", want: ErrTruncated},
		{name: "STREAM with a trailer and 1 more byte", frame: "70000009450100000001000000000000", want: ErrTrailingBytes},
		{name: "empty frame", frame: "", want: ErrTruncated},
		{name: "header only", frame: "0000000143", want: ErrTruncated},
		{name: "array32 announcing 2^32-1 elements", frame: "0000000143ddffffffff", want: ErrTruncated},
		{name: "map32 announcing 2^32-1 entries", frame: "0000000143dfffffffff", want: ErrTruncated},
		{name: "str32 of 4 GiB", frame: "0000000143dbffffffff61", want: ErrTruncated},
		{name: "bin32 of 4 GiB", frame: "0000000143c6ffffffff", want: ErrTruncated},
		{name: "ext32 of 4 GiB", frame: "0000000143c9ffffffff6e", want: ErrTruncated},
		{name: "array16 announcing more than there is", frame: "0000000143dc00050102", want: ErrTruncated},
		{name: "float64 cut short", frame: "0000000143cb4004", want: ErrTruncated},
		{name: "fixext16 cut short", frame: "0000000143d86e0102", want: ErrTruncated},
		{name: "c1 inside an array", frame: "00000001439201c1", want: ErrBadMsgpack},
		{name: "nesting beyond MaxDepth", raw: deep(MaxDepth + 1), want: ErrTooDeep},
		{name: "nesting far beyond MaxDepth", raw: deep(100000), want: ErrTooDeep},
	}
	for typ := 9; typ <= 15; typ++ {
		tests = append(tests, struct {
			name  string
			frame string
			raw   []byte
			want  error
		}{name: "type " + Type(typ).String(), raw: []byte{0, 0, 0, 1, 0x40 | byte(typ), 0xc0}, want: ErrUnknownType})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := tt.raw
			if frame == nil {
				frame = unhex(t, tt.frame)
			}
			_, err := Decode(frame)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode(%x) = %v, want %v", frame, err, tt.want)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v does not wrap ErrMalformed", err)
			}
			if !strings.HasPrefix(err.Error(), "wire: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestDecodeNestingLimit(t *testing.T) {
	// MaxDepth nested arrays around a leaf are fine; one more is not.
	ok := append(append(AppendHeader(nil, 1, 0x43), bytes.Repeat([]byte{0x91}, MaxDepth)...), 0xc0)
	if _, err := Decode(ok); err != nil {
		t.Errorf("Decode of %d nested arrays: %v", MaxDepth, err)
	}
	var v any
	p, _ := Decode(ok)
	if err := Unmarshal(p.Data, &v); err != nil {
		t.Errorf("Unmarshal of %d nested arrays: %v", MaxDepth, err)
	}
}

func TestTypeExtAccepted(t *testing.T) {
	// TypeExt (8) is ours: Decode accepts it so the peer can route it; the
	// peer only does so when the extensions were negotiated.
	p, err := Decode([]byte{0, 0, 0, 9, 0x48, 0x90})
	if err != nil {
		t.Fatal(err)
	}
	if p.Type() != TypeExt || !p.IsRequest() || p.ID != 9 {
		t.Errorf("got %+v", p)
	}
}

func TestPacketAccessors(t *testing.T) {
	p := Packet{Flags: Flags(TypeStream, true, FlagEOS|FlagLive)}
	if p.Flags != 0x75 {
		t.Fatalf("Flags = %#x, want 0x75", p.Flags)
	}
	if p.Type() != TypeStream || !p.IsRequest() || !p.EOS() || !p.Live() || p.IsError() {
		t.Errorf("accessors wrong for %#x", p.Flags)
	}
	e := Packet{Flags: Flags(TypeCall, false, FlagError)}
	if e.Flags != 0x83 || !e.IsError() || e.IsRequest() {
		t.Errorf("error response flags = %#x", e.Flags)
	}
	// Flags keeps only the low 4 bits of the type, as Titan's setType does.
	if f := Flags(Type(0x34), false, 0); f != 0x04 {
		t.Errorf("Flags(0x34) = %#x", f)
	}
	for typ, want := range map[Type]string{TypePing: "PING", TypeGet: "GET", TypeSet: "SET", TypeCall: "CALL", TypeTask: "TASK",
		TypeStream: "STREAM", TypeStreamError: "STREAM_ERROR", TypeStreamClose: "STREAM_CLOSE", TypeExt: "EXT", 12: "TYPE12"} {
		if got := typ.String(); got != want {
			t.Errorf("Type(%d).String() = %q, want %q", typ, got, want)
		}
	}
}

func TestAppendNilData(t *testing.T) {
	got := (&Packet{ID: 6, Flags: 0x75, StreamID: 1, StreamIndex: 3}).Append(nil)
	if want := unhex(t, "0000000675c00000000100000003"); !bytes.Equal(got, want) {
		diffHex(t, got, want)
	}
}

func TestDecodeAliasesFrame(t *testing.T) {
	frame := unhex(t, "000000020305")
	p, err := Decode(frame)
	if err != nil {
		t.Fatal(err)
	}
	if &p.Data[0] != &frame[5] || cap(p.Data) != 1 {
		t.Error("Data should alias the frame, capped at its length")
	}
}

func TestSkipValue(t *testing.T) {
	tests := []struct {
		hex  string
		want int
	}{
		{"c0", 1}, {"05", 1}, {"ff", 1}, {"cd04d2", 3}, {"cb4004000000000000", 9},
		{"a3616263", 4}, {"d903616263", 5}, {"c403010203", 5},
		{"92c3c0", 3}, {"82a16900a2737100", 8}, {"d40000", 3}, {"c70e6ba1310101a974732d636c69656e74", 17},
		{"dc0002c0c0", 5}, {"de0001a16101", 6}, {"0506", 1},
	}
	for _, tt := range tests {
		n, err := SkipValue(unhex(t, tt.hex))
		if err != nil || n != tt.want {
			t.Errorf("SkipValue(%s) = %d, %v; want %d", tt.hex, n, err, tt.want)
		}
	}
	b := unhex(t, "9382a16900a27371009100d40000")
	if n := testing.AllocsPerRun(100, func() { _, _ = SkipValue(b) }); n != 0 {
		t.Errorf("SkipValue makes %v allocations", n)
	}
}
