package wire

import (
	"reflect"
	"testing"
)

// callFrame is c1 #4: CALL [defId, "add", 2, 3].
var callFrame = []byte("\x00\x00\x00\x02\x43\x94\xd9\x24" + calcDefID + "\xa3add\x02\x03")

func BenchmarkDecode(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(callFrame)))
	for b.Loop() {
		if _, err := Decode(callFrame); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeCallArgs decodes a CALL the way the dispatcher does:
// Decode, then array header, defId, method and two int arguments.
func BenchmarkDecodeCallArgs(b *testing.B) {
	b.ReportAllocs()
	var x, y int
	xv, yv := reflect.ValueOf(&x).Elem(), reflect.ValueOf(&y).Elem()
	for b.Loop() {
		p, err := Decode(callFrame)
		if err != nil {
			b.Fatal(err)
		}
		dec := NewDecoder(p.Data)
		if _, err := dec.DecodeArrayLen(); err != nil {
			b.Fatal(err)
		}
		if _, err := dec.DecodeString(); err != nil {
			b.Fatal(err)
		}
		if _, err := dec.DecodeString(); err != nil {
			b.Fatal(err)
		}
		if err := DecodeArg(dec, xv); err != nil {
			b.Fatal(err)
		}
		if err := DecodeArg(dec, yv); err != nil {
			b.Fatal(err)
		}
		ReleaseDecoder(dec)
	}
}

// BenchmarkMarshalCall encodes a CALL frame into a reused buffer.
func BenchmarkMarshalCall(b *testing.B) {
	b.ReportAllocs()
	var args any = []any{calcDefID, "add", 2, 3}
	buf := make([]byte, 0, 128)
	for b.Loop() {
		var err error
		buf = AppendHeader(buf[:0], 2, 0x43)
		if buf, err = AppendMarshal(buf, args); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkMarshalCallNew encodes the CALL data into a new slice.
func BenchmarkMarshalCallNew(b *testing.B) {
	b.ReportAllocs()
	var args any = []any{calcDefID, "add", 2, 3}
	for b.Loop() {
		if _, err := Marshal(args); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalDefinition(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, 512)
	var def any = &calcDef
	for b.Loop() {
		var err error
		if buf, err = AppendMarshal(buf[:0], def); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalDefinition(b *testing.B) {
	data, err := Marshal(calcDef)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var d Definition
		if err := Unmarshal(data, &d); err != nil {
			b.Fatal(err)
		}
	}
}
