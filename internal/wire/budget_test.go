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

// mapBomb is a map32 of n entries "" → nil (two bytes each): the map a
// decoder would make for it, sized by its announced count, is the bomb.
func mapBomb(n int) []byte {
	b := make([]byte, 5, 5+2*n)
	b[0] = 0xdf
	binary.BigEndian.PutUint32(b[1:], uint32(n))
	return append(b, bytes.Repeat([]byte{0xa0, 0xc0}, n)...)
}

// TestBudgetNilBomb: 16 MiB of nils in one array (or of "" → nil in one
// map), decoded into the types a method may take. Decoding allocates at
// most the budget of the bytes (here its cap, 64 MiB: 4 × the packet),
// and refuses with ErrBudget what would need more, before allocating it.
// A smaller bomb into []int (8 bytes per byte) fits its budget and
// decodes.
func TestBudgetNilBomb(t *testing.T) {
	const n = 16<<20 - 64
	arr := nilArray(n)
	inMap := append([]byte{0x81, 0xa1, 'a'}, arr...) // {"a": [nil × n]}
	inMapB := append([]byte{0x81, 0xa1, 'b'}, arr...)
	small := nilArray(2 << 20)
	tests := []struct {
		name string
		typ  reflect.Type
		data []byte
		want error // nil: decoded
	}{
		{"any", reflect.TypeFor[any](), arr, ErrBudget},
		{"[]any", reflect.TypeFor[[]any](), arr, ErrBudget},
		{"map[string]any", reflect.TypeFor[map[string]any](), mapBomb(n / 2), ErrBudget},
		{"any, a map", reflect.TypeFor[any](), mapBomb(n / 2), ErrBudget},
		{"[]int", reflect.TypeFor[[]int](), arr, ErrBudget}, // 128 MiB: over the cap
		{"[]int, 2 MiB", reflect.TypeFor[[]int](), small, nil},
		{"[][]int", reflect.TypeFor[[][]int](), arr, ErrBudget},
		{"[]map[string]any", reflect.TypeFor[[]map[string]any](), arr, ErrBudget},
		{"struct with slices, as an array", reflect.TypeFor[withSlices](), arr, ErrType},
		{"struct with slices, []int field", reflect.TypeFor[withSlices](), inMap, ErrBudget},
		{"struct with slices, []int field, 2 MiB", reflect.TypeFor[withSlices](), append([]byte{0x81, 0xa1, 'a'}, small...), nil},
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
			if bound := uint64(Budget(len(tt.data), 0)); alloc > bound {
				t.Errorf("allocated %d bytes, more than the budget of %d", alloc, bound)
			}
			if err == nil && alloc > uint64(charged)+4<<10 {
				t.Errorf("allocated %d bytes, charged %d: the cost model is not an upper bound", alloc, charged)
			}
			t.Logf("%d bytes of msgpack: allocated %d (%.2f×), charged %d, err %v", len(tt.data), alloc, float64(alloc)/float64(len(tt.data)), charged, err)
		})
	}
}

// TestBudgetJSONRecords: ordinary JSON-shaped data, what a Titan (JS)
// client sends to a method taking any: arrays of records {"id", "name",
// "ok"} decode at every size up to the cap of the budget (the review of
// issue 16 found 200 of them refused at a factor of 8), and what they
// allocate stays under what they are charged. The figures justify
// BudgetFactor: such records cost 20-odd times their bytes.
func TestBudgetJSONRecords(t *testing.T) {
	for _, n := range []int{1, 10, 100, 200, 300, 500, 1000, 10000, 100000} {
		recs := make([]any, n)
		for i := range recs {
			recs[i] = map[string]any{"id": i, "name": "abc", "ok": true}
		}
		data, err := Marshal(recs)
		if err != nil {
			t.Fatal(err)
		}
		err, alloc, charged := measureDecode(reflect.TypeFor[any](), data)
		if err != nil {
			t.Fatalf("%d records (%d bytes): %v", n, len(data), err)
		}
		if alloc > uint64(charged)+4<<10 {
			t.Errorf("%d records: allocated %d, charged only %d", n, alloc, charged)
		}
		if charged > BudgetFactor*int64(len(data))+BudgetSlack {
			t.Errorf("%d records: charged %d, more than %d × their %d bytes", n, charged, BudgetFactor, len(data))
		}
		t.Logf("%6d records, %8d bytes: allocated %9d (%.1f×), charged %9d (%.1f×), budget %9d",
			n, len(data), alloc, float64(alloc)/float64(len(data)), charged, float64(charged)/float64(len(data)), Budget(len(data), 0))
	}
	// Empty objects cost a map header each (48 bytes from one byte of
	// msgpack), and are charged only that: 1,000 of them decode within
	// the slack, 100,000 go over the budget.
	for _, tc := range []struct {
		n    int
		want error
	}{{1000, nil}, {100000, ErrBudget}} {
		recs := make([]any, tc.n)
		for i := range recs {
			recs[i] = map[string]any{}
		}
		data, _ := Marshal(recs)
		err, alloc, charged := measureDecode(reflect.TypeFor[any](), data)
		if !errors.Is(err, tc.want) {
			t.Fatalf("%d empty maps: %v, want %v", tc.n, err, tc.want)
		}
		if err == nil && (alloc > uint64(charged)+4<<10 || charged > int64(tc.n)*(mapCost(0, 0, 0)+ifaceSize)+sliceSize+4<<10) {
			t.Errorf("%d empty maps: allocated %d, charged %d", tc.n, alloc, charged)
		}
		t.Logf("%6d empty maps, %6d bytes: allocated %d, charged %d, err %v", tc.n, len(data), alloc, charged, err)
	}
}

// TestBudgetCap: the cap bounds the budget of large inputs; an Account
// sets another.
func TestBudgetCap(t *testing.T) {
	if got := Budget(1000, 0); got != 32*1000+64<<10 {
		t.Errorf("Budget(1000) = %d", got)
	}
	if got := Budget(16<<20, 0); got != DefaultMaxDecodeMemory {
		t.Errorf("Budget(16 MiB) = %d, want the cap", got)
	}
	if got := Budget(16<<20, 1<<30); got != 32*16<<20+64<<10 {
		t.Errorf("Budget(16 MiB, 1 GiB) = %d", got)
	}
	if got := Budget(0, 1); got != BudgetSlack {
		t.Errorf("Budget(0, 1) = %d, want the slack at least", got)
	}
	// 1 MiB of nils into []any (16 MiB) decodes with the default cap, not
	// with a cap of 8 MiB.
	data := nilArray(1 << 20)
	var v []any
	if err := Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	var a Account
	a.Reset(nil, 8<<20)
	err := UnmarshalAccount(data, &v, &a)
	if !errors.Is(err, ErrBudget) || !a.OverBudget() || !strings.Contains(err.Error(), "the cap of one decode") {
		t.Fatalf("err = %v, over %v", err, a.OverBudget())
	}
	// Trusted: no budget at all.
	if err := UnmarshalTrusted(nilArray(16<<20), &v); err != nil || len(v) != 16<<20 {
		t.Fatalf("trusted: %v", err)
	}
}

// testMemory is a Memory with a limit, counting what is taken.
type testMemory struct {
	limit, used, peak, acquires int64
}

func (m *testMemory) TryAcquire(n int64) bool {
	if m.used+n > m.limit {
		return false
	}
	m.used += n
	m.peak = max(m.peak, m.used)
	m.acquires++
	return true
}

func (m *testMemory) Release(n int64) { m.used -= n }

// TestAccountDrawsAsItGoes: an Account takes memory in steps as the
// charge grows, not the budget up front; a decode the memory cannot hold
// fails with ErrNoMemory (not ErrMalformed, not over budget); Shrink keeps
// what was charged and Release gives everything back.
func TestAccountDrawsAsItGoes(t *testing.T) {
	recs := make([]any, 2000)
	for i := range recs {
		recs[i] = map[string]any{"id": i, "name": "abc", "ok": true}
	}
	data, _ := Marshal(recs)
	mem := &testMemory{limit: 1 << 30}
	var a Account
	a.Reset(mem, 0)
	var v any
	if err := UnmarshalAccount(data, &v, &a); err != nil {
		t.Fatal(err)
	}
	if a.Held() < a.Charged() || a.Held() >= a.Charged()+AccountStep || mem.used != a.Held() {
		t.Fatalf("held %d, charged %d, used %d", a.Held(), a.Charged(), mem.used)
	}
	if mem.acquires > a.Charged()/AccountStep+1 {
		t.Errorf("%d acquisitions for %d bytes: not in steps", mem.acquires, a.Charged())
	}
	if mem.peak > a.Charged()+AccountStep {
		t.Errorf("peak %d for a charge of %d (budget %d): reserved up front?", mem.peak, a.Charged(), Budget(len(data), 0))
	}
	a.Shrink()
	if a.Held() != a.Charged() || mem.used != a.Charged() {
		t.Fatalf("after Shrink: held %d, charged %d, used %d", a.Held(), a.Charged(), mem.used)
	}
	a.Release()
	if mem.used != 0 || a.Held() != 0 {
		t.Fatalf("after Release: used %d", mem.used)
	}

	// Not enough memory: ErrNoMemory, nothing left taken once released.
	small := &testMemory{limit: 64 << 10}
	a.Reset(small, 0)
	err := UnmarshalAccount(data, &v, &a)
	if !errors.Is(err, ErrNoMemory) || errors.Is(err, ErrMalformed) || a.OverBudget() || !a.OutOfMemory() {
		t.Fatalf("err = %v (over %v, out of memory %v)", err, a.OverBudget(), a.OutOfMemory())
	}
	if small.used > small.limit {
		t.Fatalf("used %d of %d", small.used, small.limit)
	}
	a.Release()
	if small.used != 0 {
		t.Fatalf("after Release: used %d", small.used)
	}
}

// TestAllocSizeBoundsTheAllocator: allocSize is at least what the Go
// allocator takes for objects of every size up to a few pages (measured:
// what the heap allocates for one make([]byte, n) or make([]*int, n)).
func TestAllocSizeBoundsTheAllocator(t *testing.T) {
	for n := 1; n <= 80<<10; n += 1 + n/16 {
		a := allocated(func() { sinkBytes = make([]byte, n) })
		p := allocated(func() { sinkPointers = make([]*int, (n+7)/8) })
		if got := allocSize(int64(n)); uint64(got) < a || uint64(allocSize(int64((n+7)/8*8))) < p {
			t.Fatalf("allocSize(%d) = %d; the allocator took %d (bytes), %d (pointers)", n, got, a, p)
		}
	}
}

var (
	sinkBytes    []byte
	sinkPointers []*int
)

// TestBudgetMessage: the refusal says what did not fit and why.
func TestBudgetMessage(t *testing.T) {
	var v []withSlices // 72 bytes per element, from one byte
	err := Unmarshal(nilArray(100000), &v)
	if !errors.Is(err, ErrBudget) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want ErrBudget wrapping ErrMalformed", err)
	}
	for _, want := range []string{"100000-element []wire.withSlices", "needs 7200768 bytes", "32 × the 100005 bytes of msgpack + 65536"} {
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
			// Many empty maps: more than the budget (see BudgetFactor).
			if bound := uint64(Budget(len(c.data), 0)); alloc > bound {
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
		if bound := uint64(Budget(len(data), 0)); alloc > bound {
			t.Fatalf("%s from %d bytes: allocated %d bytes, budget %d (charged %d, err %v)", typ, len(data), alloc, bound, charged, err)
		}
		if err == nil && alloc > uint64(charged)+4<<10 {
			t.Fatalf("%s from %d bytes: allocated %d, charged only %d", typ, len(data), alloc, charged)
		}
	})
}
