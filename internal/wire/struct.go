package wire

import (
	"encoding"
	"fmt"
	"reflect"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/tagparser/v2"
)

// Structs are decoded by this package, field by field with the rules of
// DecodeArg, so that their fields are charged to the decode budget like
// any other value (msgpack v5 preallocates a slice field from the count
// the peer announces). Fields are found as msgpack v5 finds them, with
// this package's settings: the msgpack tag, else the json tag, else the
// field name; "-" skips a field; unexported fields are skipped; embedded
// structs are inlined unless tagged noinline (or a field of the outer
// struct has the same name); alias:<name> adds a name; a struct with a
// field `_msgpack struct{} msgpack:",as_array"` may also come as an
// array of its fields in order. Unknown keys are skipped.

// structField is one decodable field of a struct.
type structField struct {
	name  string
	index []int
}

// structInfo is how a struct type decodes.
type structInfo struct {
	list   []*structField // in order, for the array form
	byName map[string]*structField
	// byMsgpack: a field uses msgpack's string interning, which only
	// msgpack v5 decodes: the struct is left to it.
	byMsgpack bool
}

var structInfos sync.Map // reflect.Type -> *structInfo

func structInfoOf(t reflect.Type) *structInfo {
	if v, ok := structInfos.Load(t); ok {
		return v.(*structInfo)
	}
	si := buildStructInfo(t)
	v, _ := structInfos.LoadOrStore(t, si)
	return v.(*structInfo)
}

func buildStructInfo(t reflect.Type) *structInfo {
	si := &structInfo{byName: make(map[string]*structField, t.NumField())}
	for i := range t.NumField() {
		f := t.Field(i)
		tagStr := f.Tag.Get("msgpack")
		if tagStr == "" {
			tagStr = f.Tag.Get(customStructTag)
		}
		tag := tagparser.Parse(tagStr)
		if tag.Name == "-" {
			continue
		}
		if f.PkgPath != "" && !f.Anonymous {
			continue
		}
		if tag.HasOption("intern") {
			si.byMsgpack = true
		}
		sf := &structField{name: tag.Name, index: f.Index}
		if sf.name == "" {
			sf.name = f.Name
		}
		if f.Anonymous && !tag.HasOption("noinline") {
			if tag.HasOption("inline") {
				si.inline(f.Type, sf)
				si.byName[sf.name] = sf
				continue
			}
			if si.shouldInline(f.Type, sf) {
				si.byName[sf.name] = sf
				continue
			}
		}
		si.add(sf)
		if alias, ok := tag.Options["alias"]; ok {
			si.byName[alias] = sf
		}
	}
	return si
}

func (si *structInfo) add(f *structField) {
	si.byName[f.name] = f
	si.list = append(si.list, f)
}

// inline adds the fields of the embedded struct t (or *t) that no field
// has taken already, as msgpack's inline option does.
func (si *structInfo) inline(t reflect.Type, outer *structField) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	inner := buildStructInfo(t)
	si.byMsgpack = si.byMsgpack || inner.byMsgpack
	for _, f := range inner.list {
		if _, taken := si.byName[f.name]; taken {
			continue
		}
		si.add(&structField{name: f.name, index: concatIndex(outer.index, f.index)})
	}
}

// shouldInline inlines an embedded struct without a tag when it decodes
// as a plain struct and none of its fields is shadowed, as msgpack does.
func (si *structInfo) shouldInline(t reflect.Type, outer *structField) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || byMsgpack(t) || encodesItself(t) {
		return false
	}
	inner := buildStructInfo(t)
	for _, f := range inner.list {
		if _, taken := si.byName[f.name]; taken {
			return false
		}
	}
	si.byMsgpack = si.byMsgpack || inner.byMsgpack
	for _, f := range inner.list {
		si.add(&structField{name: f.name, index: concatIndex(outer.index, f.index)})
	}
	return true
}

func concatIndex(a, b []int) []int {
	out := make([]int, 0, len(a)+len(b))
	return append(append(out, a...), b...)
}

var encoderIfaces = []reflect.Type{
	reflect.TypeFor[msgpack.CustomEncoder](),
	reflect.TypeFor[msgpack.Marshaler](),
	reflect.TypeFor[encoding.BinaryMarshaler](),
	reflect.TypeFor[encoding.TextMarshaler](),
}

// encodesItself reports whether t or *t has an encoding of its own (then
// msgpack does not inline it).
func encodesItself(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	for _, it := range encoderIfaces {
		if t.Implements(it) || pt.Implements(it) {
			return true
		}
	}
	return false
}

// decodeStruct decodes a map (by field name) or an array (the fields in
// order) into the struct v, whose fields are decoded with decodeArg.
func decodeStruct(dec *msgpack.Decoder, s *decState, v reflect.Value, c byte) error {
	t := v.Type()
	si := structInfoOf(t)
	switch {
	case isFixArray(c), c == codeArray16, c == codeArray32:
		n, err := dec.DecodeArrayLen()
		if err != nil {
			return wrapErr(err)
		}
		if n <= 0 {
			v.SetZero()
			return nil
		}
		if n != len(si.list) {
			return fmt.Errorf("%w: an array of %d values for %s, which has %d fields", ErrType, n, t, len(si.list))
		}
		for _, f := range si.list {
			fv, err := fieldAlloc(s, v, f)
			if err != nil {
				return err
			}
			if err := decodeArg(dec, fv, true); err != nil {
				return err
			}
		}
		return nil
	case isFixMap(c), c == codeMap16, c == codeMap32:
	default:
		return fmt.Errorf("%w: %s for %s", ErrType, kindOf(c), t)
	}
	n, err := dec.DecodeMapLen()
	if err != nil {
		return wrapErr(err)
	}
	for range n {
		name, err := fieldName(dec, s)
		if err != nil {
			return err
		}
		f := si.byName[string(name)] // no copy for the lookup
		if f == nil {
			if err := skipNext(dec, s); err != nil {
				return err
			}
			continue
		}
		fv, err := fieldAlloc(s, v, f)
		if err != nil {
			return err
		}
		if err := decodeArg(dec, fv, true); err != nil {
			return locate(err, "field %s", f.name)
		}
	}
	return nil
}

// fieldName reads a struct key, a string or bin, without copying it with
// a decoder of this package.
func fieldName(dec *msgpack.Decoder, s *decState) ([]byte, error) {
	if s != nil {
		b, ok, err := strBytes(s)
		if ok || err != nil {
			return b, err
		}
		c, _ := peek(dec)
		return nil, fmt.Errorf("%w: %s as a struct field name, want a string", ErrType, kindOf(c))
	}
	name, err := dec.DecodeString()
	return []byte(name), wrapErr(err)
}

// fieldAlloc returns the field f of the struct v, allocating the embedded
// struct pointers on its path (charged).
func fieldAlloc(s *decState, v reflect.Value, f *structField) (reflect.Value, error) {
	if len(f.index) == 1 {
		return settable(v.Field(f.index[0]))
	}
	for i, x := range f.index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				if !v.CanSet() {
					return v, fmt.Errorf("%w: cannot set the embedded %s (unexported)", ErrType, v.Type())
				}
				if err := s.charge(newCost(v.Type().Elem()), v.Type().String()); err != nil {
					return v, err
				}
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return settable(v)
}

func settable(v reflect.Value) (reflect.Value, error) {
	if !v.CanSet() {
		return v, fmt.Errorf("%w: cannot set a field of type %s (unexported)", ErrType, v.Type())
	}
	return v, nil
}

// skipNext skips the next value.
func skipNext(dec *msgpack.Decoder, s *decState) error {
	if s == nil {
		return wrapErr(dec.Skip())
	}
	end, err := skip(s.b, s.off, s.depth)
	if err != nil {
		return err
	}
	s.off = end
	return nil
}
