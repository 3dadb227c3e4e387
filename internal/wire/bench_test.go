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

// decodeBenchValue is a record as a JavaScript client sends it.
var decodeBenchValue = map[string]any{
	"id": 12345, "name": "widget", "price": 9.99, "tags": []any{"a", "b", "c"},
	"dims": map[string]any{"w": 10, "h": 20}, "ok": true,
}

type decodeBenchRecord struct {
	ID    int64          `json:"id"`
	Name  string         `json:"name"`
	Price float64        `json:"price"`
	Tags  []string       `json:"tags"`
	Dims  map[string]int `json:"dims"`
	OK    bool           `json:"ok"`
}

// BenchmarkDecodeArgTypes decodes one argument into the types methods
// take: what the decode budget's bookkeeping costs shows here.
func BenchmarkDecodeArgTypes(b *testing.B) {
	ints := make([]int, 1000)
	for i := range ints {
		ints[i] = i * 7
	}
	cases := []struct {
		name string
		v    any
		typ  reflect.Type
	}{
		{"int", 42, reflect.TypeFor[int]()},
		{"string", "hello, world", reflect.TypeFor[string]()},
		{"record/any", decodeBenchValue, reflect.TypeFor[any]()},
		{"record/map", decodeBenchValue, reflect.TypeFor[map[string]any]()},
		{"record/struct", decodeBenchValue, reflect.TypeFor[decodeBenchRecord]()},
		{"1000 ints/[]int", ints, reflect.TypeFor[[]int]()},
		{"1000 ints/any", ints, reflect.TypeFor[any]()},
	}
	for _, c := range cases {
		data, err := Marshal(c.v)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				v := reflect.New(c.typ).Elem()
				dec := NewDecoder(data)
				if err := DecodeArg(dec, v); err != nil {
					b.Fatal(err)
				}
				ReleaseDecoder(dec)
			}
		})
	}
}
