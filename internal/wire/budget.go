package wire

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"reflect"
	"sort"

	"github.com/vmihailenco/msgpack/v5"
)

// The decode budget. Decoding n bytes of msgpack allocates at most
//
//	Budget(n, max) = min(BudgetFactor·n + BudgetSlack, max)
//
// bytes, whatever the Go type the value is decoded into: every allocation
// the decoder makes (a slice's backing array, a map's header and tables, a
// string, a pointer's target, an integer boxed into an interface) is
// charged, at what the Go allocator takes for it (its size class), before
// it is made, and a value that would go over the budget fails with
// ErrBudget before anything is allocated for it. max is a cap per decode
// (DefaultMaxDecodeMemory unless the caller sets another): a 16 MiB packet
// may cost 64 MiB (4×) at most, a small one up to 32× its size.
//
// Why a budget and not only a bound on counts: a msgpack nil is one byte
// and becomes a 16-byte interface in a []any, 8 bytes in a []int, a whole
// element in a []T; an empty map is one byte and costs Go 48. Counts
// bounded by the bytes that follow (SkipValue) still let 16 MiB of nils
// become 256 MiB of []any.
//
// Why 32: ordinary JSON-shaped data must decode at any size up to the
// cap. Measured on Go 1.26 (TestBudgetJSONRecords), an array of records
// {"id": n, "name": "abc", "ok": true} decoded into any costs 20–22 times
// its msgpack bytes (a 3-entry map[string]any is a 48-byte header and a
// 288-byte group, its keys 16 bytes each) and is charged 24–25 times; an
// array of small integers or nils into []any, 16 times (one interface
// each); of short strings, about 12 times. What goes beyond 32 is data
// made to be expensive: large arrays of empty maps (64 bytes each from one
// byte) or of empty arrays (48), refused beyond the slack.
const (
	BudgetFactor = 32
	BudgetSlack  = 64 << 10
	// DefaultMaxDecodeMemory caps the budget of one decode: what one
	// request from a peer may allocate while its arguments are decoded.
	DefaultMaxDecodeMemory = 64 << 20
)

// Budget returns the decode budget of n bytes of msgpack with the cap
// limit (DefaultMaxDecodeMemory when limit ≤ 0; never less than
// BudgetSlack).
func Budget(n int, limit int64) int64 {
	return min(BudgetFactor*int64(max(n, 0))+BudgetSlack, capOf(limit))
}

// capOf is the cap of a budget: max, or the default.
func capOf(m int64) int64 {
	if m <= 0 {
		return DefaultMaxDecodeMemory
	}
	return max(m, BudgetSlack)
}

// ErrBudget reports a value whose decoding would allocate more than the
// budget of the bytes it came in (see Budget). It wraps ErrMalformed.
var ErrBudget = wrap("decoding would allocate more than the budget of the packet")

// ErrNoMemory reports a decode refused because the memory it draws from
// (an Account's Memory: the node's bound on what its peers make it hold)
// had no room left for it. It is not about the data: it does not wrap
// ErrMalformed.
var ErrNoMemory = errors.New("wire: no memory left for decoding")

// Memory is what an Account draws from as its decode goes on: the node's
// bound on the memory its peers make it hold (transport.Memory, transport.Conn).
type Memory interface {
	// TryAcquire takes n bytes if they fit and reports whether it did.
	TryAcquire(n int64) bool
	// Release gives back n bytes taken with TryAcquire.
	Release(n int64)
}

// AccountStep is the step in which an Account takes memory from its
// Memory as the charge grows: one atomic operation per 16 KiB decoded at
// most, not one per allocation.
const AccountStep = 16 << 10

// An Account is the decode budget of one input given to a decoder of
// NewDecoderAccount or UnmarshalAccount, and what it took from a Memory
// for it: nothing is reserved up front; as the charge grows it takes from
// the Memory in steps of AccountStep, and a charge that does not fit there
// fails with ErrNoMemory. After decoding, Shrink gives back what was taken
// beyond the charge and Release gives back the rest once the decoded
// values are no longer held. The zero Account has no Memory and the
// default cap. An Account is used by one goroutine at a time; reuse it
// with Reset.
type Account struct {
	mem     Memory
	max     int64
	charged int64 // bytes charged by decoding
	held    int64 // bytes taken from mem
	over    bool  // a charge went over the budget
	short   bool  // mem refused a charge
}

// Reset makes a an Account of its own again, drawing from mem (nil for
// none) with the cap limit (see Budget). It gives nothing back: call Release
// first.
func (a *Account) Reset(mem Memory, limit int64) { *a = Account{mem: mem, max: limit} }

// Charged reports the bytes decoding charged so far: an upper bound of
// what it allocated.
func (a *Account) Charged() int64 { return a.charged }

// Held reports the bytes taken from the Memory now.
func (a *Account) Held() int64 { return a.held }

// OverBudget reports whether a charge went over the budget of the input
// (the decode failed with ErrBudget): the data was made to cost more than
// its size allows.
func (a *Account) OverBudget() bool { return a.over }

// OutOfMemory reports whether the Memory refused a charge (the decode
// failed with ErrNoMemory).
func (a *Account) OutOfMemory() bool { return a.short }

// Shrink gives back to the Memory what was taken beyond the charge: the
// decode is over, and what it allocated stays held until Release.
func (a *Account) Shrink() {
	if a.mem != nil && a.held > a.charged {
		a.mem.Release(a.held - a.charged)
		a.held = a.charged
	}
}

// Release gives back everything taken from the Memory.
func (a *Account) Release() {
	if a.mem != nil && a.held > 0 {
		a.mem.Release(a.held)
	}
	a.held = 0
}

// grow takes from the Memory what a charge of n more bytes needs; false
// when it does not fit.
func (a *Account) grow(n int64) bool {
	if a.mem == nil {
		return true
	}
	need := a.charged + n - a.held
	if need <= 0 {
		return true
	}
	step := (need + AccountStep - 1) / AccountStep * AccountStep
	if !a.mem.TryAcquire(step) {
		a.short = true
		return false
	}
	a.held += step
	return true
}

// budget is what a decoder may still allocate. Decoders of extension
// payloads and nested values share the budget of the decoder they come
// from.
type budget struct {
	limit int64 // Budget of the input
	left  int64
	size  int      // bytes of the input
	acct  *Account // nil: no Account (the budget alone)
}

// errReserve is the part of a budget kept for the error that refuses a
// value (its text and wrapping), so that refusing stays within it too.
const errReserve = 4 << 10

// unlimited is the budget of a trusted decoder (see NewTrustedDecoder).
const unlimited = math.MaxInt64 / 4

func (b *budget) reset(n int, limit int64, a *Account) {
	b.limit = Budget(n, limit)
	b.left = b.limit - errReserve
	b.size = n
	b.acct = a
}

func (b *budget) resetUnlimited() {
	b.limit, b.left, b.size, b.acct = unlimited, unlimited, 0, nil
}

// take charges n bytes; false when they are not left in the budget, or
// not in the Account's Memory (nothing is charged then).
func (b *budget) take(n int64) bool {
	if n > b.left || n < 0 {
		if b.acct != nil {
			b.acct.over = true
		}
		return false
	}
	if a := b.acct; a != nil {
		if !a.grow(n) {
			return false
		}
		a.charged += n
	}
	b.left -= n
	return true
}

// charged reports the bytes charged so far.
func (b *budget) charged() int64 {
	if b.limit == unlimited {
		return unlimited - b.left
	}
	return b.limit - errReserve - b.left
}

// exceeded is the error of a charge of n bytes for what that did not fit:
// in the budget, or in the Account's Memory.
func (b *budget) exceeded(n int64, what string) error {
	if n >= 0 && n <= b.left {
		return fmt.Errorf("%w: %s needs %d bytes", ErrNoMemory, what, n)
	}
	if BudgetFactor*int64(b.size)+BudgetSlack > b.limit {
		return fmt.Errorf("%w: %s needs %d bytes, %d of the budget of %d bytes left (the cap of one decode; %d bytes of msgpack)",
			ErrBudget, what, n, b.left, b.limit, b.size)
	}
	return fmt.Errorf("%w: %s needs %d bytes, %d of the budget of %d bytes left (%d × the %d bytes of msgpack + %d)",
		ErrBudget, what, n, b.left, b.limit, BudgetFactor, b.size, BudgetSlack)
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
	mapHeader  = 48           // a map's own header (runtime's maps.Map)
	tableSize  = 32           // a table of a map of more than 8 entries (maps.table)
)

// allocSize bounds what the Go allocator takes for an object of n bytes:
// 16 bytes at least (objects under 16 bytes without pointers share
// 16-byte blocks, except with the race detector, which gives each its
// own), otherwise its size class (objects over 512 bytes with pointers
// carry an 8-byte header: counted for every object, pointers or not),
// and whole 8 KiB pages for objects over 32 KiB.
func allocSize(n int64) int64 {
	switch {
	case n <= 0:
		return 0
	case n <= 16:
		return 16
	case n > 512:
		n += 8
	}
	switch {
	case n <= smallSizeMax:
		return int64(classBy8[(n+7)/8])
	case n <= maxSmallSize:
		return int64(classBy128[(n-smallSizeMax+127)/128])
	}
	return (n + pageSize - 1) / pageSize * pageSize
}

// The Go allocator's size classes (runtime/internal/gc's SizeClassToSize,
// unchanged since Go 1.12) and its page size.
var sizeClasses = [...]uint16{16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768}

const (
	maxSmallSize = 32 << 10
	smallSizeMax = 1024
	pageSize     = 8 << 10
)

// classBy8 and classBy128 look the size class up, as the runtime does:
// by 8-byte steps up to 1 KiB, by 128-byte steps above.
var classBy8, classBy128 = func() (a [smallSizeMax/8 + 1]uint16, b [(maxSmallSize-smallSizeMax)/128 + 1]uint16) {
	class := func(n int) uint16 {
		i := sort.Search(len(sizeClasses), func(i int) bool { return int(sizeClasses[i]) >= n })
		return sizeClasses[i]
	}
	for i := range a {
		a[i] = class(max(i*8, 1))
	}
	for i := range b {
		b[i] = class(smallSizeMax + i*128)
	}
	return a, b
}()

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

// mapCost bounds what a map made for n entries with keys of size ks and
// elements of size es allocates (Go's swiss tables): its header; for up to
// 8 entries one group of 8 slots and a control word, made on the first
// insert; beyond, tables of at most 1024 slots, a power of two each, at
// most 7/8 full, and a directory of them. Keys and elements over 128 bytes
// are stored behind pointers, each in an allocation of its own. An empty
// map is its header alone.
func mapCost(n int, ks, es int64) int64 {
	if n <= 0 {
		return allocSize(mapHeader)
	}
	var per int64 // allocations per entry
	if ks > 128 {
		per += allocSize(ks)
		ks = wordSize
	}
	if es > 128 {
		per += allocSize(es)
		es = wordSize
	}
	group := wordSize + 8*(align8(ks)+align8(es))
	if n <= 8 {
		return allocSize(mapHeader) + allocSize(group) + int64(n)*per
	}
	slots := uint64(n)*8/7 + 1
	slots = 1 << bits.Len64(slots-1) // a power of two, ≥ 16
	groups := int64(slots / 8)
	tables := max(1, groups*8/1024)
	// Each table: its struct and its groups; the directory: a pointer per
	// table.
	table := allocSize(groups/tables*group) + allocSize(tableSize)
	return allocSize(mapHeader) + tables*table + allocSize(tables*wordSize) + int64(n)*per
}

// align8 rounds n up to a multiple of 8 (a slot's key or element, padded).
func align8(n int64) int64 { return (n + 7) &^ 7 }

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
