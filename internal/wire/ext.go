package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

// The extension types are registered with msgpack v5 for their value types
// (Definition, not *Definition): encoding a value or a pointer writes Titan's
// bytes (a nil pointer is msgpack nil), decoding into a typed field or
// variable of either type works, and decoding into an interface yields the
// value type (wire.Definition, wire.TitanError, wire.JSError,
// wire.StreamReference, wire.Reference, wire.Undefined).
//
// The registry is msgpack v5's global one, so plain msgpack.Marshal and
// msgpack.Unmarshal use these encoders too; this package's Marshal and
// Unmarshal add Titan's encoder settings and the input checks.
func init() {
	msgpack.RegisterExtEncoder(ExtUndefined, Undefined{}, encodeUndefined)
	msgpack.RegisterExtDecoder(ExtUndefined, Undefined{}, decodeUndefined)
	msgpack.RegisterExtEncoder(ExtStreamReference, StreamReference{}, encodeStreamReference)
	msgpack.RegisterExtDecoder(ExtStreamReference, StreamReference{}, decodeStreamReference)
	msgpack.RegisterExtEncoder(ExtReference, Reference{}, encodeReference)
	msgpack.RegisterExtDecoder(ExtReference, Reference{}, decodeReference)
	msgpack.RegisterExtEncoder(ExtDefinition, Definition{}, encodeDefinition)
	msgpack.RegisterExtDecoder(ExtDefinition, Definition{}, decodeDefinition)
	msgpack.RegisterExtEncoder(ExtTitanError, TitanError{}, encodeTitanError)
	msgpack.RegisterExtDecoder(ExtTitanError, TitanError{}, decodeTitanError)
	msgpack.RegisterExtEncoder(ExtJSError, JSError{}, encodeJSError)
	msgpack.RegisterExtDecoder(ExtJSError, JSError{}, decodeJSError)

	// RegisterExtDecoder wraps a decoder so that msgpack nil panics when the
	// target is a struct (msgpack v5.4.1 calls reflect.Value.IsNil on it):
	// replace the typed decoders with ones that read nil and undefined as the
	// zero value. Decoding into an interface still goes through the ext
	// decoders registered above.
	msgpack.Register(Undefined{}, nil, typedExt(ExtUndefined, "Undefined", decodeUndefined))
	msgpack.Register(StreamReference{}, nil, typedExt(ExtStreamReference, "StreamReference", decodeStreamReference))
	msgpack.Register(Reference{}, nil, typedExt(ExtReference, "Reference", decodeReference))
	msgpack.Register(Definition{}, nil, typedExt(ExtDefinition, "Definition", decodeDefinition))
	msgpack.Register(TitanError{}, nil, typedExt(ExtTitanError, "TitanError", decodeTitanError))
	msgpack.Register(JSError{}, nil, typedExt(ExtJSError, "JSError", decodeJSError))
	// The same msgpack bug makes a nil for a time.Time field panic; decode
	// time.Time with msgpack's DecodeTime (timestamp extension, RFC 3339
	// string, legacy [sec, nsec]) and nil as the zero time.
	msgpack.Register(time.Time{}, nil, decodeTimeValue)
}

// typedExt returns the decoder for a field or variable of an extension
// type: nil and undefined store the zero value, any other extension type
// is an error.
func typedExt(id int8, name string, fn func(*msgpack.Decoder, reflect.Value, int) error) func(*msgpack.Decoder, reflect.Value) error {
	return func(d *msgpack.Decoder, v reflect.Value) error {
		c, err := d.PeekCode()
		if err != nil {
			return err
		}
		if c == codeNil {
			v.SetZero()
			return d.DecodeNil()
		}
		if !isExt(c) {
			return fmt.Errorf("%w: %s for %s", ErrType, kindOf(c), name)
		}
		got, n, err := d.DecodeExtHeader()
		if err != nil {
			return err
		}
		switch got {
		case id:
			return fn(d, v, n)
		case ExtUndefined:
			if _, err := payload(d, n, "ext 0 undefined"); err != nil {
				return err
			}
			v.SetZero()
			return nil
		}
		return fmt.Errorf("%w: extension type %d for %s (ext %d)", ErrType, got, name, id)
	}
}

func decodeTimeValue(d *msgpack.Decoder, v reflect.Value) error {
	if c, err := d.PeekCode(); err == nil && c == codeNil {
		v.SetZero()
		return d.DecodeNil()
	}
	t, err := d.DecodeTime()
	if err != nil {
		return err
	}
	v.Set(reflect.ValueOf(t))
	return nil
}

// msgpack v5's own timestamp extension, registered by msgpack itself.
const extTimestamp int8 = -1

// knownExt reports whether an extension type can be decoded into an interface.
func knownExt(id int8) bool {
	switch id {
	case ExtUndefined, ExtStreamReference, ExtReference, ExtDefinition, ExtTitanError, ExtJSError, extTimestamp:
		return true
	}
	return false
}

var extTypes = map[reflect.Type]bool{
	reflect.TypeFor[Undefined]():       true,
	reflect.TypeFor[StreamReference](): true,
	reflect.TypeFor[Reference]():       true,
	reflect.TypeFor[Definition]():      true,
	reflect.TypeFor[TitanError]():      true,
	reflect.TypeFor[JSError]():         true,
}

func isExtType(t reflect.Type) bool { return extTypes[t] }

// ---------------------------------------------------------------------------
// Appending msgpack by hand (the fixed parts of the extension payloads;
// AppendString and friends are in append.go).

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, codeTrue)
	}
	return append(b, codeFalse)
}

// appendInt appends n in its most compact msgpack form, as msgpack v5 with
// UseCompactInts and Titan do.
func appendInt(b []byte, n int64) []byte {
	switch {
	case n >= 0 && n <= math.MaxInt8:
		return append(b, byte(n))
	case n >= 0 && n <= math.MaxUint8:
		return append(b, codeUint8, byte(n))
	case n >= 0 && n <= math.MaxUint16:
		return append(b, 0xcd, byte(n>>8), byte(n))
	case n >= 0 && n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(n))
	case n >= 0:
		return binary.BigEndian.AppendUint64(append(b, codeUint64), uint64(n))
	case n >= -32:
		return append(b, byte(n))
	case n >= math.MinInt8:
		return append(b, codeInt8, byte(n))
	case n >= math.MinInt16:
		return append(b, 0xd1, byte(n>>8), byte(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, codeInt64), uint64(n))
}

// appendUint appends n in its most compact msgpack form.
func appendUint(b []byte, n uint64) []byte {
	if n <= math.MaxInt64 {
		return appendInt(b, int64(n))
	}
	return binary.BigEndian.AppendUint64(append(b, codeUint64), n)
}

func appendFloat32(b []byte, f float32) []byte {
	return binary.BigEndian.AppendUint32(append(b, codeFloat32), math.Float32bits(f))
}

func appendBin(b []byte, p []byte) []byte {
	switch n := len(p); {
	case n <= math.MaxUint8:
		b = append(b, codeBin8, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xc5, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, codeBin32), uint32(n))
	}
	return append(b, p...)
}

func appendFloat64(b []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, codeFloat64), math.Float64bits(f))
}

// appendValue appends any value with this package's encoder settings.
func appendValue(b []byte, v any) ([]byte, error) {
	s := getEnc()
	s.w.b = b
	err := s.encode(v)
	b = s.w.b
	putEnc(s)
	return b, err
}

// ---------------------------------------------------------------------------
// Encoders. Each builds the payload in a pooled scratch buffer and returns a
// copy, which msgpack v5 writes after the extension header it chooses
// (fixext1/2/4/8/16 for those lengths, else ext8/16/32, as Titan does).

var undefinedPayload = []byte{0}

func encodeUndefined(*msgpack.Encoder, reflect.Value) ([]byte, error) {
	return undefinedPayload, nil // only read by msgpack
}

// valueOf returns the T held by v without copying it when v is addressable.
func valueOf[T any](v reflect.Value) *T {
	if v.CanAddr() {
		if p, ok := v.Addr().Interface().(*T); ok {
			return p
		}
	}
	x := v.Interface().(T)
	return &x
}

func finish(s *encState, b []byte, err error) ([]byte, error) {
	var out []byte
	if err == nil {
		out = bytes.Clone(b)
	}
	s.scratch = b[:0]
	putEnc(s)
	return out, err
}

func encodeStreamReference(_ *msgpack.Encoder, v reflect.Value) ([]byte, error) {
	r := valueOf[StreamReference](v)
	s := getEnc()
	b := AppendString(s.scratch[:0], r.StreamID)
	live := byte(0)
	if r.Live {
		live = 1
	}
	b = append(b, r.Type, live)
	b = AppendString(b, r.PeerID)
	return finish(s, b, nil)
}

func encodeReference(_ *msgpack.Encoder, v reflect.Value) ([]byte, error) {
	r := valueOf[Reference](v)
	s := getEnc()
	return finish(s, AppendString(s.scratch[:0], r.DefID), nil)
}

func encodeDefinition(_ *msgpack.Encoder, v reflect.Value) ([]byte, error) {
	d := valueOf[Definition](v)
	s := getEnc()
	b := AppendString(s.scratch[:0], d.ID)
	b = AppendString(b, d.ParentID)
	b = AppendString(b, d.PeerID)
	b = appendMeta(b, &d.Meta)
	return finish(s, b, nil)
}

// appendMeta appends a ServiceMeta as Titan's 8-key map, properties and
// methods with sorted keys (Titan keeps declaration order, which Go does not
// have).
func appendMeta(b []byte, m *ServiceMeta) []byte {
	b = AppendMapHeader(b, 8)
	b = AppendString(b, "name")
	b = AppendString(b, m.Name)
	b = AppendString(b, "version")
	b = AppendString(b, m.Version)
	b = AppendString(b, "properties")
	b = AppendMapHeader(b, len(m.Properties))
	for _, name := range slices.Sorted(maps.Keys(m.Properties)) {
		p := m.Properties[name]
		b = AppendString(b, name)
		b = AppendMapHeader(b, 2)
		b = AppendString(b, "type")
		b = AppendString(b, p.Type)
		b = AppendString(b, "readonly")
		b = appendBool(b, p.Readonly)
	}
	b = AppendString(b, "methods")
	b = AppendMapHeader(b, len(m.Methods))
	for _, name := range slices.Sorted(maps.Keys(m.Methods)) {
		mm := m.Methods[name]
		b = AppendString(b, name)
		if mm.Idempotent {
			b = AppendMapHeader(b, 3)
		} else {
			b = AppendMapHeader(b, 2)
		}
		b = AppendString(b, "type")
		b = AppendString(b, mm.Type)
		b = AppendString(b, "arguments")
		b = AppendArrayHeader(b, len(mm.Arguments))
		for _, a := range mm.Arguments {
			b = AppendMapHeader(b, 2)
			b = AppendString(b, "index")
			b = appendInt(b, int64(a.Index))
			b = AppendString(b, "type")
			b = AppendString(b, a.Type)
		}
		if mm.Idempotent {
			b = AppendString(b, "idempotent")
			b = appendBool(b, true)
		}
	}
	for _, k := range [...]string{"contract", "transports", "_transports", "transportConfig"} {
		b = AppendString(b, k)
		b = AppendUndefined(b)
	}
	return b
}

func encodeTitanError(_ *msgpack.Encoder, v reflect.Value) ([]byte, error) {
	e := valueOf[TitanError](v)
	s := getEnc()
	b, err := appendTitanError(s.scratch[:0], e)
	return finish(s, b, err)
}

func appendTitanError(b []byte, e *TitanError) ([]byte, error) {
	b = AppendString(b, e.Name)
	b = appendInt(b, int64(e.Code))
	b = AppendString(b, e.Message)
	var err error
	for _, m := range [...]map[string]any{e.Details, e.Context} {
		if m == nil {
			b = AppendMapHeader(b, 0)
		} else if b, err = appendValue(b, m); err != nil {
			return b, err
		}
	}
	b = appendFloat64(b, e.Timestamp)
	for _, id := range [...]string{e.RequestID, e.CorrelationID, e.SpanID, e.TraceID} {
		if id == "" {
			b = AppendUndefined(b)
		} else {
			b = AppendString(b, id)
		}
	}
	if e.Stack == "" {
		b = AppendNil(b)
	} else {
		b = AppendString(b, e.Stack)
	}
	switch c := e.Cause.(type) {
	case nil:
		b = AppendNil(b)
	case error:
		// A Go error has no msgpack form of its own; send it as a JS Error
		// so a Titan peer sees an Error cause.
		b, err = appendValue(b, JSError{Kind: JSKindError, Name: "Error", Message: c.Error()})
	default:
		b, err = appendValue(b, c)
	}
	if err != nil {
		return b, err
	}
	if e.Extras == nil {
		b = AppendNil(b)
	} else if b, err = appendValue(b, e.Extras); err != nil {
		return b, err
	}
	return b, nil
}

func encodeJSError(_ *msgpack.Encoder, v reflect.Value) ([]byte, error) {
	e := valueOf[JSError](v)
	if len(e.Fields) > math.MaxUint16 {
		return nil, fmt.Errorf("wire: JSError with %d custom fields, at most %d fit", len(e.Fields), math.MaxUint16)
	}
	s := getEnc()
	kind := e.Kind
	if kind == 0 {
		kind = JSKindError
	}
	b := binary.BigEndian.AppendUint16(s.scratch[:0], kind)
	b = AppendString(b, e.Name)
	b = AppendString(b, e.Stack)
	b = AppendString(b, e.Message)
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.Fields)))
	var err error
	for _, k := range slices.Sorted(maps.Keys(e.Fields)) {
		b = AppendString(b, k)
		if b, err = appendValue(b, e.Fields[k]); err != nil {
			break
		}
	}
	return finish(s, b, err)
}

// ---------------------------------------------------------------------------
// Decoders.

// payload takes the extLen bytes of an extension payload from d. With a
// decoder of this package it slices them out of the input after checking
// that they are there; with any other decoder it reads them, growing the
// buffer only as bytes really arrive.
func payload(d *msgpack.Decoder, extLen int, ext string) (cursor, error) {
	c := cursor{ext: ext}
	if s := stateOf(d); s != nil {
		if extLen < 0 || extLen > len(s.b)-s.off {
			return c, fmt.Errorf("%w: %s payload of %d bytes, %d left", ErrTruncated, ext, extLen, len(s.b)-s.off)
		}
		c.b = s.b[s.off : s.off+extLen : s.off+extLen]
		c.bud = s.bud
		c.depth = s.depth + 1
		s.off += extLen
	} else {
		var buf bytes.Buffer
		n, err := buf.ReadFrom(io.LimitReader(d.Buffered(), int64(extLen)))
		if err != nil || n != int64(extLen) {
			return c, fmt.Errorf("%w: %s payload of %d bytes, got %d", ErrTruncated, ext, extLen, n)
		}
		c.b = buf.Bytes()
		c.depth = 1
	}
	if c.depth > MaxDepth {
		return c, fmt.Errorf("%w: %s", ErrTooDeep, ext)
	}
	return c, nil
}

// store sets v, the value msgpack decodes into (always of type T), to x.
func store[T any](v reflect.Value, x *T) {
	if v.CanAddr() {
		if p, ok := v.Addr().Interface().(*T); ok {
			*p = *x
			return
		}
	}
	v.Set(reflect.ValueOf(*x))
}

func decodeUndefined(d *msgpack.Decoder, v reflect.Value, extLen int) error {
	// Titan writes one 0 byte; the payload carries nothing, so any is accepted.
	if _, err := payload(d, extLen, "ext 0 undefined"); err != nil {
		return err
	}
	v.SetZero()
	return nil
}

func decodeStreamReference(d *msgpack.Decoder, v reflect.Value, extLen int) error {
	c, err := payload(d, extLen, "ext 107 StreamReference")
	if err != nil {
		return err
	}
	var r StreamReference
	if r.StreamID, err = c.id("streamId"); err != nil {
		return err
	}
	if r.Type, err = c.u8("type"); err != nil {
		return err
	}
	live, err := c.u8("isLive")
	if err != nil {
		return err
	}
	r.Live = live != 0
	if r.PeerID, err = c.str("peerId"); err != nil {
		return err
	}
	if err := c.end(); err != nil {
		return err
	}
	store(v, &r)
	return nil
}

func decodeReference(d *msgpack.Decoder, v reflect.Value, extLen int) error {
	c, err := payload(d, extLen, "ext 108 Reference")
	if err != nil {
		return err
	}
	var r Reference
	if r.DefID, err = c.str("defId"); err != nil {
		return err
	}
	if err := c.end(); err != nil {
		return err
	}
	store(v, &r)
	return nil
}

func decodeDefinition(d *msgpack.Decoder, v reflect.Value, extLen int) error {
	c, err := payload(d, extLen, "ext 109 Definition")
	if err != nil {
		return err
	}
	var def Definition
	if def.ID, err = c.str("id"); err != nil {
		return err
	}
	if def.ParentID, err = c.str("parentId"); err != nil {
		return err
	}
	if def.PeerID, err = c.str("peerId"); err != nil {
		return err
	}
	if err := c.meta(&def.Meta); err != nil {
		return err
	}
	if err := c.end(); err != nil {
		return err
	}
	store(v, &def)
	return nil
}

func decodeTitanError(d *msgpack.Decoder, v reflect.Value, extLen int) error {
	c, err := payload(d, extLen, "ext 110 TitanError")
	if err != nil {
		return err
	}
	var e TitanError
	if e.Name, err = c.str("name"); err != nil {
		return err
	}
	code, err := c.int("code", math.MinInt, math.MaxInt)
	if err != nil {
		return err
	}
	e.Code = int(code)
	if e.Message, err = c.str("message"); err != nil {
		return err
	}
	if e.Details, err = c.mapAny("details", true); err != nil {
		return err
	}
	if e.Context, err = c.mapAny("context", true); err != nil {
		return err
	}
	if e.Timestamp, err = c.float("timestamp"); err != nil {
		return err
	}
	for _, f := range [...]struct {
		name string
		dst  *string
	}{{"requestId", &e.RequestID}, {"correlationId", &e.CorrelationID}, {"spanId", &e.SpanID}, {"traceId", &e.TraceID}, {"stack", &e.Stack}} {
		if *f.dst, err = c.str(f.name); err != nil {
			return err
		}
	}
	if e.Cause, err = c.any("cause"); err != nil {
		return err
	}
	if _, ok := e.Cause.(Undefined); ok {
		e.Cause = nil
	}
	if e.Extras, err = c.mapAny("extras", false); err != nil {
		return err
	}
	if err := c.end(); err != nil {
		return err
	}
	store(v, &e)
	return nil
}

func decodeJSError(d *msgpack.Decoder, v reflect.Value, extLen int) error {
	c, err := payload(d, extLen, "ext 126 Error")
	if err != nil {
		return err
	}
	var e JSError
	if e.Kind, err = c.u16("stdErrorId"); err != nil {
		return err
	}
	if e.Name, err = c.str("name"); err != nil {
		return err
	}
	if e.Stack, err = c.str("stack"); err != nil {
		return err
	}
	if e.Message, err = c.str("message"); err != nil {
		return err
	}
	n, err := c.u16("customFieldCount")
	if err != nil {
		return err
	}
	if int(n)*2 > c.left() {
		return fmt.Errorf("%w: %s: %d custom fields announced, %d bytes left", ErrTruncated, c.ext, n, c.left())
	}
	if n > 0 {
		if err := c.charge(mapCost(int(n), stringSize, ifaceSize), "custom fields"); err != nil {
			return err
		}
		e.Fields = make(map[string]any, n)
	}
	for range n {
		k, err := c.key("custom fields")
		if err != nil {
			return err
		}
		if e.Fields[k], err = c.any(k); err != nil {
			return err
		}
	}
	if err := c.end(); err != nil {
		return err
	}
	store(v, &e)
	return nil
}

// ---------------------------------------------------------------------------
// cursor reads the fields of an extension payload. Every length it reads is
// checked against the bytes left; values of any type are checked with skip
// (MaxDepth counted from the payload's own depth) before msgpack decodes them.

type cursor struct {
	b     []byte
	off   int
	depth int
	bud   *budget // the decoder's; nil for decoders not of this package
	ext   string  // "ext 109 Definition", for errors
	// The method or property being read, for errors: kept apart so that no
	// field name is built unless there is an error to report.
	scopeKind, scopeName string
}

// where names the place of an error: the extension, the method or
// property being read, and the field.
func (c *cursor) where(field string) string {
	if c.scopeKind == "" {
		return fmt.Sprintf("%s: field %q", c.ext, field)
	}
	return fmt.Sprintf("%s: %s %q: field %q", c.ext, c.scopeKind, c.scopeName, field)
}

func (c *cursor) left() int { return len(c.b) - c.off }

func (c *cursor) truncated(field string) error {
	return fmt.Errorf("%w: %s", ErrTruncated, c.where(field))
}

func (c *cursor) bad(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrBadExt, c.where(field), fmt.Sprintf(format, args...))
}

func (c *cursor) peek(field string) (byte, error) {
	if c.off >= len(c.b) {
		return 0, c.truncated(field)
	}
	return c.b[c.off], nil
}

func (c *cursor) u8(field string) (uint8, error) {
	if c.left() < 1 {
		return 0, c.truncated(field)
	}
	c.off++
	return c.b[c.off-1], nil
}

func (c *cursor) u16(field string) (uint16, error) {
	if c.left() < 2 {
		return 0, c.truncated(field)
	}
	c.off += 2
	return binary.BigEndian.Uint16(c.b[c.off-2:]), nil
}

// absent consumes a nil or an undefined and reports whether it did.
func (c *cursor) absent() bool {
	if c.off >= len(c.b) {
		return false
	}
	if c.b[c.off] == codeNil {
		c.off++
		return true
	}
	if c.left() >= 3 && c.b[c.off] == codeFixExt1 && c.b[c.off+1] == byte(ExtUndefined) {
		c.off += 3
		return true
	}
	return false
}

// length reads the length that follows a str, bin, array or map code of
// w bytes (w = 0 for the fix formats, whose length is in the code).
func (c *cursor) length(field string, w int) (int, error) {
	if c.left() < 1+w {
		return 0, c.truncated(field)
	}
	p := c.b[c.off+1:]
	var n int
	switch w {
	case 1:
		n = int(p[0])
	case 2:
		n = int(binary.BigEndian.Uint16(p))
	case 4:
		n = int(binary.BigEndian.Uint32(p))
	}
	c.off += 1 + w
	if n < 0 {
		return 0, c.truncated(field)
	}
	return n, nil
}

// str reads a string (or a bin, read as a string). nil and undefined read
// as "", as Titan leaves optional strings undefined.
func (c *cursor) str(field string) (string, error) {
	code, err := c.peek(field)
	if err != nil {
		return "", err
	}
	if c.absent() {
		return "", nil
	}
	var n int
	switch {
	case isFixStr(code):
		n, c.off = int(code&0x1f), c.off+1
	case code == codeStr8, code == codeBin8:
		n, err = c.length(field, 1)
	case code == 0xda, code == 0xc5:
		n, err = c.length(field, 2)
	case code == codeStr32, code == codeBin32:
		n, err = c.length(field, 4)
	default:
		return "", c.bad(field, "%s, want a string", kindOf(code))
	}
	if err != nil {
		return "", err
	}
	if n > c.left() {
		return "", c.truncated(field)
	}
	if err := c.charge(allocSize(int64(n)), field); err != nil {
		return "", err
	}
	c.off += n
	return string(c.b[c.off-n : c.off]), nil
}

// charge takes n bytes from the decode budget, for field.
func (c *cursor) charge(n int64, field string) error {
	if c.bud == nil || c.bud.take(n) {
		return nil
	}
	return fmt.Errorf("%s: %w", c.where(field), c.bud.exceeded(n, "the value"))
}

// key reads a map key: a string, or an integer as its decimal string.
func (c *cursor) key(field string) (string, error) {
	code, err := c.peek(field)
	if err != nil {
		return "", err
	}
	if isStr(code) || isBin(code) {
		return c.str(field)
	}
	n, err := c.number(field)
	if err != nil {
		return "", c.bad(field, "%s, want a string key", kindOf(code))
	}
	if n.kind == 'f' {
		return "", c.bad(field, "float %s as a key", n)
	}
	if err := c.charge(allocSize(20), field); err != nil {
		return "", err
	}
	return n.String(), nil
}

// id reads StreamReference's stream id: a string as Titan writes it, or a
// number as an older or sloppier peer may.
func (c *cursor) id(field string) (string, error) {
	code, err := c.peek(field)
	if err != nil {
		return "", err
	}
	if isStr(code) || isBin(code) || code == codeNil || code == codeFixExt1 {
		return c.str(field)
	}
	n, err := c.number(field)
	if err != nil {
		return "", err
	}
	if n.kind == 'f' {
		if n.f != math.Trunc(n.f) || math.Abs(n.f) >= 1<<53 {
			return "", c.bad(field, "stream id %s is not an integer", n)
		}
		return strconv.FormatInt(int64(n.f), 10), nil
	}
	return n.String(), nil
}

// number reads a msgpack integer or float.
func (c *cursor) number(field string) (number, error) {
	var n number
	code, err := c.peek(field)
	if err != nil {
		return n, err
	}
	p := c.b[c.off+1:]
	w := 0
	switch {
	case isFixInt(code):
		n.kind, n.i = 'i', int64(int8(code))
	case code >= codeUint8 && code <= codeUint64:
		w = 1 << (code - codeUint8)
		if len(p) < w {
			return n, c.truncated(field)
		}
		n.kind = 'u'
		switch w {
		case 1:
			n.u = uint64(p[0])
		case 2:
			n.u = uint64(binary.BigEndian.Uint16(p))
		case 4:
			n.u = uint64(binary.BigEndian.Uint32(p))
		default:
			n.u = binary.BigEndian.Uint64(p)
		}
		if n.u <= math.MaxInt64 {
			n.kind, n.i = 'i', int64(n.u)
		}
	case code >= codeInt8 && code <= codeInt64:
		w = 1 << (code - codeInt8)
		if len(p) < w {
			return n, c.truncated(field)
		}
		n.kind = 'i'
		switch w {
		case 1:
			n.i = int64(int8(p[0]))
		case 2:
			n.i = int64(int16(binary.BigEndian.Uint16(p)))
		case 4:
			n.i = int64(int32(binary.BigEndian.Uint32(p)))
		default:
			n.i = int64(binary.BigEndian.Uint64(p))
		}
	case code == codeFloat32:
		w = 4
		if len(p) < w {
			return n, c.truncated(field)
		}
		n.kind, n.f = 'f', float64(math.Float32frombits(binary.BigEndian.Uint32(p)))
	case code == codeFloat64:
		w = 8
		if len(p) < w {
			return n, c.truncated(field)
		}
		n.kind, n.f = 'f', math.Float64frombits(binary.BigEndian.Uint64(p))
	default:
		return n, c.bad(field, "%s, want a number", kindOf(code))
	}
	c.off += 1 + w
	return n, nil
}

// int reads an integer in [lo, hi]; an integral float is accepted, nil and
// undefined read as 0.
func (c *cursor) int(field string, lo, hi int64) (int64, error) {
	if c.absent() {
		return 0, nil
	}
	n, err := c.number(field)
	if err != nil {
		return 0, err
	}
	var i int64
	switch n.kind {
	case 'i':
		i = n.i
	case 'u':
		return 0, c.bad(field, "%s out of range", n)
	default:
		if n.f != math.Trunc(n.f) || n.f < -two63 || n.f >= two63 {
			return 0, c.bad(field, "%s is not an integer", n)
		}
		i = int64(n.f)
	}
	if i < lo || i > hi {
		return 0, c.bad(field, "%d out of range", i)
	}
	return i, nil
}

// float reads any number as a float64; nil and undefined read as 0.
func (c *cursor) float(field string) (float64, error) {
	if c.absent() {
		return 0, nil
	}
	n, err := c.number(field)
	switch n.kind {
	case 'i':
		return float64(n.i), err
	case 'u':
		return float64(n.u), err
	}
	return n.f, err
}

// bool reads a bool; nil and undefined read as false.
func (c *cursor) bool(field string) (bool, error) {
	code, err := c.peek(field)
	if err != nil {
		return false, err
	}
	switch {
	case c.absent():
		return false, nil
	case code == codeTrue || code == codeFalse:
		c.off++
		return code == codeTrue, nil
	}
	return false, c.bad(field, "%s, want a bool", kindOf(code))
}

// mapLen reads a map header; nil and undefined read as -1. The count is
// checked against the bytes left (a key and a value take two at least).
func (c *cursor) mapLen(field string) (int, error) {
	code, err := c.peek(field)
	if err != nil {
		return 0, err
	}
	if c.absent() {
		return -1, nil
	}
	var n int
	switch {
	case isFixMap(code):
		n, c.off = int(code&0x0f), c.off+1
	case code == codeMap16:
		n, err = c.length(field, 2)
	case code == codeMap32:
		n, err = c.length(field, 4)
	default:
		return 0, c.bad(field, "%s, want a map", kindOf(code))
	}
	if err != nil {
		return 0, err
	}
	if n > c.left()/2 {
		return 0, fmt.Errorf("%w: %s: %d entries announced, %d bytes left", ErrTruncated, c.where(field), n, c.left())
	}
	return n, nil
}

// arrayLen reads an array header; nil and undefined read as -1.
func (c *cursor) arrayLen(field string) (int, error) {
	code, err := c.peek(field)
	if err != nil {
		return 0, err
	}
	if c.absent() {
		return -1, nil
	}
	var n int
	switch {
	case isFixArray(code):
		n, c.off = int(code&0x0f), c.off+1
	case code == codeArray16:
		n, err = c.length(field, 2)
	case code == codeArray32:
		n, err = c.length(field, 4)
	default:
		return 0, c.bad(field, "%s, want an array", kindOf(code))
	}
	if err != nil {
		return 0, err
	}
	if n > c.left() {
		return 0, fmt.Errorf("%w: %s: %d elements announced, %d bytes left", ErrTruncated, c.where(field), n, c.left())
	}
	return n, nil
}

// skip skips one value, checking it.
func (c *cursor) skip(field string) error {
	end, err := skip(c.b, c.off, c.depth)
	if err != nil {
		return fmt.Errorf("%s: %w", c.where(field), err)
	}
	c.off = end
	return nil
}

// any decodes one value of any type (see DecodeArg for the Go types).
func (c *cursor) any(field string) (any, error) {
	end, err := skip(c.b, c.off, c.depth)
	if err != nil {
		return nil, locate(err, "%s", c.where(field))
	}
	s := getDecIn(c.b[c.off:end], c.depth, c.bud)
	x, err := decodeAny(s.dec, s)
	putDec(s)
	if err != nil {
		return nil, locate(err, "%s", c.where(field))
	}
	c.off = end
	return x, nil
}

// mapAny decodes a map (or nil / undefined, read as nil). With emptyAsNil an
// empty map reads as nil too.
func (c *cursor) mapAny(field string, emptyAsNil bool) (map[string]any, error) {
	code, err := c.peek(field)
	if err != nil {
		return nil, err
	}
	if c.absent() {
		return nil, nil
	}
	if !isFixMap(code) && code != codeMap16 && code != codeMap32 {
		return nil, c.bad(field, "%s, want a map", kindOf(code))
	}
	x, err := c.any(field)
	if err != nil {
		return nil, err
	}
	m := x.(map[string]any)
	if emptyAsNil && len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// end accepts what is left of the payload if it is a run of well-formed
// values: fields a newer Titan may append.
func (c *cursor) end() error {
	for c.off < len(c.b) {
		if err := c.skip("(after the last field)"); err != nil {
			return err
		}
	}
	return nil
}

// meta reads a Definition's meta map. Unknown keys (contract, transports,
// _transports, transportConfig and whatever Titan adds) are skipped.
func (c *cursor) meta(m *ServiceMeta) error {
	n, err := c.mapLen("meta")
	if err != nil {
		return err
	}
	for range n {
		k, err := c.key("meta")
		if err != nil {
			return err
		}
		switch k {
		case "name":
			m.Name, err = c.str("name")
		case "version":
			m.Version, err = c.str("version")
		case "properties":
			err = c.properties(m)
		case "methods":
			err = c.methods(m)
		default:
			err = c.skip(k)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *cursor) properties(m *ServiceMeta) (err error) {
	m.Properties, err = namedMaps(c, "properties", "property", func(p *PropertyMeta, k string) (err error) {
		switch k {
		case "type":
			p.Type, err = c.str(k)
		case "readonly":
			p.Readonly, err = c.bool(k)
		default:
			err = c.skip(k)
		}
		return err
	})
	return err
}

func (c *cursor) methods(m *ServiceMeta) (err error) {
	m.Methods, err = namedMaps(c, "methods", "method", func(mm *MethodMeta, k string) (err error) {
		switch k {
		case "type":
			mm.Type, err = c.str(k)
		case "arguments":
			mm.Arguments, err = c.arguments()
		case "idempotent":
			mm.Idempotent, err = c.bool(k)
		default:
			err = c.skip(k)
		}
		return err
	})
	return err
}

// namedMaps decodes a map of name → map of fields (meta.properties,
// meta.methods) into a map of T, calling field for each field key of each
// entry. An empty map decodes as nil.
func namedMaps[T any](c *cursor, what, kind string, field func(v *T, k string) error) (map[string]T, error) {
	n, err := c.mapLen(what)
	if err != nil || n <= 0 {
		return nil, err
	}
	var zero T
	if err := c.charge(mapCost(n, stringSize, int64(unsafe.Sizeof(zero))), what); err != nil {
		return nil, err
	}
	out := make(map[string]T, n)
	for range n {
		name, err := c.key(what)
		if err != nil {
			return nil, err
		}
		c.scopeKind, c.scopeName = kind, name
		var v T
		fields, err := c.mapLen("")
		if err != nil {
			return nil, err
		}
		for range fields {
			k, err := c.key("")
			if err != nil {
				return nil, err
			}
			if err := field(&v, k); err != nil {
				return nil, err
			}
		}
		out[name] = v
	}
	c.scopeKind = ""
	return out, nil
}

func (c *cursor) arguments() ([]ArgumentMeta, error) {
	n, err := c.arrayLen("arguments")
	if err != nil || n <= 0 {
		return nil, err
	}
	if err := c.charge(sliceCost(n, int64(unsafe.Sizeof(ArgumentMeta{}))), "arguments"); err != nil {
		return nil, err
	}
	args := make([]ArgumentMeta, n)
	for i := range args {
		fields, err := c.mapLen("arguments")
		if err != nil {
			return nil, err
		}
		for range fields {
			k, err := c.key("arguments")
			if err != nil {
				return nil, err
			}
			switch k {
			case "index":
				var idx int64
				idx, err = c.int("arguments.index", math.MinInt32, math.MaxInt32)
				args[i].Index = int(idx)
			case "type":
				args[i].Type, err = c.str("arguments.type")
			default:
				err = c.skip(k)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	return args, nil
}
