package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// allocated runs f and returns the bytes the heap allocated meanwhile.
// Only the calling goroutine runs in the tests that use it.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// measureDecode decodes data into a new value of type t through a
// decoder of this package and returns the error, the bytes allocated (the
// target itself made before) and the bytes charged. It decodes three
// times and keeps the least allocation: the fuzzing engine's own
// goroutines allocate now and then.
func measureDecode(t reflect.Type, data []byte) (err error, alloc uint64, charged int64) {
	alloc = math.MaxUint64
	for range 3 {
		v := reflect.New(t).Elem()
		dec := NewDecoder(data) // warm: the pool has a decoder afterwards
		ReleaseDecoder(dec)
		dec = NewDecoder(data)
		a := allocated(func() { err = DecodeArg(dec, v) })
		charged = Charged(dec)
		ReleaseDecoder(dec)
		runtime.KeepAlive(v)
		alloc = min(alloc, a)
		if len(data) > 1<<20 {
			break // the large cases run alone in their test
		}
	}
	return err, alloc, charged
}

// nilArray is an array32 of n nils.
func nilArray(n int) []byte {
	b := make([]byte, 5, 5+n)
	b[0] = 0xdd
	binary.BigEndian.PutUint32(b[1:], uint32(n))
	return append(b, bytes.Repeat([]byte{0xc0}, n)...)
}

type withSlices struct {
	A []int   `msgpack:"a"`
	B []any   `msgpack:"b"`
	C []int64 `msgpack:"c"`
}

// TestBudgetNilBomb: 16 MiB of nils in one array, decoded into the types
// a method may take. Decoding allocates at most the budget of the bytes,
// and refuses with ErrBudget what would need more, before allocating it.
func TestBudgetNilBomb(t *testing.T) {
	const n = 16<<20 - 64
	arr := nilArray(n)
	inMap := append([]byte{0x81, 0xa1, 'a'}, arr...) // {"a": [nil × n]}
	inMapB := append([]byte{0x81, 0xa1, 'b'}, arr...)
	tests := []struct {
		name string
		typ  reflect.Type
		data []byte
		want error // nil: decoded
	}{
		{"any", reflect.TypeFor[any](), arr, ErrBudget},
		{"[]any", reflect.TypeFor[[]any](), arr, ErrBudget},
		{"map[string]any", reflect.TypeFor[map[string]any](), arr, ErrType},
		{"[]int", reflect.TypeFor[[]int](), arr, nil}, // 8 bytes per element: within 8 × the bytes
		{"[][]int", reflect.TypeFor[[][]int](), arr, ErrBudget},
		{"struct with slices, as an array", reflect.TypeFor[withSlices](), arr, ErrType},
		{"struct with slices, []int field", reflect.TypeFor[withSlices](), inMap, nil},
		{"struct with slices, []any field", reflect.TypeFor[withSlices](), inMapB, ErrBudget},
		{"*struct with slices", reflect.TypeFor[*withSlices](), inMapB, ErrBudget},
		{"[]withSlices", reflect.TypeFor[[]withSlices](), arr, ErrBudget},
		{"map[string][]any", reflect.TypeFor[map[string][]any](), inMap, ErrBudget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err, alloc, charged := measureDecode(tt.typ, tt.data)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("decode: %v", err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("decode: %v, want %v", err, tt.want)
			}
			if bound := uint64(Budget(len(tt.data))); alloc > bound {
				t.Errorf("allocated %d bytes, more than the budget of %d", alloc, bound)
			}
			if err == nil && alloc > uint64(charged)+4<<10 {
				t.Errorf("allocated %d bytes, charged %d: the cost model is not an upper bound", alloc, charged)
			}
			t.Logf("%d bytes of msgpack: allocated %d (%.2f×), charged %d, err %v", len(tt.data), alloc, float64(alloc)/float64(len(tt.data)), charged, err)
		})
	}
}

// TestBudgetMessage: the refusal says what did not fit and why.
func TestBudgetMessage(t *testing.T) {
	var v []any
	err := Unmarshal(nilArray(100000), &v)
	if !errors.Is(err, ErrBudget) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrBudget wrapping ErrMalformed", err)
	}
	for _, want := range []string{"100000-element []interface {}", "needs 1608192 bytes", "8 × the 100005 bytes of msgpack + 65536"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
}

// costCases are values whose allocation the cost model must bound: maps
// and slices of many sizes, strings, boxes, pointers, structs.
func costCases(t testing.TB) []struct {
	typ  reflect.Type
	data []byte
} {
	t.Helper()
	var out []struct {
		typ  reflect.Type
		data []byte
	}
	add := func(typ reflect.Type, v any) {
		b, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, struct {
			typ  reflect.Type
			data []byte
		}{typ, b})
	}
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 100, 1000, 1023, 1024, 1025, 5000, 20000} {
		m := make(map[string]any, n)
		ms := make(map[string]string, n)
		mi := make(map[int]int, n)
		a := make([]any, n)
		ai := make([]int, n)
		objs := make([]any, n)
		for i := range n {
			k := fmt.Sprint(i)
			m[k] = i * 1000
			ms[k] = k
			mi[i] = -i
			a[i] = -i
			ai[i] = i
			objs[i] = map[string]any{"id": i}
		}
		add(reflect.TypeFor[any](), m)
		add(reflect.TypeFor[map[string]any](), m)
		add(reflect.TypeFor[map[string]string](), ms)
		add(reflect.TypeFor[map[int]int](), mi)
		add(reflect.TypeFor[map[string]*int](), m)
		add(reflect.TypeFor[any](), a)
		add(reflect.TypeFor[[]int](), ai)
		add(reflect.TypeFor[[]*int](), ai)
		add(reflect.TypeFor[[]string](), slices.Sorted(maps.Keys(ms)))
		add(reflect.TypeFor[any](), objs)
		add(reflect.TypeFor[[]withSlices](), objs)
		add(reflect.TypeFor[map[string][200]byte](), map[string]any{"x": nil})
		add(reflect.TypeFor[withSlices](), m) // unknown keys
	}
	for _, n := range []int{0, 1, 15, 16, 33, 1000, 40000} {
		s := strings.Repeat("x", n)
		add(reflect.TypeFor[any](), s)
		add(reflect.TypeFor[string](), s)
		add(reflect.TypeFor[[]byte](), []byte(s))
		add(reflect.TypeFor[any](), []byte(s))
		add(reflect.TypeFor[any](), []any{s, s, 1.5, -7, uint64(1 << 63)})
	}
	add(reflect.TypeFor[withSlices](), map[string]any{"a": []int{1, 2, 3}, "b": []any{"x", map[string]any{"y": 1}}, "c": nil, "zz": []any{1, 2}})
	add(reflect.TypeFor[any](), calcDef)
	add(reflect.TypeFor[Definition](), calcDef)
	add(reflect.TypeFor[any](), TitanError{Name: "E", Code: 500, Details: map[string]any{"a": 1}, Cause: "x"})
	return out
}

// TestBudgetCostModel: what decoding allocates never exceeds what it
// charged (the charge is an upper bound: the budget holds because of it).
func TestBudgetCostModel(t *testing.T) {
	for _, c := range costCases(t) {
		err, alloc, charged := measureDecode(c.typ, c.data)
		switch {
		case errors.Is(err, ErrBudget):
			// Many small maps: more than the budget (see BudgetFactor).
			if bound := uint64(Budget(len(c.data))); alloc > bound {
				t.Errorf("%s from %d bytes: refused, but allocated %d, more than the budget of %d", c.typ, len(c.data), alloc, bound)
			}
		case err != nil:
			t.Errorf("%s from %d bytes: %v", c.typ, len(c.data), err)
		case alloc > uint64(charged)+4<<10:
			t.Errorf("%s from %d bytes: allocated %d, charged only %d", c.typ, len(c.data), alloc, charged)
		}
	}
}

// budgetTypes are the targets FuzzDecodeBudget decodes into.
var budgetTypes = []reflect.Type{
	reflect.TypeFor[any](),
	reflect.TypeFor[[]any](),
	reflect.TypeFor[map[string]any](),
	reflect.TypeFor[[]int](),
	reflect.TypeFor[withSlices](),
	reflect.TypeFor[*withSlices](),
	reflect.TypeFor[[]withSlices](),
	reflect.TypeFor[map[string][]int8](),
	reflect.TypeFor[[][]string](),
	reflect.TypeFor[map[int]*[64]int](),
	reflect.TypeFor[[]map[string]string](),
	reflect.TypeFor[Definition](),
	reflect.TypeFor[TitanError](),
	reflect.TypeFor[[4][]byte](),
}

// FuzzDecodeBudget: whatever the bytes and the target type, decoding
// allocates at most the budget of the bytes.
func FuzzDecodeBudget(f *testing.F) {
	for _, c := range costCases(f) {
		for i, typ := range budgetTypes {
			if typ == c.typ {
				f.Add(byte(i), c.data)
			}
		}
	}
	for _, v := range vectors(f) {
		f.Add(byte(0), v.frame[HeaderSize:])
	}
	f.Add(byte(0), nilArray(1000))
	f.Add(byte(4), append([]byte{0x81, 0xa1, 'b'}, nilArray(1000)...))
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		if _, err := SkipValue(data); err != nil {
			return // Decode refuses the packet before anything is decoded
		}
		typ := budgetTypes[int(kind)%len(budgetTypes)]
		err, alloc, charged := measureDecode(typ, data)
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
		if bound := uint64(Budget(len(data))); alloc > bound {
			t.Fatalf("%s from %d bytes: allocated %d bytes, budget %d (charged %d, err %v)", typ, len(data), alloc, bound, charged, err)
		}
		if err == nil && alloc > uint64(charged)+4<<10 {
			t.Fatalf("%s from %d bytes: allocated %d, charged only %d", typ, len(data), alloc, charged)
		}
	})
}
