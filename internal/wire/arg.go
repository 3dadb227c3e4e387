package wire

import (
	"encoding"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// msgpack format bytes used below.
const (
	codeNil      = 0xc0
	codeNever    = 0xc1
	codeFalse    = 0xc2
	codeTrue     = 0xc3
	codeBin8     = 0xc4
	codeBin32    = 0xc6
	codeExt8     = 0xc7
	codeExt16    = 0xc8
	codeExt32    = 0xc9
	codeFloat32  = 0xca
	codeFloat64  = 0xcb
	codeUint8    = 0xcc
	codeUint64   = 0xcf
	codeInt8     = 0xd0
	codeInt64    = 0xd3
	codeFixExt1  = 0xd4
	codeFixExt16 = 0xd8
	codeStr8     = 0xd9
	codeStr32    = 0xdb
	codeArray16  = 0xdc
	codeArray32  = 0xdd
	codeMap16    = 0xde
	codeMap32    = 0xdf
)

func isFixMap(c byte) bool   { return c >= 0x80 && c <= 0x8f }
func isFixArray(c byte) bool { return c >= 0x90 && c <= 0x9f }
func isFixStr(c byte) bool   { return c >= 0xa0 && c <= 0xbf }
func isFixInt(c byte) bool   { return c <= 0x7f || c >= 0xe0 }
func isStr(c byte) bool      { return isFixStr(c) || (c >= codeStr8 && c <= codeStr32) }
func isBin(c byte) bool      { return c >= codeBin8 && c <= codeBin32 }
func isExt(c byte) bool {
	return (c >= codeExt8 && c <= codeExt32) || (c >= codeFixExt1 && c <= codeFixExt16)
}

// kindOf names the kind of msgpack value that starts with c, for errors.
func kindOf(c byte) string {
	switch {
	case isFixInt(c), c >= codeUint8 && c <= codeInt64:
		return "integer"
	case isFixMap(c), c == codeMap16, c == codeMap32:
		return "map"
	case isFixArray(c), c == codeArray16, c == codeArray32:
		return "array"
	case isStr(c):
		return "string"
	case isBin(c):
		return "binary"
	case isExt(c):
		return "extension"
	}
	switch c {
	case codeNil:
		return "nil"
	case codeFalse, codeTrue:
		return "bool"
	case codeFloat32, codeFloat64:
		return "float"
	}
	return fmt.Sprintf("marker 0x%02x", c)
}

// DecodeArg decodes the next msgpack value of dec into v, which must be
// settable (for example reflect.New(t).Elem()). The RPC dispatcher uses it
// for each argument of a call, after reading the array header, the defId
// and the method name itself.
//
// When dec comes from NewDecoder, DecodeArg first checks the next value
// with SkipValue's rules (well-formed, no deeper than MaxDepth, no count
// larger than the bytes that follow), so hostile input cannot make it
// allocate or recurse without bound. With any other decoder the caller must
// have checked the bytes.
//
// Rules, the same for Unmarshal:
//
//   - undefined (d4 00 00) and nil store the zero value of the target;
//   - an integer target (int*, uint*) accepts any msgpack integer and any
//     float holding an exact integer (JavaScript sends every number that is
//     not an int32 as float64), as long as the value fits the target type:
//     2.5 into an int, 300 into an int8, -1 into a uint, NaN and ±Inf are
//     errors (msgpack v5 rejects every float for an int and silently
//     truncates out-of-range integers);
//   - a float target accepts any number (a float64 too large for a float32
//     is an error);
//   - an empty interface gets nil, bool, int64 (uint64 above MaxInt64),
//     float64, string, []byte, []any, map[string]any (integer keys become
//     their decimal strings, as in JavaScript) or a value of this package's
//     extension types; undefined nested inside it is Undefined{};
//   - pointers, slices and maps are decoded element by element with these
//     rules; structs, arrays and types with their own msgpack, binary or text
//     decoding are decoded by msgpack v5 itself (whose rules apply to their
//     fields: a float into an int field fails, an out-of-range integer is
//     truncated, so prefer int64 and float64 fields for values from JS).
//
// Errors caused by the data wrap ErrMalformed (ErrType when a well-formed
// value does not fit v; msgpack v5 panics on a few well-formed inputs, which
// are recovered into ErrType). After an error the position of dec is
// unspecified.
func DecodeArg(dec *msgpack.Decoder, v reflect.Value) error {
	if !v.CanSet() {
		return fmt.Errorf("wire: DecodeArg into a value that cannot be set (%s)", typeName(v))
	}
	if s := stateOf(dec); s != nil {
		if _, err := skip(s.b, s.off, s.depth); err != nil {
			return err
		}
	}
	return decodeArg(dec, v, false)
}

// UnmarshalArg decodes data, which must hold exactly one msgpack value, into
// v with the rules of DecodeArg.
func UnmarshalArg(data []byte, v reflect.Value) error {
	if !v.CanSet() {
		return fmt.Errorf("wire: UnmarshalArg into a value that cannot be set (%s)", typeName(v))
	}
	if err := checkOne(data); err != nil {
		return err
	}
	s := getDec(data, 0)
	err := decodeArg(s.dec, v, false)
	putDec(s)
	return err
}

func typeName(v reflect.Value) string {
	if !v.IsValid() {
		return "invalid reflect.Value"
	}
	return v.Type().String()
}

// target returns the settable value a pointer argument of Unmarshal points to.
func target(v any) (reflect.Value, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return reflect.Value{}, fmt.Errorf("wire: Unmarshal needs a non-nil pointer, got %T", v)
	}
	return rv.Elem(), nil
}

// wrapErr turns an error of msgpack v5 into one of ours. The bytes were
// checked before decoding, so what msgpack still rejects is a value that
// does not fit the target type (or an extension payload: those errors are
// ours already).
func wrapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrMalformed):
		return err
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %w", ErrTruncated, err)
	}
	return fmt.Errorf("%w: %w", ErrType, err)
}

// viaMsgpack decodes the next value into v with msgpack v5 itself. msgpack
// v5.4.1 panics on some well-formed input (nil for a struct field whose
// type is a registered extension or decodes itself with a value receiver),
// so a panic is turned into an error and the decoder is not reused.
func viaMsgpack(dec *msgpack.Decoder, v reflect.Value) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if s := stateOf(dec); s != nil {
				s.broken = true
			}
			err = fmt.Errorf("%w: msgpack v5 cannot decode this value into %s: %v", ErrType, v.Type(), r)
		}
	}()
	return wrapErr(dec.DecodeValue(v))
}

func peek(dec *msgpack.Decoder) (byte, error) {
	c, err := dec.PeekCode()
	if err != nil {
		return 0, fmt.Errorf("%w: no value left: %w", ErrTruncated, err)
	}
	return c, nil
}

// nextIsUndefined reports whether the next value of a decoder made by this
// package is undefined (fixext1 type 0) and, if so, consumes it.
func nextIsUndefined(s *decState) bool {
	r := s.rest()
	if len(r) >= 3 && r[0] == codeFixExt1 && r[1] == byte(ExtUndefined) {
		s.off += 3
		return true
	}
	return false
}

var (
	undefinedType = reflect.TypeFor[Undefined]()
	decodedBy     sync.Map // reflect.Type -> bool: decoded by msgpack itself
	decoderIfaces = []reflect.Type{
		reflect.TypeFor[msgpack.CustomDecoder](),
		reflect.TypeFor[msgpack.Unmarshaler](),
		reflect.TypeFor[encoding.BinaryUnmarshaler](),
		reflect.TypeFor[encoding.TextUnmarshaler](),
	}
)

// holdsUndefined reports whether t is Undefined or a pointer to one: those
// decode undefined as a value, not as the zero value.
func holdsUndefined(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t == undefinedType
}

// byMsgpack reports whether values of t are left to msgpack v5: this
// package's extension types and types with their own decoding.
func byMsgpack(t reflect.Type) bool {
	if b, ok := decodedBy.Load(t); ok {
		return b.(bool)
	}
	b := isExtType(t)
	if !b && t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface {
		pt := reflect.PointerTo(t)
		for _, it := range decoderIfaces {
			if t.Implements(it) || pt.Implements(it) {
				b = true
				break
			}
		}
	}
	decodedBy.Store(t, b)
	return b
}

// decodeArg implements DecodeArg without the up-front check. keepUndef
// stores undefined into an empty interface as Undefined{} instead of nil.
func decodeArg(dec *msgpack.Decoder, v reflect.Value, keepUndef bool) error {
	c, err := peek(dec)
	if err != nil {
		return err
	}
	t := v.Type()
	if c == codeFixExt1 && !holdsUndefined(t) {
		s := stateOf(dec)
		if s == nil {
			return decodeFixExt1Foreign(dec, v, keepUndef)
		}
		if nextIsUndefined(s) {
			if keepUndef && t.Kind() == reflect.Interface && t.NumMethod() == 0 {
				v.Set(reflect.ValueOf(Undefined{}))
			} else {
				v.SetZero()
			}
			return nil
		}
	}
	if c == codeNil {
		_ = dec.Skip()
		v.SetZero()
		return nil
	}
	if byMsgpack(t) {
		return viaMsgpack(dec, v)
	}
	switch t.Kind() {
	case reflect.Bool:
		if c != codeTrue && c != codeFalse {
			return fmt.Errorf("%w: %s for %s", ErrType, kindOf(c), t)
		}
		b, err := dec.DecodeBool()
		if err != nil {
			return wrapErr(err)
		}
		v.SetBool(b)
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := readNumber(dec, c, t)
		if err != nil {
			return err
		}
		return n.setInt(v)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, err := readNumber(dec, c, t)
		if err != nil {
			return err
		}
		return n.setUint(v)
	case reflect.Float32, reflect.Float64:
		n, err := readNumber(dec, c, t)
		if err != nil {
			return err
		}
		return n.setFloat(v)
	case reflect.String:
		if !isStr(c) && !isBin(c) {
			return fmt.Errorf("%w: %s for %s", ErrType, kindOf(c), t)
		}
		s, err := dec.DecodeString()
		if err != nil {
			return wrapErr(err)
		}
		v.SetString(s)
		return nil
	case reflect.Interface:
		if t.NumMethod() != 0 {
			return viaMsgpack(dec, v)
		}
		x, err := decodeAny(dec)
		if err != nil {
			return err
		}
		if x == nil {
			v.SetZero()
		} else {
			v.Set(reflect.ValueOf(x))
		}
		return nil
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		return decodeArg(dec, v.Elem(), true)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return viaMsgpack(dec, v) // []byte from bin or str
		}
		if !isFixArray(c) && c != codeArray16 && c != codeArray32 {
			return fmt.Errorf("%w: %s for %s", ErrType, kindOf(c), t)
		}
		n, err := dec.DecodeArrayLen()
		if err != nil {
			return wrapErr(err)
		}
		s := reflect.MakeSlice(t, 0, prealloc(dec, n))
		for i := 0; i < n; i++ {
			if i < s.Cap() {
				s = s.Slice(0, i+1)
			} else {
				s = reflect.Append(s, reflect.Zero(t.Elem()))
			}
			if err := decodeArg(dec, s.Index(i), true); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.Map:
		if !isFixMap(c) && c != codeMap16 && c != codeMap32 {
			return fmt.Errorf("%w: %s for %s", ErrType, kindOf(c), t)
		}
		n, err := dec.DecodeMapLen()
		if err != nil {
			return wrapErr(err)
		}
		m := reflect.MakeMapWithSize(t, prealloc(dec, n))
		kt, et := t.Key(), t.Elem()
		for i := 0; i < n; i++ {
			k := reflect.New(kt).Elem()
			if kt.Kind() == reflect.String && !byMsgpack(kt) {
				ks, err := decodeKey(dec)
				if err != nil {
					return err
				}
				k.SetString(ks)
			} else if err := decodeArg(dec, k, true); err != nil {
				return err
			}
			e := reflect.New(et).Elem()
			if err := decodeArg(dec, e, true); err != nil {
				return err
			}
			m.SetMapIndex(k, e)
		}
		v.Set(m)
		return nil
	}
	return viaMsgpack(dec, v)
}

// decodeFixExt1Foreign handles a fixext1 on a decoder not made by this
// package, which cannot peek at the extension type: it reads the 3 bytes
// and decodes them again.
func decodeFixExt1Foreign(dec *msgpack.Decoder, v reflect.Value, keepUndef bool) error {
	raw, err := dec.DecodeRaw()
	if err != nil {
		return wrapErr(err)
	}
	s := getDec(raw, 0)
	defer putDec(s)
	return decodeArg(s.dec, v, keepUndef)
}

// prealloc bounds the capacity to preallocate for n announced elements by
// the bytes left in the input (every element takes at least one byte).
func prealloc(dec *msgpack.Decoder, n int) int {
	limit := 1024
	if s := stateOf(dec); s != nil {
		limit = len(s.b) - s.off
	}
	return max(0, min(n, limit))
}

// decodeKey decodes a map key for a string-keyed map: a string, or an
// integer written as its decimal string (JavaScript object keys are strings).
func decodeKey(dec *msgpack.Decoder) (string, error) {
	c, err := peek(dec)
	if err != nil {
		return "", err
	}
	switch {
	case isStr(c), isBin(c):
		s, err := dec.DecodeString()
		return s, wrapErr(err)
	case isFixInt(c), c >= codeInt8 && c <= codeInt64:
		n, err := dec.DecodeInt64()
		return strconv.FormatInt(n, 10), wrapErr(err)
	case c >= codeUint8 && c <= codeUint64:
		n, err := dec.DecodeUint64()
		return strconv.FormatUint(n, 10), wrapErr(err)
	}
	return "", fmt.Errorf("%w: %s as a map key, want a string", ErrType, kindOf(c))
}

// decodeAny decodes the next value into the Go types listed in DecodeArg.
func decodeAny(dec *msgpack.Decoder) (any, error) {
	c, err := peek(dec)
	if err != nil {
		return nil, err
	}
	switch {
	case isFixInt(c), c >= codeInt8 && c <= codeInt64:
		n, err := dec.DecodeInt64()
		return n, wrapErr(err)
	case c >= codeUint8 && c <= codeUint64:
		n, err := dec.DecodeUint64()
		if err != nil {
			return nil, wrapErr(err)
		}
		if n <= math.MaxInt64 {
			return int64(n), nil
		}
		return n, nil
	case isStr(c):
		s, err := dec.DecodeString()
		return s, wrapErr(err)
	case isFixMap(c), c == codeMap16, c == codeMap32:
		n, err := dec.DecodeMapLen()
		if err != nil {
			return nil, wrapErr(err)
		}
		m := make(map[string]any, prealloc(dec, n))
		for i := 0; i < n; i++ {
			k, err := decodeKey(dec)
			if err != nil {
				return nil, err
			}
			if m[k], err = decodeAny(dec); err != nil {
				return nil, err
			}
		}
		return m, nil
	case isFixArray(c), c == codeArray16, c == codeArray32:
		n, err := dec.DecodeArrayLen()
		if err != nil {
			return nil, wrapErr(err)
		}
		a := make([]any, 0, prealloc(dec, n))
		for i := 0; i < n; i++ {
			x, err := decodeAny(dec)
			if err != nil {
				return nil, err
			}
			a = append(a, x)
		}
		return a, nil
	case isBin(c):
		b, err := dec.DecodeBytes()
		return b, wrapErr(err)
	case isExt(c):
		if s := stateOf(dec); s != nil {
			if id, ok := extTypeAt(s.rest()); ok && !knownExt(id) {
				return nil, fmt.Errorf("%w: %d", ErrUnknownExt, id)
			}
		}
		x, err := dec.DecodeInterface()
		return x, wrapErr(err)
	}
	switch c {
	case codeNil:
		return nil, wrapErr(dec.DecodeNil())
	case codeTrue, codeFalse:
		b, err := dec.DecodeBool()
		return b, wrapErr(err)
	case codeFloat32, codeFloat64:
		f, err := dec.DecodeFloat64()
		return f, wrapErr(err)
	}
	return nil, fmt.Errorf("%w: marker 0x%02x", ErrBadMsgpack, c)
}

// extTypeAt returns the extension type of the ext value at the start of b.
func extTypeAt(b []byte) (int8, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var i int
	switch c := b[0]; {
	case c >= codeFixExt1 && c <= codeFixExt16:
		i = 1
	case c >= codeExt8 && c <= codeExt32:
		i = 1 + 1<<(c-codeExt8)
	default:
		return 0, false
	}
	if len(b) <= i {
		return 0, false
	}
	return int8(b[i]), true
}

// number is a msgpack integer or float read for a numeric target.
type number struct {
	kind byte // 'i' int64, 'u' uint64 (> MaxInt64 or from a uint code), 'f' float64
	i    int64
	u    uint64
	f    float64
}

func (n number) String() string {
	switch n.kind {
	case 'i':
		return strconv.FormatInt(n.i, 10)
	case 'u':
		return strconv.FormatUint(n.u, 10)
	}
	return strconv.FormatFloat(n.f, 'g', -1, 64)
}

func readNumber(dec *msgpack.Decoder, c byte, t reflect.Type) (number, error) {
	var n number
	var err error
	switch {
	case isFixInt(c), c >= codeInt8 && c <= codeInt64:
		n.kind = 'i'
		n.i, err = dec.DecodeInt64()
	case c >= codeUint8 && c <= codeUint64:
		n.kind = 'u'
		n.u, err = dec.DecodeUint64()
	case c == codeFloat32 || c == codeFloat64:
		n.kind = 'f'
		n.f, err = dec.DecodeFloat64()
	default:
		return n, fmt.Errorf("%w: %s for %s", ErrType, kindOf(c), t)
	}
	return n, wrapErr(err)
}

func (n number) rangeErr(v reflect.Value) error {
	return fmt.Errorf("%w: %s does not fit %s", ErrType, n, v.Type())
}

// Powers of two bounding the float64 values that convert to int64 / uint64.
const (
	two63 = 1 << 63
	two64 = 1 << 64
)

func (n number) setInt(v reflect.Value) error {
	var i int64
	switch n.kind {
	case 'i':
		i = n.i
	case 'u':
		if n.u > math.MaxInt64 {
			return n.rangeErr(v)
		}
		i = int64(n.u)
	default:
		if n.f != math.Trunc(n.f) || math.IsInf(n.f, 0) { // NaN != NaN
			return fmt.Errorf("%w: %s is not an integer (%s)", ErrType, n, v.Type())
		}
		if n.f < -two63 || n.f >= two63 {
			return n.rangeErr(v)
		}
		i = int64(n.f)
	}
	if v.OverflowInt(i) {
		return n.rangeErr(v)
	}
	v.SetInt(i)
	return nil
}

func (n number) setUint(v reflect.Value) error {
	var u uint64
	switch n.kind {
	case 'i':
		if n.i < 0 {
			return n.rangeErr(v)
		}
		u = uint64(n.i)
	case 'u':
		u = n.u
	default:
		if n.f != math.Trunc(n.f) || math.IsInf(n.f, 0) {
			return fmt.Errorf("%w: %s is not an integer (%s)", ErrType, n, v.Type())
		}
		if n.f < 0 || n.f >= two64 {
			return n.rangeErr(v)
		}
		u = uint64(n.f)
	}
	if v.OverflowUint(u) {
		return n.rangeErr(v)
	}
	v.SetUint(u)
	return nil
}

func (n number) setFloat(v reflect.Value) error {
	var f float64
	switch n.kind {
	case 'i':
		f = float64(n.i)
	case 'u':
		f = float64(n.u)
	default:
		f = n.f
	}
	if v.OverflowFloat(f) {
		return n.rangeErr(v)
	}
	v.SetFloat(f)
	return nil
}
