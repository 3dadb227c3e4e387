package wire

import (
	"fmt"
	"math/bits"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"
)

// The decode budget. Decoding n bytes of msgpack allocates at most
// Budget(n) = BudgetFactor·n + BudgetSlack bytes, whatever the Go type the
// value is decoded into: every allocation the decoder makes (a slice's
// backing array, a map's table, a string, a pointer's target, an integer
// boxed into an interface) is charged, at what the Go allocator takes for
// it, before it is made, and a value that would go over the budget fails
// with ErrBudget before anything is allocated for it.
//
// Why a budget and not only a bound on counts: a msgpack nil is one byte
// and becomes a 16-byte interface in a []any, 8 bytes in a []int, a whole
// element in a []T; a one-entry map is 3 bytes and costs Go about 300.
// Counts bounded by the bytes that follow (SkipValue) still let 16 MiB of
// nils become 256 MiB of []any.
//
// The factor is 8 so that a []int64 of small integers (one byte each on
// the wire, eight in Go) decodes whatever its length. What needs more is
// refused beyond the slack: large arrays of tiny values decoded into an
// interface ([]any, 16 bytes per element) or many small maps
// (map[string]any). Decode such data into typed parameters ([]int32,
// []float64, []T of structs), which cost what their elements cost.
const (
	BudgetFactor = 8
	BudgetSlack  = 64 << 10
)

// Budget returns the decode budget of n bytes of msgpack (see BudgetFactor).
func Budget(n int) int64 { return BudgetFactor*int64(max(n, 0)) + BudgetSlack }

// ErrBudget reports a value whose decoding would allocate more than the
// budget of the bytes it came in (see BudgetFactor). It wraps ErrMalformed.
var ErrBudget = wrap("decoding would allocate more than the budget of the packet")

// budget is what a decoder may still allocate. Decoders of extension
// payloads and nested values share the budget of the decoder they come
// from.
type budget struct {
	limit int64 // Budget of the input
	left  int64
}

// errReserve is the part of a budget kept for the error that refuses a
// value (its text and wrapping), so that refusing stays within it too.
const errReserve = 4 << 10

func (b *budget) reset(n int) {
	b.limit = Budget(n)
	b.left = b.limit - errReserve
}

// take charges n bytes; false when they are not left (nothing is charged
// then).
func (b *budget) take(n int64) bool {
	if n > b.left || n < 0 {
		return false
	}
	b.left -= n
	return true
}

// charged reports the bytes charged so far.
func (b *budget) charged() int64 { return b.limit - errReserve - b.left }

// exceeded is the error of a charge of n bytes for what that did not fit.
func (b *budget) exceeded(n int64, what string) error {
	return fmt.Errorf("%w: %s needs %d bytes, %d of the budget of %d bytes left (%d × the %d bytes of msgpack + %d)",
		ErrBudget, what, n, b.left, b.limit, BudgetFactor, (b.limit-BudgetSlack)/BudgetFactor, BudgetSlack)
}

// Charged reports how many bytes a decoder from NewDecoder has charged to
// its budget so far (an upper bound of what it allocated), or -1 for other
// decoders.
func Charged(dec *msgpack.Decoder) int64 {
	if s := stateOf(dec); s != nil {
		return s.bud.charged()
	}
	return -1
}

// Sizes the cost model uses (64-bit platforms; smaller elsewhere).
const (
	wordSize   = 8
	ifaceSize  = 2 * wordSize // an interface value: type word, data word
	stringSize = 2 * wordSize // a string header
	sliceSize  = 3 * wordSize // a slice header
	mapHeader  = 64           // a map's own header (its groups are apart)
)

// allocSize bounds what the Go allocator takes for an object of n bytes:
// 16 bytes at least (objects under 16 bytes without pointers share
// 16-byte blocks, except with the race detector, which gives each its
// own), size classes round up by less than a quarter above that, large
// objects round up to whole 8 KiB pages.
func allocSize(n int64) int64 {
	switch {
	case n <= 0:
		return 0
	case n <= 16:
		return 16
	case n <= 32<<10:
		return n + n/4 + 16
	}
	return n + 8<<10
}

// sliceCost is the backing array of a slice of n elements of size elem.
func sliceCost(n int, elem int64) int64 {
	if elem == 0 || n == 0 {
		return 0
	}
	if int64(n) > (1<<62)/elem {
		return 1 << 62
	}
	return allocSize(int64(n) * elem)
}

// boxCost is what storing a 64-bit scalar with bit pattern u in an
// interface allocates: nothing below 256 (the runtime keeps those
// values), an 8-byte object above.
func boxCost(u uint64) int64 {
	if u < 256 {
		return 0
	}
	return allocSize(8)
}

// mapCost bounds the tables of a map made for n entries with keys of
// size ks and elements of size es (Go's swiss tables: groups of 8 slots
// and a control word, at most 7/8 full, in tables of at most 1024 slots;
// keys and elements over 128 bytes are stored behind pointers, each in an
// allocation of its own).
func mapCost(n int, ks, es int64) int64 {
	var per int64 // allocations per entry
	if ks > 128 {
		per += allocSize(ks)
		ks = wordSize
	}
	if es > 128 {
		per += allocSize(es)
		es = wordSize
	}
	group := wordSize + 8*(ks+es)
	if n <= 8 {
		return mapHeader + allocSize(group) + int64(n)*per
	}
	slots := uint64(n)*8/7 + 1
	slots = 1 << bits.Len64(slots-1) // a power of two, ≥ 16
	groups := int64(slots / 8)
	tables := max(1, groups*8/1024)
	// Each table: its struct and its groups; the directory: a pointer per
	// table.
	table := allocSize(groups/tables*group) + 64
	return mapHeader + tables*table + allocSize(tables*wordSize) + int64(n)*per
}

// newCost is what reflect.New(t) allocates.
func newCost(t reflect.Type) int64 { return allocSize(int64(t.Size())) }

// costAny bounds what decoding the single msgpack value at the start of b
// into an empty interface may allocate, through this package's rules or
// msgpack v5's own (which copies strings through a scratch buffer first):
// the charge of a value handed to code that decodes it by its own rules.
// b must have been checked with skip.
func costAny(b []byte) int64 {
	_, cost := costAnyAt(b, 0)
	return cost
}

// costAnyAt returns the end of the value at b[off] and its cost.
func costAnyAt(b []byte, off int) (int, int64) {
	c := b[off]
	switch {
	case isFixInt(c), c == codeNil, c == codeTrue, c == codeFalse:
		return off + 1, 0
	case isFixMap(c), isFixArray(c), c >= codeArray16 && c <= codeMap32:
		items, p := containerAt(b, off)
		var cost int64
		if isFixMap(c) || c == codeMap16 || c == codeMap32 {
			cost = mapCost(items, stringSize, ifaceSize)
			items *= 2
		} else {
			cost = sliceSize + sliceCost(items, ifaceSize)
		}
		for range items {
			var x int64
			p, x = costAnyAt(b, p)
			cost += x
		}
		return p, cost
	}
	end, _ := skip(b, off, 0) // a scalar, checked before: cannot fail
	switch {
	case c >= codeFloat32 && c <= codeInt64:
		return end, 8
	case isStr(c), isBin(c):
		return end, sliceSize + 2*allocSize(int64(end-off)) // box, scratch and copy
	}
	// An extension: fixed structures plus their strings and nested
	// values, boxed.
	return end, 4*allocSize(int64(end-off)) + 1024
}

// containerAt returns the item count of the array or map at b[off] and the
// offset of its first item.
func containerAt(b []byte, off int) (int, int) {
	c := b[off]
	switch {
	case isFixMap(c), isFixArray(c):
		return int(c & 0x0f), off + 1
	case c == codeArray16, c == codeMap16:
		return int(b[off+1])<<8 | int(b[off+2]), off + 3
	}
	return int(uint32(b[off+1])<<24 | uint32(b[off+2])<<16 | uint32(b[off+3])<<8 | uint32(b[off+4])), off + 5
}
