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
	"time"
	"unsafe"

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
//   - pointers, slices, arrays, maps and structs are decoded element by
//     element, field by field, with these rules (struct fields are found
//     as msgpack v5 finds them: see struct.go); [N]byte arrays, fields
//     tagged intern and types with their own msgpack, binary or text
//     decoding are decoded by msgpack v5 itself;
//   - every allocation is charged to the decode budget of the input first
//     (see Budget): a value that would take more fails with ErrBudget
//     before anything is allocated for it. A type that decodes itself is
//     charged what its value would cost as an interface; what it allocates
//     beyond that is its own.
//
// Errors caused by the data wrap ErrMalformed (ErrType when a well-formed
// value does not fit v, ErrBudget when it would cost more than the budget;
// msgpack v5 panics on a few well-formed inputs, which are recovered into
// ErrType). After an error the position of dec is unspecified.
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
	if s := stateOf(dec); s != nil {
		s.scratch = true
	}
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
// Every allocation is charged to the decoder's budget first (decoders of
// this package only).
func decodeArg(dec *msgpack.Decoder, v reflect.Value, keepUndef bool) error {
	c, err := peek(dec)
	if err != nil {
		return err
	}
	s := stateOf(dec)
	t := v.Type()
	if c == codeFixExt1 && !holdsUndefined(t) {
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
		if !isExtType(t) {
			// Its own decoding: charged what the value would cost as
			// an interface (what it allocates beyond is its own).
			if err := s.chargeAny(t.String()); err != nil {
				return err
			}
		}
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
		str, err := readString(dec, s, t)
		if err != nil {
			return err
		}
		v.SetString(str)
		return nil
	case reflect.Interface:
		if t.NumMethod() != 0 {
			if err := s.chargeAny(t.String()); err != nil {
				return err
			}
			return viaMsgpack(dec, v)
		}
		x, err := decodeAny(dec, s)
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
			if err := s.charge(newCost(t.Elem()), t.String()); err != nil {
				return err
			}
			v.Set(reflect.New(t.Elem()))
		}
		return decodeArg(dec, v.Elem(), true)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			if !isStr(c) && !isBin(c) {
				return fmt.Errorf("%w: %s for %s", ErrType, kindOf(c), t)
			}
			b, err := readBytes(dec, s, t)
			if err != nil {
				return err
			}
			v.SetBytes(b)
			return nil
		}
		if !isFixArray(c) && c != codeArray16 && c != codeArray32 {
			return fmt.Errorf("%w: %s for %s", ErrType, kindOf(c), t)
		}
		n, err := dec.DecodeArrayLen()
		if err != nil {
			return wrapErr(err)
		}
		if err := s.checkCount(n); err != nil {
			return err
		}
		if err := s.chargeN(sliceCost(n, int64(t.Elem().Size())), "a %d-element %s", n, t); err != nil {
			return err
		}
		sv := reflect.MakeSlice(t, n, n)
		for i := range n {
			if err := decodeArg(dec, sv.Index(i), true); err != nil {
				return err
			}
		}
		v.Set(sv)
		return nil
	case reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return viaMsgpack(dec, v) // [N]byte from bin or str, in place
		}
		if !isFixArray(c) && c != codeArray16 && c != codeArray32 {
			return fmt.Errorf("%w: %s for %s", ErrType, kindOf(c), t)
		}
		n, err := dec.DecodeArrayLen()
		if err != nil {
			return wrapErr(err)
		}
		if n > v.Len() {
			return fmt.Errorf("%w: %d elements for %s", ErrType, n, t)
		}
		for i := range n {
			if err := decodeArg(dec, v.Index(i), true); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		if !isFixMap(c) && c != codeMap16 && c != codeMap32 {
			return fmt.Errorf("%w: %s for %s", ErrType, kindOf(c), t)
		}
		n, err := dec.DecodeMapLen()
		if err != nil {
			return wrapErr(err)
		}
		if err := s.checkCount(2 * n); err != nil {
			return err
		}
		kt, et := t.Key(), t.Elem()
		cost := mapCost(n, int64(kt.Size()), int64(et.Size()))
		if n > 0 {
			cost += newCost(kt) + newCost(et)
		}
		if err := s.chargeN(cost, "a %d-entry %s", n, t); err != nil {
			return err
		}
		m := reflect.MakeMapWithSize(t, n)
		if n == 0 {
			v.Set(m)
			return nil
		}
		// One key and one element, reused: the map copies them.
		k, e := reflect.New(kt).Elem(), reflect.New(et).Elem()
		stringKeys := kt.Kind() == reflect.String && !byMsgpack(kt)
		for range n {
			k.SetZero()
			e.SetZero()
			if stringKeys {
				ks, err := decodeKey(dec, s)
				if err != nil {
					return err
				}
				k.SetString(ks)
			} else if err := decodeArg(dec, k, true); err != nil {
				return err
			}
			if err := decodeArg(dec, e, true); err != nil {
				return err
			}
			m.SetMapIndex(k, e)
		}
		v.Set(m)
		return nil
	case reflect.Struct:
		if isExt(c) { // a type of the caller's registered with msgpack as an extension
			if err := s.chargeAny(t.String()); err != nil {
				return err
			}
			return viaMsgpack(dec, v)
		}
		if structInfoOf(t).byMsgpack {
			if err := s.chargeAny(t.String()); err != nil {
				return err
			}
			return viaMsgpack(dec, v)
		}
		return decodeStruct(dec, s, v, c)
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

// charge takes n bytes from the budget of s, for what (named in the
// error). A nil s (a decoder not made by this package) has no budget.
func (s *decState) charge(n int64, what string) error {
	if s == nil || s.bud.take(n) {
		return nil
	}
	return s.bud.exceeded(n, what)
}

// chargeN is charge with the description format(count, t), made only when
// the charge fails.
func (s *decState) chargeN(n int64, format string, count int, t reflect.Type) error {
	if s == nil || s.bud.take(n) {
		return nil
	}
	return s.bud.exceeded(n, fmt.Sprintf(format, count, t))
}

var (
	mapAnyType   = reflect.TypeFor[map[string]any]()
	sliceAnyType = reflect.TypeFor[[]any]()
)

// chargeAny charges what the next value would cost decoded into an
// interface, for a target that decodes it by rules of its own.
func (s *decState) chargeAny(what string) error {
	if s == nil || s.off >= len(s.b) {
		return nil
	}
	end, err := skip(s.b, s.off, s.depth)
	if err != nil {
		return err
	}
	return s.charge(costAny(s.b[s.off:end]), what)
}

// checkCount rejects a count of nested values larger than the bytes left
// (each takes one at least). Values decoded through DecodeArg or
// Unmarshal were checked before; this guards decoders that were not.
func (s *decState) checkCount(n int) error {
	if s == nil || n <= len(s.b)-s.off {
		return nil
	}
	return fmt.Errorf("%w: %d nested values announced, %d bytes left", ErrTruncated, n, len(s.b)-s.off)
}

// strBytes reads the str or bin value (or nil, as empty) at the position
// of s and returns its payload, which aliases the input; ok is false, and
// nothing is read, when the next value is neither.
func strBytes(s *decState) (b []byte, ok bool, err error) {
	r := s.rest()
	if len(r) == 0 {
		return nil, false, fmt.Errorf("%w: no value left", ErrTruncated)
	}
	c := r[0]
	var n, h int
	switch {
	case isFixStr(c):
		n, h = int(c&0x1f), 1
	case c == codeNil:
		s.off++
		return nil, true, nil
	case c == codeStr8 || c == codeBin8:
		if len(r) < 2 {
			return nil, true, fmt.Errorf("%w: string header", ErrTruncated)
		}
		n, h = int(r[1]), 2
	case c == codeStr8+1 || c == codeBin8+1:
		if len(r) < 3 {
			return nil, true, fmt.Errorf("%w: string header", ErrTruncated)
		}
		n, h = int(r[1])<<8|int(r[2]), 3
	case c == codeStr32 || c == codeBin32:
		if len(r) < 5 {
			return nil, true, fmt.Errorf("%w: string header", ErrTruncated)
		}
		n, h = int(uint32(r[1])<<24|uint32(r[2])<<16|uint32(r[3])<<8|uint32(r[4])), 5
	default:
		return nil, false, nil
	}
	if n < 0 || n > len(r)-h {
		return nil, true, fmt.Errorf("%w: a string of %d bytes, %d left", ErrTruncated, n, len(r)-h)
	}
	s.off += h + n
	return r[h : h+n : h+n], true, nil
}

// chargedStrBytes reads a str or bin value in place and charges the copy
// its caller makes of it (a string or a []byte of t); on an error the
// input is left where it was.
func chargedStrBytes(s *decState, t reflect.Type) ([]byte, error) {
	start := s.off
	b, ok, err := strBytes(s)
	if err != nil || !ok {
		s.off = start
		if err == nil {
			err = fmt.Errorf("%w: %s for %s", ErrType, kindOf(s.b[s.off]), t)
		}
		return nil, err
	}
	if err := s.chargeN(allocSize(int64(len(b))), "a %d-byte %s", len(b), t); err != nil {
		s.off = start
		return nil, err
	}
	return b, nil
}

// readString reads a str or bin value as a string: straight from the
// input (one allocation, charged) with a decoder of this package.
func readString(dec *msgpack.Decoder, s *decState, t reflect.Type) (string, error) {
	if s == nil {
		str, err := dec.DecodeString()
		return str, wrapErr(err)
	}
	b, err := chargedStrBytes(s, t)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// readBytes is readString for a []byte (a copy: decoded values never
// alias the input).
func readBytes(dec *msgpack.Decoder, s *decState, t reflect.Type) ([]byte, error) {
	if s == nil {
		b, err := dec.DecodeBytes()
		return b, wrapErr(err)
	}
	b, err := chargedStrBytes(s, t)
	if err != nil {
		return nil, err
	}
	return append(make([]byte, 0, len(b)), b...), nil
}

// DecodeString decodes the next value of dec, a str or bin, as a string.
// With a decoder from NewDecoder it reads it straight from the input,
// charged to its budget; with any other, through msgpack v5.
func DecodeString(dec *msgpack.Decoder) (string, error) {
	s := stateOf(dec)
	if s == nil {
		str, err := dec.DecodeString()
		return str, wrapErr(err)
	}
	if len(s.rest()) == 0 {
		return "", fmt.Errorf("%w: no value left", ErrTruncated)
	}
	if c := s.b[s.off]; !isStr(c) && !isBin(c) {
		return "", fmt.Errorf("%w: %s, want a string", ErrType, kindOf(c))
	}
	return readString(dec, s, stringType)
}

var stringType = reflect.TypeFor[string]()

// DecodeStringBytes decodes the next value of dec, a str or bin, and
// returns its bytes without copying them: they alias the input of dec,
// which must come from NewDecoder (or NewDecoderAccount,
// NewTrustedDecoder). Nothing is allocated or charged: for lookups
// (m[string(b)] does not allocate either).
func DecodeStringBytes(dec *msgpack.Decoder) ([]byte, error) {
	s := stateOf(dec)
	if s == nil {
		return nil, errors.New("wire: DecodeStringBytes needs a decoder of this package")
	}
	start := s.off
	b, ok, err := strBytes(s)
	if err != nil || !ok {
		s.off = start
		if err == nil {
			err = fmt.Errorf("%w: %s, want a string", ErrType, kindOf(s.b[s.off]))
		}
		return nil, err
	}
	return b, nil
}

// decodeKey decodes a map key for a string-keyed map: a string, or an
// integer written as its decimal string (JavaScript object keys are strings).
func decodeKey(dec *msgpack.Decoder, s *decState) (string, error) {
	c, err := peek(dec)
	if err != nil {
		return "", err
	}
	switch {
	case isStr(c), isBin(c):
		return readString(dec, s, stringType)
	case isFixInt(c), c >= codeInt8 && c <= codeInt64:
		if err := s.charge(allocSize(20), "a map key"); err != nil {
			return "", err
		}
		n, err := dec.DecodeInt64()
		return strconv.FormatInt(n, 10), wrapErr(err)
	case c >= codeUint8 && c <= codeUint64:
		if err := s.charge(allocSize(20), "a map key"); err != nil {
			return "", err
		}
		n, err := dec.DecodeUint64()
		return strconv.FormatUint(n, 10), wrapErr(err)
	}
	return "", fmt.Errorf("%w: %s as a map key, want a string", ErrType, kindOf(c))
}

// extBoxCost is charged for an extension value of type id decoded into
// an interface: msgpack v5 makes the value, then boxes a copy of it (the
// payload's strings and maps are charged as they are decoded).
func extBoxCost(id int8) int64 {
	var size uintptr
	switch id {
	case ExtStreamReference:
		size = unsafe.Sizeof(StreamReference{})
	case ExtReference:
		size = unsafe.Sizeof(Reference{})
	case ExtDefinition:
		size = unsafe.Sizeof(Definition{})
	case ExtTitanError:
		size = unsafe.Sizeof(TitanError{})
	case ExtJSError:
		size = unsafe.Sizeof(JSError{})
	case extTimestamp:
		size = unsafe.Sizeof(time.Time{})
	}
	return 2 * allocSize(int64(size))
}

// decodeAny decodes the next value into the Go types listed in DecodeArg.
func decodeAny(dec *msgpack.Decoder, s *decState) (any, error) {
	c, err := peek(dec)
	if err != nil {
		return nil, err
	}
	switch {
	case isFixInt(c), c >= codeInt8 && c <= codeInt64:
		n, err := dec.DecodeInt64()
		if err != nil {
			return nil, wrapErr(err)
		}
		if err := s.charge(boxCost(uint64(n)), "an integer"); err != nil {
			return nil, err
		}
		return n, nil
	case c >= codeUint8 && c <= codeUint64:
		n, err := dec.DecodeUint64()
		if err != nil {
			return nil, wrapErr(err)
		}
		if err := s.charge(boxCost(n), "an integer"); err != nil {
			return nil, err
		}
		if n <= math.MaxInt64 {
			return int64(n), nil
		}
		return n, nil
	case isStr(c):
		if err := s.charge(stringSize, "a string"); err != nil {
			return nil, err
		}
		return readString(dec, s, stringType)
	case isFixMap(c), c == codeMap16, c == codeMap32:
		n, err := dec.DecodeMapLen()
		if err != nil {
			return nil, wrapErr(err)
		}
		if err := s.checkCount(2 * n); err != nil {
			return nil, err
		}
		if err := s.chargeN(mapCost(n, stringSize, ifaceSize), "a %d-entry %s", n, mapAnyType); err != nil {
			return nil, err
		}
		m := make(map[string]any, n)
		for range n {
			k, err := decodeKey(dec, s)
			if err != nil {
				return nil, err
			}
			if m[k], err = decodeAny(dec, s); err != nil {
				return nil, err
			}
		}
		return m, nil
	case isFixArray(c), c == codeArray16, c == codeArray32:
		n, err := dec.DecodeArrayLen()
		if err != nil {
			return nil, wrapErr(err)
		}
		if err := s.checkCount(n); err != nil {
			return nil, err
		}
		if err := s.chargeN(sliceSize+sliceCost(n, ifaceSize), "a %d-element %s", n, sliceAnyType); err != nil {
			return nil, err
		}
		a := make([]any, n)
		for i := range a {
			if a[i], err = decodeAny(dec, s); err != nil {
				return nil, err
			}
		}
		return a, nil
	case isBin(c):
		if err := s.charge(sliceSize, "bytes"); err != nil {
			return nil, err
		}
		return readBytes(dec, s, reflect.TypeFor[[]byte]())
	case isExt(c):
		if s != nil {
			id, ok := extTypeAt(s.rest())
			if ok && !knownExt(id) {
				return nil, fmt.Errorf("%w: %d", ErrUnknownExt, id)
			}
			if err := s.charge(extBoxCost(id), "an extension value"); err != nil {
				return nil, err
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
		if err != nil {
			return nil, wrapErr(err)
		}
		if err := s.charge(boxCost(math.Float64bits(f)), "a number"); err != nil {
			return nil, err
		}
		return f, nil
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

// SkipArg skips the next value of dec without allocating (msgpack v5's
// Skip reads a string into a new buffer to skip it). dec must come from
// NewDecoder.
func SkipArg(dec *msgpack.Decoder) error {
	s := stateOf(dec)
	if s == nil {
		return wrapErr(dec.Skip())
	}
	return skipNext(dec, s)
}

// NextExt reports the extension type of the next value of dec, when it is
// an extension (dec must come from NewDecoder).
func NextExt(dec *msgpack.Decoder) (int8, bool) {
	s := stateOf(dec)
	if s == nil {
		return 0, false
	}
	return extTypeAt(s.rest())
}
