package wire

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Seed corpora are checked in under testdata/fuzz/<FuzzName>/ (frames and
// values from the captures); the f.Add calls below add the vectors of
// vectors_test.go.

// FuzzDecode: Decode never panics, and whatever it accepts it rebuilds
// byte for byte with Append.
func FuzzDecode(f *testing.F) {
	for _, v := range vectors(f) {
		f.Add(v.frame)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		p, err := Decode(frame)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if got := p.Append(nil); !bytes.Equal(got, frame) {
			t.Fatalf("Append(Decode(%x)) = %x", frame, got)
		}
		if n, err := SkipValue(p.Data); err != nil || n != len(p.Data) {
			t.Fatalf("Data %x is not one value: %d, %v", p.Data, n, err)
		}
	})
}

// FuzzSkipValue: SkipValue never panics, never reads past its input, and
// agrees with msgpack v5 on every value it accepts.
func FuzzSkipValue(f *testing.F) {
	for _, v := range vectors(f) {
		f.Add(v.frame[HeaderSize:])
	}
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := SkipValue(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("SkipValue(%x) = %d", b, n)
		}
		if m, err := SkipValue(b[:n]); err != nil || m != n {
			t.Fatalf("SkipValue of its own prefix = %d, %v; want %d", m, err, n)
		}
		dec := msgpack.NewDecoder(bytes.NewReader(b[:n]))
		if err := dec.Skip(); err != nil {
			t.Fatalf("msgpack v5 rejects %x, which SkipValue accepts: %v", b[:n], err)
		}
	})
}

// FuzzUnmarshalAny decodes arbitrary bytes into an empty interface, which
// runs every extension decoder. It never panics; what it accepts it encodes
// again, and that encoding is stable: decoding and encoding it once more
// gives the same bytes.
func FuzzUnmarshalAny(f *testing.F) {
	for _, v := range vectors(f) {
		f.Add(v.frame[HeaderSize:])
	}
	for _, x := range extValues() {
		b, err := Marshal(x)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	full := fuzzTarget{
		A: -1, B: []string{"x"}, C: map[string]float32{"c": 1.5}, D: &calcDef, E: [2]int8{1, -1},
		F: time.Unix(1, 2), G: []byte{1}, H: []any{Undefined{}}, I: &fuzzTarget{N: 7}, J: map[int]bool{3: true},
		L: StreamReference{StreamID: "1"}, M: []*JSError{{Name: "E"}, nil}, N: 200,
	}
	if b, err := Marshal(full); err == nil {
		f.Add(b)
	} else {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		if err := Unmarshal(data, &v); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		b1, err := Marshal(v)
		if err != nil {
			t.Fatalf("Marshal(%#v) of a decoded value: %v", v, err)
		}
		var v2 any
		if err := Unmarshal(b1, &v2); err != nil {
			t.Fatalf("Unmarshal(%x) of our own encoding of %#v: %v", b1, v, err)
		}
		b2, err := Marshal(v2)
		if err != nil {
			t.Fatalf("Marshal(%#v): %v", v2, err)
		}
		if !bytes.Equal(b1, b2) {
			t.Fatalf("encoding not stable:\n%x\n%x", b1, b2)
		}
		// Typed targets must not panic either.
		var def Definition
		_ = Unmarshal(data, &def)
		var e TitanError
		_ = Unmarshal(data, &e)
		var typed fuzzTarget
		_ = Unmarshal(data, &typed)
		var list []fuzzTarget
		_ = Unmarshal(data, &list)
		var m map[string]fuzzTarget
		_ = Unmarshal(data, &m)
	})
}

// fuzzTarget has a field of most kinds msgpack v5 decodes on its own.
type fuzzTarget struct {
	A int                `msgpack:"a"`
	B []string           `msgpack:"b"`
	C map[string]float32 `msgpack:"c"`
	D *Definition        `msgpack:"d"`
	E [2]int8            `msgpack:"e"`
	F time.Time          `msgpack:"f"`
	G []byte             `msgpack:"g"`
	H any                `msgpack:"h"`
	I *fuzzTarget        `msgpack:"i"`
	J map[int]bool       `msgpack:"j"`
	K error              `msgpack:"k"`
	L StreamReference    `msgpack:"l"`
	M []*JSError         `msgpack:"m"`
	N uint8              `msgpack:"n"`
}

// FuzzUnmarshalArg decodes arbitrary bytes into an int64 argument: it
// never panics, and what it accepts is exactly the number the bytes hold.
func FuzzUnmarshalArg(f *testing.F) {
	for _, h := range []string{"05", "f9", "cd04d2", "cefffffff9", "cb41f0000000000000", "cb4004000000000000",
		"cb7ff8000000000000", "cfffffffffffffffff", "d38000000000000000", "ca40a00000", "d40000", "c0", "a135"} {
		f.Add(unhex(f, h))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var n int64
		err := UnmarshalArg(data, reflect.ValueOf(&n).Elem())
		var v any
		errAny := Unmarshal(data, &v)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			// Accepted as any, rejected as int64: it must not be an
			// integer that fits, nor an integral float that fits.
			switch x := v.(type) {
			case int64:
				t.Fatalf("int64 %d rejected: %v", x, err)
			case float64:
				if errAny == nil && x == math.Trunc(x) && x >= -(1<<63) && x < 1<<63 {
					t.Fatalf("float %v rejected: %v", x, err)
				}
			}
			return
		}
		if errAny != nil {
			t.Fatalf("int64 %d accepted, but as any: %v", n, errAny)
		}
		switch x := v.(type) {
		case int64:
			if x != n {
				t.Fatalf("decoded %d, want %d", n, x)
			}
		case float64:
			if float64(n) != x {
				t.Fatalf("decoded %d from float %v", n, x)
			}
		case nil, Undefined:
			if n != 0 {
				t.Fatalf("decoded %d from %#v", n, x)
			}
		default:
			t.Fatalf("decoded %d from %#v", n, x)
		}
	})
}
