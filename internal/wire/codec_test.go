package wire

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// TestMsgpackV5Defaults pins what msgpack v5 does on its own, which is
// why DecodeArg exists: it rejects every float for an integer and silently
// truncates integers that do not fit.
func TestMsgpackV5Defaults(t *testing.T) {
	var i int64
	if err := msgpack.Unmarshal(unhex(t, "cb41f0000000000000"), &i); err == nil {
		t.Error("msgpack v5 now accepts a float64 for an int64; DecodeArg's doc needs an update")
	}
	var i8 int8
	if err := msgpack.Unmarshal(unhex(t, "cd012c"), &i8); err != nil || i8 != 44 {
		t.Errorf("msgpack v5 decodes 300 into int8 as %d, %v; DecodeArg's doc says it truncates to 44", i8, err)
	}
	var u uint32
	if err := msgpack.Unmarshal(unhex(t, "f9"), &u); err != nil || u != math.MaxUint32-6 {
		t.Errorf("msgpack v5 decodes -7 into uint32 as %d, %v", u, err)
	}
	var f32 float32
	if err := msgpack.Unmarshal(unhex(t, "cb4004000000000000"), &f32); err == nil {
		t.Error("msgpack v5 now decodes a float64 into a float32")
	}
}

func TestUnmarshalArgNumbers(t *testing.T) {
	type result struct {
		v   any
		err error
	}
	tests := []struct {
		hex  string
		into any // pointer to the target type
		want any // value, or an error sentinel
	}{
		// Exact-integer floats, as JS sends them.
		{"cb41f0000000000000", new(int64), int64(1 << 32)},
		{"cb41f0000000000000", new(uint64), uint64(1 << 32)},
		{"cb41f0000000000000", new(int), 1 << 32},
		{"cb41f0000000000000", new(int32), ErrType},
		{"cb41f0000000000000", new(uint32), ErrType},
		{"cb41efffffffe00000", new(uint32), uint32(math.MaxUint32)},
		{"cbc1e0000000000000", new(int32), int32(math.MinInt32)},
		{"cb8000000000000000", new(int), 0}, // -0.0
		{"ca40a00000", new(int8), int8(5)},  // float32 5
		{"cb4004000000000000", new(int), ErrType},
		{"cb4004000000000000", new(uint8), ErrType},
		{"cb7ff8000000000000", new(int64), ErrType}, // NaN
		{"cb7ff0000000000000", new(int64), ErrType}, // +Inf
		{"cbfff0000000000000", new(uint64), ErrType},
		{"cb43e0000000000000", new(int64), ErrType},               // 2^63
		{"cbc3e0000000000000", new(int64), int64(math.MinInt64)},  // -2^63
		{"cb43f0000000000000", new(uint64), ErrType},              // 2^64
		{"cb43efffffffffffff", new(uint64), uint64(1<<64 - 2048)}, // largest float64 below 2^64
		{"cbbff0000000000000", new(uint), ErrType},                // -1.0
		{"cb4059000000000000", new(float32), float32(100)},
		{"cb47efffffe0000000", new(float32), float32(math.MaxFloat32)},
		{"cb7fefffffffffffff", new(float32), ErrType}, // MaxFloat64
		// Integers: range checked.
		{"cd012c", new(int8), ErrType},
		{"cd012c", new(int16), int16(300)},
		{"7f", new(int8), int8(127)},
		{"cc80", new(int8), ErrType},
		{"d080", new(int8), int8(-128)},
		{"f9", new(uint32), ErrType},
		{"f9", new(int), -7},
		{"cefffffff9", new(uint32), uint32(4294967289)},
		{"cefffffff9", new(int32), ErrType},
		{"cfffffffffffffffff", new(int64), ErrType},
		{"cfffffffffffffffff", new(uint64), uint64(math.MaxUint64)},
		{"d3ffffffffffffffff", new(uint64), ErrType},
		{"d38000000000000000", new(int64), int64(math.MinInt64)},
		{"05", new(float64), float64(5)},
		{"cfffffffffffffffff", new(float64), float64(math.MaxUint64)},
		{"05", new(uintptr), uintptr(5)},
		{"05", new(time.Duration), time.Duration(5)},
		// Not a number.
		{"a135", new(int), ErrType},
		{"c3", new(int), ErrType},
		{"90", new(float64), ErrType},
		{"d47e00", new(int), ErrType},
		// nil and undefined: zero.
		{"c0", new(int), 0},
		{"d40000", new(int), 0},
		{"d40000", new(float64), float64(0)},
		{"d40000", new(string), ""},
		{"d40000", new(bool), false},
	}
	for _, tt := range tests {
		v := reflect.ValueOf(tt.into).Elem()
		v.Set(reflect.ValueOf(tt.into).Elem()) // zero
		err := UnmarshalArg(unhex(t, tt.hex), v)
		got := result{v.Interface(), err}
		if want, ok := tt.want.(error); ok {
			if !errors.Is(err, want) || !errors.Is(err, ErrMalformed) {
				t.Errorf("%s into %s = %v, %v; want error %v", tt.hex, v.Type(), got.v, err, want)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got.v, tt.want) {
			t.Errorf("%s into %s = %#v, %v; want %#v", tt.hex, v.Type(), got.v, err, tt.want)
		}
	}
}

type point struct {
	X int64   `msgpack:"x"`
	Y float64 `json:"y"`
	Z string  // no tag: the field name
}

func TestUnmarshalArgComposite(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		into any
		want any
	}{
		{"[]int64 from floats and ints", "93cb41f000000000000001f9", new([]int64), []int64{1 << 32, 1, -7}},
		{"[]int with an undefined element", "9201d40000", new([]int), []int{1, 0}},
		{"[]any keeps undefined elements", "9201d40000", new([]any), []any{int64(1), Undefined{}}},
		{"map[string]int from a JS object", "82a161cb4000000000000000a16203", new(map[string]int), map[string]int{"a": 2, "b": 3}},
		{"map[string]any with an integer key", "8101a178", new(map[string]any), map[string]any{"1": "x"}},
		{"map[int]string", "8101a178", new(map[int]string), map[int]string{1: "x"}},
		{"*int from a float", "cb4014000000000000", new(*int), ptr(5)},
		{"*int from nil", "c0", new(*int), (*int)(nil)},
		{"*int from undefined", "d40000", new(*int), (*int)(nil)},
		{"struct by tags (msgpack, json, name)", "83a17801a179cb3ff8000000000000a15aa17a", new(point), point{X: 1, Y: 1.5, Z: "z"}},
		{"*Definition from undefined", "d40000", new(*Definition), (*Definition)(nil)},
		{"Undefined from undefined", "d40000", new(Undefined), Undefined{}},
		{"*Undefined from undefined", "d40000", new(*Undefined), &Undefined{}},
		{"any from undefined: nil", "d40000", new(any), nil},
		{"any from an array", "9201a161", new(any), []any{int64(1), "a"}},
		{"any from uint64 max", "cfffffffffffffffff", new(any), uint64(math.MaxUint64)},
		{"any from float32", "ca3fc00000", new(any), 1.5},
		{"any from bin", "c4020102", new(any), []byte{1, 2}},
		{"[]byte from bin", "c4020102", new([]byte), []byte{1, 2}},
		{"[]byte from str", "a26869", new([]byte), []byte("hi")},
		{"string from bin", "c4026869", new(string), "hi"},
		{"time.Time from msgpack's timestamp", "d6ff00000001", new(time.Time), time.Unix(1, 0)},
		{"error interface from a string", "a3626164", new(error), errors.New("bad")},
		{"[2]int array", "920102", new([2]int), [2]int{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := reflect.ValueOf(tt.into).Elem()
			if err := UnmarshalArg(unhex(t, tt.hex), v); err != nil {
				t.Fatalf("UnmarshalArg: %v", err)
			}
			got := v.Interface()
			if tm, ok := got.(time.Time); ok {
				if !tm.Equal(tt.want.(time.Time)) {
					t.Errorf("got %v, want %v", tm, tt.want)
				}
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestUnmarshalArgErrors(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		into any
		want error
	}{
		{"trailing byte", "0505", new(int), ErrTrailingBytes},
		{"empty", "", new(int), ErrTruncated},
		{"string for []int", "a161", new([]int), ErrType},
		{"array for map", "90", new(map[string]int), ErrType},
		{"map for string", "80", new(string), ErrType},
		{"int for bool", "01", new(bool), ErrType},
		{"2.5 in []int", "92cb400400000000000001", new([]int), ErrType},
		{"struct field of the wrong type", "81a178a161", new(point), ErrType},
		{"bool map key", "81c301", new(map[string]int), ErrType},
		{"float map key", "81cb3ff000000000000001", new(map[string]any), ErrType},
		{"TitanError for a Definition", "d46e00", new(Definition), ErrMalformed},
		{"too deep", repeatHex("91", MaxDepth+1) + "c0", new(any), ErrTooDeep},
		{"c1", "c1", new(any), ErrBadMsgpack},
	}
	for _, tt := range tests {
		v := reflect.ValueOf(tt.into).Elem()
		err := UnmarshalArg(unhex(t, tt.hex), v)
		if !errors.Is(err, tt.want) || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
		if err := Unmarshal(unhex(t, tt.hex), tt.into); !errors.Is(err, tt.want) {
			t.Errorf("%s with Unmarshal: %v, want %v", tt.name, err, tt.want)
		}
	}
	if err := UnmarshalArg([]byte{5}, reflect.ValueOf(5)); err == nil {
		t.Error("UnmarshalArg into an unsettable value succeeded")
	}
	if err := Unmarshal([]byte{5}, 5); err == nil {
		t.Error("Unmarshal into a non-pointer succeeded")
	}
	if err := Unmarshal([]byte{5}, (*int)(nil)); err == nil {
		t.Error("Unmarshal into a nil pointer succeeded")
	}
}

// TestDispatcherFlow decodes a CALL the way the RPC dispatcher does:
// array header, defId, method, then each argument with DecodeArg.
func TestDispatcherFlow(t *testing.T) {
	p, err := Decode(unhex(t, "000000044394d92430316132316166642d663061372d376462352d386533372d653662313264646632356665a3616464cb41f0000000000000f9"))
	if err != nil {
		t.Fatal(err)
	}
	dec := NewDecoder(p.Data)
	defer ReleaseDecoder(dec)
	n, err := dec.DecodeArrayLen()
	if err != nil || n != 4 {
		t.Fatalf("array len %d, %v", n, err)
	}
	defID, err := dec.DecodeString()
	if err != nil || defID != calcDefID {
		t.Fatalf("defId %q, %v", defID, err)
	}
	method, err := dec.DecodeString()
	if err != nil || method != "add" {
		t.Fatalf("method %q, %v", method, err)
	}
	var a, b int64
	for i, dst := range []*int64{&a, &b} {
		if err := DecodeArg(dec, reflect.ValueOf(dst).Elem()); err != nil {
			t.Fatalf("arg %d: %v", i, err)
		}
	}
	if a != 1<<32 || b != -7 {
		t.Errorf("args = %d, %d", a, b)
	}
	if r := Remaining(dec); r != 0 {
		t.Errorf("Remaining = %d", r)
	}
	if err := DecodeArg(dec, reflect.ValueOf(&a).Elem()); !errors.Is(err, ErrTruncated) {
		t.Errorf("DecodeArg past the end: %v", err)
	}
	if err := DecodeArg(dec, reflect.ValueOf(a)); err == nil {
		t.Error("DecodeArg into an unsettable value succeeded")
	}
}

// TestDecodeArgChecksFirst: DecodeArg on a decoder from NewDecoder checks
// the next value before msgpack v5 sees it (v5 would preallocate 2^32
// elements for dd ff ff ff ff).
func TestDecodeArgChecksFirst(t *testing.T) {
	for _, h := range []string{"ddffffffff", "dfffffffff", repeatHex("91", 10000) + "c0", "92c1c1"} {
		dec := NewDecoder(unhex(t, h))
		var v any
		err := DecodeArg(dec, reflect.ValueOf(&v).Elem())
		ReleaseDecoder(dec)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%.20s…: %v", h, err)
		}
	}
}

// TestDecodeArgForeignDecoder: DecodeArg also works on a plain msgpack v5
// decoder (the caller checked the bytes), including undefined.
func TestDecodeArgForeignDecoder(t *testing.T) {
	data := unhex(t, "94d40000cb4014000000000000"+x(ExtReference, "a161")+"d40000")
	dec := msgpack.NewDecoder(bytes.NewReader(data))
	if n, err := dec.DecodeArrayLen(); err != nil || n != 4 {
		t.Fatal(n, err)
	}
	var s string
	var i int
	var r Reference
	var u any
	for _, dst := range []any{&s, &i, &r, &u} {
		if err := DecodeArg(dec, reflect.ValueOf(dst).Elem()); err != nil {
			t.Fatalf("%T: %v", dst, err)
		}
	}
	if s != "" || i != 5 || r.DefID != "a" || u != nil {
		t.Errorf("got %q %d %+v %#v", s, i, r, u)
	}
	if Remaining(dec) != -1 {
		t.Error("Remaining of a foreign decoder should be -1")
	}
	ReleaseDecoder(dec) // ignored
}

func TestMarshalSettings(t *testing.T) {
	type tagged struct {
		A int    `msgpack:"a"`
		B string `json:"b,omitempty"`
		C []byte `json:"c"`
		D bool   `json:"-"`
	}
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"int64 is compact", int64(5), "05"},
		{"uint64 is compact", uint64(300), "cd012c"},
		{"int32 negative is compact", int32(-7), "f9"},
		{"float64 stays float64", 2.0, "cb4000000000000000"},
		{"float32 stays float32", float32(1.5), "ca3fc00000"},
		{"map keys sorted", map[string]any{"b": 1, "a": 2, "c": 3}, "83a16102a16201a16303"},
		{"struct by msgpack, then json tags", tagged{A: 1, C: []byte{7}, D: true}, "82a16101a163c40107"},
		{"[]byte is bin", []byte("hi"), "c4026869"},
		{"nil", nil, "c0"},
	}
	for _, tt := range tests {
		b, err := Marshal(tt.v)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if want := unhex(t, tt.want); !bytes.Equal(b, want) {
			t.Errorf("%s:", tt.name)
			diffHex(t, b, want)
		}
	}
	if _, err := Marshal(make(chan int)); err == nil {
		t.Error("Marshal of a channel succeeded")
	}
	if dst, err := AppendMarshal([]byte{1}, func() {}); err == nil || !bytes.Equal(dst, []byte{1}) {
		t.Errorf("AppendMarshal of a func = %x, %v", dst, err)
	}
}

// TestAppendMarshalAllocs: encoding a CALL into a reused buffer allocates
// nothing.
func TestAppendMarshalAllocs(t *testing.T) {
	var args any = []any{calcDefID, "add", 2, 3} // boxed once, by the caller
	buf := make([]byte, 0, 128)
	allocs := testing.AllocsPerRun(1000, func() {
		var err error
		buf = AppendHeader(buf[:0], 2, 0x43)
		if buf, err = AppendMarshal(buf, args); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("AppendMarshal of a CALL: %v allocations", allocs)
	}
}

// TestConcurrentUse exercises the pools from many goroutines (run with -race).
func TestConcurrentUse(t *testing.T) {
	values := extValues()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				x := values[(g+i)%len(values)]
				b, err := Marshal(x)
				if err != nil {
					t.Error(err)
					return
				}
				var got any
				if err := Unmarshal(b, &got); err != nil {
					t.Error(err)
					return
				}
				if !reflect.DeepEqual(got, x) {
					t.Errorf("got %#v, want %#v", got, x)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestFastPathMatchesMsgpack: the types AppendMarshal writes itself come out
// exactly as msgpack v5 writes them with the same settings.
func TestFastPathMatchesMsgpack(t *testing.T) {
	str := func(n int) string { return strings.Repeat("s", n) }
	bin := func(n int) []byte { return bytes.Repeat([]byte{1}, n) }
	values := []any{
		nil, true, false,
		0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64,
		-1, -32, -33, -128, -129, math.MinInt16, math.MinInt16 - 1, math.MinInt32, math.MinInt32 - 1, math.MinInt64,
		int8(-5), int16(300), int32(-70000), int64(1 << 40), uint(7), uint8(200), uint16(60000), uint32(1 << 31), uint64(math.MaxUint64),
		1.5, math.Inf(-1), float32(2.25),
		"", str(31), str(32), str(255), str(256), str(65535), str(65536),
		[]byte{}, []byte(nil), bin(255), bin(256), bin(65536),
		[]any{}, []any(nil), []any{1, "a", []any{nil}}, make([]any, 16), make([]any, 65536),
		[]string{"a", "b"}, []string(nil),
		map[string]any{}, map[string]any(nil), map[string]any{"z": 1, "a": map[string]any{"y": 2, "b": nil}},
		map[string]string{"b": "1", "a": "2"}, map[string]string(nil),
		manyKeys(20), manyKeys(70000),
		[]any{Undefined{}, &Reference{DefID: "x"}, time.Unix(0, 0).UTC()},
	}
	ref := msgpack.NewEncoder(nil)
	for i, v := range values {
		var want bytes.Buffer
		ref.Reset(&want)
		ref.UseCompactInts(true)
		ref.SetSortMapKeys(true)
		ref.SetCustomStructTag("json")
		if err := ref.Encode(v); err != nil {
			t.Fatalf("msgpack %d (%T): %v", i, v, err)
		}
		got, err := Marshal(v)
		if err != nil {
			t.Fatalf("Marshal %d (%T): %v", i, v, err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("value %d (%T):", i, v)
			diffHex(t, got[:min(len(got), 64)], want.Bytes()[:min(want.Len(), 64)])
		}
	}
}

func manyKeys(n int) map[string]any {
	m := make(map[string]any, n)
	for i := range n {
		m[strconv.Itoa(i)] = i
	}
	return m
}
