package wire

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// extValues are canonical values of every extension type: each decodes to
// itself after encoding (empty collections are nil, Kind is set).
func extValues() []any {
	return []any{
		Undefined{},
		StreamReference{StreamID: "42", Type: 1, Live: true, PeerID: "peer-a"},
		StreamReference{StreamID: "", Type: 0, Live: false, PeerID: ""},
		Reference{DefID: "01a21b02-7d17-7a1e-b886-6ca282306fc1"},
		Reference{},
		calcDef,
		propsDef,
		Definition{ID: "child", ParentID: "parent", PeerID: "p", Meta: ServiceMeta{Name: "n", Version: "2.0.0"}},
		Definition{ID: "i", PeerID: "p", Meta: ServiceMeta{Name: "n", Version: "1.0.0", Methods: map[string]MethodMeta{
			"get": {Type: "Number", Arguments: []ArgumentMeta{{Index: 0, Type: "String"}}, Idempotent: true},
			"put": {Type: "undefined"},
		}}},
		Definition{},
		TitanError{
			Name: "TitanError", Code: 409, Message: "version conflict",
			Details:   map[string]any{"expected": int64(3), "actual": int64(5)},
			Context:   map[string]any{"op": "save"},
			Timestamp: 1795749471750.5, RequestID: "req-1", CorrelationID: "corr-1", SpanID: "span-1", TraceID: "trace-1",
			Stack: "TitanError: version conflict\n    at x", Cause: JSError{Kind: JSKindTypeError, Name: "TypeError", Message: "boom"},
			Extras: map[string]any{},
		},
		TitanError{Name: "TitanError", Code: -1, Cause: TitanError{Name: "Inner", Code: 500, Cause: "a string cause"}},
		TitanError{},
		JSError{Kind: JSKindRangeError, Name: "RangeError", Stack: "RangeError: x", Message: "x"},
		JSError{Kind: JSKindError, Name: "CustomError", Fields: map[string]any{
			"code": "E_X", "n": int64(-3), "list": []any{true, nil, 2.5, Undefined{}}, "ref": Reference{DefID: "d"},
		}},
	}
}

func TestExtRoundTrip(t *testing.T) {
	for i, x := range extValues() {
		t.Run(fmt.Sprintf("%d_%T", i, x), func(t *testing.T) {
			b, err := Marshal(x)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			// A pointer encodes the same way.
			p := reflect.New(reflect.TypeOf(x))
			p.Elem().Set(reflect.ValueOf(x))
			bp, err := Marshal(p.Interface())
			if err != nil || !bytes.Equal(bp, b) {
				t.Errorf("Marshal(&x) = %x, %v; want %x", bp, err, b)
			}
			// Plain msgpack uses the registered encoders too.
			if bm, err := msgpack.Marshal(x); err != nil || !bytes.Equal(bm, b) {
				t.Errorf("msgpack.Marshal = %x, %v; want %x", bm, err, b)
			}

			// Into an interface: the value type.
			var got any
			if err := Unmarshal(b, &got); err != nil {
				t.Fatalf("Unmarshal into any: %v", err)
			}
			if !reflect.DeepEqual(got, x) {
				t.Errorf("Unmarshal into any = %#v\n                    want %#v", got, x)
			}
			// Into the typed value and a pointer to it.
			typed := reflect.New(reflect.TypeOf(x))
			if err := Unmarshal(b, typed.Interface()); err != nil {
				t.Fatalf("Unmarshal into %T: %v", typed.Interface(), err)
			}
			if !reflect.DeepEqual(typed.Elem().Interface(), x) {
				t.Errorf("Unmarshal into %T = %#v", typed.Interface(), typed.Elem().Interface())
			}
			ptr := reflect.New(typed.Type())
			if err := Unmarshal(b, ptr.Interface()); err != nil {
				t.Fatalf("Unmarshal into %T: %v", ptr.Interface(), err)
			}
			if !reflect.DeepEqual(ptr.Elem().Elem().Interface(), x) {
				t.Errorf("Unmarshal into %T = %#v", ptr.Interface(), ptr.Elem().Elem().Interface())
			}
			// Plain msgpack decoders (no direct access to the input) too.
			var viaMsgpack any
			if err := msgpack.Unmarshal(b, &viaMsgpack); err != nil {
				t.Fatalf("msgpack.Unmarshal: %v", err)
			}
			if !reflect.DeepEqual(viaMsgpack, got) {
				t.Errorf("msgpack.Unmarshal = %#v, want %#v", viaMsgpack, got)
			}
			// Re-encoding the decoded value gives the same bytes.
			if b2, err := Marshal(got); err != nil || !bytes.Equal(b2, b) {
				t.Errorf("re-encoded = %x, %v; want %x", b2, err, b)
			}
		})
	}
}

// envelope carries extension values in typed fields, by value and by pointer.
type envelope struct {
	Def     Definition       `msgpack:"def"`
	DefPtr  *Definition      `msgpack:"defPtr"`
	Err     *TitanError      `msgpack:"err"`
	JSErr   JSError          `msgpack:"jsErr"`
	Stream  *StreamReference `msgpack:"stream"`
	Ref     Reference        `msgpack:"ref"`
	Undef   Undefined        `msgpack:"undef"`
	Any     any              `msgpack:"any"`
	Missing *Reference       `msgpack:"missing"`
}

func TestExtInStructFields(t *testing.T) {
	in := envelope{
		Def:    calcDef,
		DefPtr: &propsDef,
		Err:    &TitanError{Name: "TitanError", Code: 404, Message: "nope"},
		JSErr:  JSError{Kind: JSKindError, Name: "Error", Message: "m"},
		Stream: &StreamReference{StreamID: "3", Type: 1, Live: true, PeerID: "x"},
		Ref:    Reference{DefID: "r"},
		Any:    Definition{ID: "any"},
	}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out envelope
	if err := Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Errorf("round trip:\n got %#v\nwant %#v", out, in)
	}
	// The nil pointer is msgpack nil.
	if !bytes.Contains(b, append([]byte("\xa7missing"), 0xc0)) {
		t.Errorf("nil *Reference not encoded as nil: %x", b)
	}
}

func TestExtEncodingDetails(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"undefined is fixext1 type 0", Undefined{}, "d40000"},
		{"nil *Definition is nil", (*Definition)(nil), "c0"},
		{"JSError kind 0 is written as 1 (Error); an 8-byte payload is fixext8", JSError{Name: "E"}, "d77e0001a145a0a00000"},
		{"Reference with a long id uses str8", Reference{DefID: "0123456789012345678901234567890123"}, "c7246cd92230313233343536373839303132333435363738393031323334353637383930313233"},
		{"StreamReference not live, readable", StreamReference{StreamID: "9", PeerID: "p"}, "c7066ba1390000a170"},
		{"TitanError with a Go error as cause: sent as a JS Error",
			TitanError{Name: "T", Cause: errors.New("io")},
			"c72e6ea15400a08080cb0000000000000000d40000d40000d40000d40000c0c70e7e0001a54572726f72a0a2696f0000c0"},
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
}

// x wraps a hex payload in the smallest extension header, as Titan does.
func x(id int8, payload string) string {
	n := len(payload) / 2
	switch n {
	case 1, 2, 4, 8, 16:
		return fmt.Sprintf("%02x%02x%s", map[int]int{1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8}[n], byte(id), payload)
	}
	if n > 255 {
		panic("x: payload too long for a test")
	}
	return fmt.Sprintf("c7%02x%02x%s", n, byte(id), payload)
}

func TestExtDecodeLenient(t *testing.T) {
	const undef = "d40000"
	tests := []struct {
		name string
		hex  string
		want any
	}{
		{"StreamReference with an int stream id", x(ExtStreamReference, "070100a170"), StreamReference{StreamID: "7", Type: 1, PeerID: "p"}},
		{"StreamReference with a uint32 stream id", x(ExtStreamReference, "ce000186a00101a170"), StreamReference{StreamID: "100000", Type: 1, Live: true, PeerID: "p"}},
		{"StreamReference with a float64 stream id", x(ExtStreamReference, "cb401c0000000000000101a170"), StreamReference{StreamID: "7", Type: 1, Live: true, PeerID: "p"}},
		{"StreamReference with an undefined peer id", x(ExtStreamReference, "a1310101"+undef), StreamReference{StreamID: "1", Type: 1, Live: true}},
		{"StreamReference live byte 2 is live", x(ExtStreamReference, "a1310002c0"), StreamReference{StreamID: "1", Live: true}},
		{"Reference with an undefined id", x(ExtReference, undef), Reference{}},
		{"Reference with a bin id", x(ExtReference, "c40161"), Reference{DefID: "a"}},
		{"Reference followed by a value a newer Titan might add", x(ExtReference, "a16105"), Reference{DefID: "a"}},
		{"undefined with an odd payload byte", "d40007", Undefined{}},
		{"undefined as ext8 of length 0", "c70000", Undefined{}},
		{"Definition: undefined parentId, nil peerId, nil meta", x(ExtDefinition, "a164"+undef+"c0c0"), Definition{ID: "d"}},
		{"Definition: unknown meta keys skipped, float index, nil arguments",
			x(ExtDefinition, "a0a0a0"+"83"+"a4636f6e74"+"92c0c0"+
				"a76d6574686f647382"+
				"a16d"+"83"+"a9617267756d656e747391"+"83"+"a5696e646578"+"cb3ff0000000000000"+"a474797065a158"+"a3657874c3"+
				"a474797065a156"+"a178c3"+
				"a16e"+"81"+"a9617267756d656e7473c0"+
				"a6657874726132"+"c0"),
			Definition{Meta: ServiceMeta{Methods: map[string]MethodMeta{
				"m": {Type: "V", Arguments: []ArgumentMeta{{Index: 1, Type: "X"}}},
				"n": {},
			}}}},
		{"Definition: an idempotent method (ours; Titan has no such key)",
			x(ExtDefinition, "a0a0a0"+"81"+"a76d6574686f647381"+"a16d"+"83"+"a474797065a156"+"a9617267756d656e747390"+"aa6964656d706f74656e74c3"),
			Definition{Meta: ServiceMeta{Methods: map[string]MethodMeta{"m": {Type: "V", Idempotent: true}}}}},
		{"Definition: properties with extra keys and undefined readonly",
			x(ExtDefinition, "a0a0a0"+"81"+"aa70726f70657274696573"+"82"+"a170"+"83"+"a474797065a153"+"a8726561646f6e6c79"+undef+"a178c0"+"a171"+"c0"),
			Definition{Meta: ServiceMeta{Properties: map[string]PropertyMeta{"p": {Type: "S"}, "q": {}}}}},
		{"TitanError: code as float64, timestamp as int, undefined everywhere",
			x(ExtTitanError, "a154"+"cb4079000000000000"+undef+"c0"+undef+"cd0100"+undef+undef+undef+undef+undef+undef+undef),
			TitanError{Name: "T", Code: 400, Timestamp: 256}},
		{"JSError: integer custom field key", x(ExtJSError, "0006a0a0a0000105a176"), JSError{Kind: JSKindEvalError, Fields: map[string]any{"5": "v"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := unhex(t, tt.hex)
			var got any
			if err := Unmarshal(b, &got); err != nil {
				t.Fatalf("Unmarshal(%x): %v", b, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Unmarshal = %#v\n       want %#v", got, tt.want)
			}
		})
	}
}

// TestExtDecodeMalformed: well-formed msgpack (the ext length is right)
// whose payload is not what the extension type needs must fail with an
// error wrapping ErrMalformed, never panic, never allocate from a count.
func TestExtDecodeMalformed(t *testing.T) {
	const nilTimestamp = "cb0000000000000000"
	const methodsM = "a0a0a081a76d6574686f647381a16d81a9617267756d656e7473" // meta {methods: {m: {arguments: ...
	tests := []struct {
		name string
		hex  string
		want error
	}{
		{"Definition: id string longer than the payload", x(ExtDefinition, "a56162"), ErrTruncated},
		{"Definition: empty payload", "c7006d", ErrTruncated},
		{"Definition: id is a number", x(ExtDefinition, "05a0a080"), ErrBadExt},
		{"Definition: meta is an array", x(ExtDefinition, "a0a0a090"), ErrBadExt},
		{"Definition: meta map32 of 2^32-1 entries", x(ExtDefinition, "a0a0a0dfffffffff"), ErrTruncated},
		{"Definition: methods map16 of 65535 entries", x(ExtDefinition, "a0a0a081a76d6574686f6473deffff"), ErrTruncated},
		{"Definition: arguments array32 of 2^32-1", x(ExtDefinition, methodsM+"ddffffffff"), ErrTruncated},
		{"Definition: argument index 2.5", x(ExtDefinition, methodsM+"9181a5696e646578cb4004000000000000"), ErrBadExt},
		{"Definition: argument index out of int32", x(ExtDefinition, methodsM+"9181a5696e646578cf0000000100000000"), ErrBadExt},
		{"Definition: argument is a string", x(ExtDefinition, methodsM+"91a0"), ErrBadExt},
		{"Definition: idempotent is a string", x(ExtDefinition, methodsM[:len(methodsM)-len("a9617267756d656e7473")]+"aa6964656d706f74656e74a3796573"), ErrBadExt},
		{"Definition: readonly is a string", x(ExtDefinition, "a0a0a081aa70726f7065727469657381a17081a8726561646f6e6c79a3796573"), ErrBadExt},
		{"Definition: meta key is a map", x(ExtDefinition, "a0a0a08180c0"), ErrBadExt},
		{"Definition: trailing c1 in the payload", x(ExtDefinition, "a0a0a080c1"), ErrBadMsgpack},
		{"Definition: nesting beyond MaxDepth in a skipped meta key", x(ExtDefinition, "a0a0a081a178"+repeatHex("91", MaxDepth+1)+"c0"), ErrTooDeep},
		{"TitanError: only a name", x(ExtTitanError, "aa546974616e4572726f72"), ErrTruncated},
		{"TitanError: code is a string", x(ExtTitanError, "a154a158"), ErrBadExt},
		{"TitanError: code out of int range", x(ExtTitanError, "a154cfffffffffffffffff"), ErrBadExt},
		{"TitanError: details is an array", x(ExtTitanError, "a15401a09080"), ErrBadExt},
		{"TitanError: details map32 of 2^32-1", x(ExtTitanError, "a15401a0dfffffffff80"), ErrTruncated},
		{"TitanError: timestamp is a string", x(ExtTitanError, "a15401a08080a0"), ErrBadExt},
		{"TitanError: stack is a map", x(ExtTitanError, "a15401a08080"+nilTimestamp+"c0c0c0c080"), ErrBadExt},
		{"TitanError: extras is a string", x(ExtTitanError, "a15401a08080"+nilTimestamp+"c0c0c0c0c0c0a0"), ErrBadExt},
		{"TitanError: cause holds an unknown extension", x(ExtTitanError, "a15401a08080"+nilTimestamp+"c0c0c0c0c0d47d00c0"), ErrUnknownExt},
		{"TitanError: details with a bool key", x(ExtTitanError, "a15401a081c3c080"), ErrType},
		{"TitanError: 12 fields only", x(ExtTitanError, "a15401a08080"+nilTimestamp+"c0c0c0c0c0c0"), ErrTruncated},
		{"JSError: one byte", "d47e00", ErrTruncated},
		{"JSError: 65535 custom fields announced", x(ExtJSError, "0001a0a0a0ffff"), ErrTruncated},
		{"JSError: name is a bool", x(ExtJSError, "0001c3a0a00000"), ErrBadExt},
		{"JSError: field value cut inside the payload", x(ExtJSError, "0001a0a0a00001a16192"), ErrTruncated},
		{"JSError: str32 of 4 GiB inside", x(ExtJSError, "0001dbffffffffa0a0"), ErrTruncated},
		{"JSError: custom field key is an array", x(ExtJSError, "0001a0a0a000019001"), ErrBadExt},
		{"StreamReference: no type byte", x(ExtStreamReference, "a131"), ErrTruncated},
		{"StreamReference: no peer id", x(ExtStreamReference, "a1310101"), ErrTruncated},
		{"StreamReference: stream id is a map", x(ExtStreamReference, "800101a0"), ErrBadExt},
		{"StreamReference: stream id 2.5", x(ExtStreamReference, "cb40040000000000000101a0"), ErrBadExt},
		{"StreamReference: peer id is an array", x(ExtStreamReference, "a131010190"), ErrBadExt},
		{"Reference: empty payload", "c7006c", ErrTruncated},
		{"Reference: id is a map", x(ExtReference, "80"), ErrBadExt},
		{"unknown extension type 125 (Date)", "d77d000001977f0d6d5a", ErrUnknownExt},
		{"unknown extension type 5 in an array", "92c0d40500", ErrUnknownExt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := unhex(t, tt.hex)
			if n, err := SkipValue(b); err != nil || n != len(b) {
				t.Fatalf("test input %x is not one well-formed msgpack value: %d, %v", b, n, err)
			}
			var got any
			err := Unmarshal(b, &got)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Unmarshal(%x) = %#v, %v; want %v", b, got, err, tt.want)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%v does not wrap ErrMalformed", err)
			}
			// Typed targets and plain msgpack decoders fail too, without panicking.
			if typ, ok := extByID[b[extIDOffset(b)]]; ok {
				typed := reflect.New(typ)
				if err := Unmarshal(b, typed.Interface()); err == nil {
					t.Errorf("Unmarshal into %T succeeded", typed.Interface())
				}
				if err := msgpack.Unmarshal(b, typed.Interface()); err == nil {
					t.Errorf("msgpack.Unmarshal into %T succeeded", typed.Interface())
				}
			}
		})
	}
}

var extByID = map[byte]reflect.Type{
	byte(ExtStreamReference): reflect.TypeFor[StreamReference](),
	byte(ExtReference):       reflect.TypeFor[Reference](),
	byte(ExtDefinition):      reflect.TypeFor[Definition](),
	byte(ExtTitanError):      reflect.TypeFor[TitanError](),
	byte(ExtJSError):         reflect.TypeFor[JSError](),
}

func extIDOffset(b []byte) int {
	switch b[0] {
	case 0xc7:
		return 2
	case 0xc8:
		return 3
	case 0xc9:
		return 5
	}
	return 1
}

func repeatHex(h string, n int) string { return string(bytes.Repeat([]byte(h), n)) }

// TestExtNestingDepth: an extension inside an extension counts towards
// MaxDepth, so a chain of causes cannot recurse without bound.
func TestExtNestingDepth(t *testing.T) {
	chain := func(n int) any {
		var v any = "root cause"
		for range n {
			v = TitanError{Name: "TitanError", Code: 500, Cause: v}
		}
		return v
	}
	b, err := Marshal(chain(10))
	if err != nil {
		t.Fatal(err)
	}
	var got any
	if err := Unmarshal(b, &got); err != nil {
		t.Fatalf("10 nested causes: %v", err)
	}
	if !reflect.DeepEqual(got, chain(10)) {
		t.Errorf("10 nested causes decoded as %#v", got)
	}

	b, err = Marshal(chain(MaxDepth + 5))
	if err != nil {
		t.Fatal(err)
	}
	if err := Unmarshal(b, &got); !errors.Is(err, ErrTooDeep) {
		t.Errorf("%d nested causes: %v, want ErrTooDeep", MaxDepth+5, err)
	}
	got = nil
	if err := msgpack.Unmarshal(b, &got); !errors.Is(err, ErrTooDeep) {
		t.Errorf("%d nested causes with msgpack.Unmarshal: %v, want ErrTooDeep", MaxDepth+5, err)
	}
}

func TestJSErrorTooManyFields(t *testing.T) {
	f := make(map[string]any, 1<<16)
	for i := range 1 << 16 {
		f[fmt.Sprint(i)] = nil
	}
	if _, err := Marshal(JSError{Fields: f}); err == nil {
		t.Error("Marshal of a JSError with 65536 fields succeeded")
	}
}

// valueDecoder decodes itself with a value receiver.
type valueDecoder struct{ _ *int }

func (valueDecoder) DecodeMsgpack(d *msgpack.Decoder) error { return d.Skip() }

// TestNilIntoStructFields: msgpack v5.4.1 panics (reflect.Value.IsNil on a
// struct) when nil arrives for a struct field whose type is a registered
// extension (time.Time included) or decodes itself with a value receiver.
// Our extension types and time.Time read it as the zero value, and so do
// other such types: structs are decoded by this package.
func TestNilIntoStructFields(t *testing.T) {
	type fields struct {
		Def   Definition      `msgpack:"def"`
		Err   TitanError      `msgpack:"err"`
		JS    JSError         `msgpack:"js"`
		SR    StreamReference `msgpack:"sr"`
		Ref   Reference       `msgpack:"ref"`
		Undef Undefined       `msgpack:"undef"`
		Time  time.Time       `msgpack:"time"`
	}
	// Every field nil, then every field undefined.
	for _, v := range []any{nil, Undefined{}} {
		m := map[string]any{"def": v, "err": v, "js": v, "sr": v, "ref": v, "undef": v, "time": v}
		if _, ok := v.(Undefined); ok {
			delete(m, "time") // time.Time has no undefined
		}
		b, err := Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got := fields{Def: calcDef, Ref: Reference{DefID: "old"}, Time: time.Now()}
		if _, ok := v.(Undefined); ok {
			got.Time = time.Time{}
		}
		if err := Unmarshal(b, &got); err != nil {
			t.Fatalf("Unmarshal of %x: %v", b, err)
		}
		if !reflect.DeepEqual(got, fields{}) {
			t.Errorf("fields after %v: %#v", v, got)
		}
		got = fields{Def: calcDef}
		if err := msgpack.Unmarshal(b, &got); err != nil || !reflect.DeepEqual(got, fields{}) {
			t.Errorf("msgpack.Unmarshal: %v, %#v", err, got)
		}
	}

	// nil for a field of a type that decodes itself with a value receiver
	// (msgpack v5 panics on it): structs are decoded field by field by
	// this package, which reads nil as the zero value for every type.
	var withVD struct {
		VD valueDecoder `msgpack:"vd"`
	}
	if err := Unmarshal(unhex(t, "81a27664c0"), &withVD); err != nil {
		t.Errorf("nil into a struct with a value-receiver DecodeMsgpack: %v", err)
	}
	if err := Unmarshal(unhex(t, "81a27664a3616263"), &withVD); err != nil {
		t.Errorf("a string into the value-receiver DecodeMsgpack: %v", err)
	}
	// A typed extension field holding another extension type is an error.
	var f fields
	if err := Unmarshal(unhex(t, "81a3646566"+x(ExtReference, "a161")), &f); !errors.Is(err, ErrType) {
		t.Errorf("Reference into a Definition field: %v", err)
	}
	if err := Unmarshal(unhex(t, "81a3646566a161"), &f); !errors.Is(err, ErrType) {
		t.Errorf("string into a Definition field: %v", err)
	}
}
