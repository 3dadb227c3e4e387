package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// Encoder settings shared by every encoder of this package (see newEncState):
//
//   - integers in their most compact form (UseCompactInts), so int64(5) is
//     05 as Titan writes it, and 4294967289 is ce ff ff ff f9;
//   - floats keep their width (float64 is cb, float32 is ca), as JS sends
//     every non-integral number as float64;
//   - map[string]any, map[string]string and map[string]bool with sorted keys,
//     so the same value always has the same bytes;
//   - structs as maps keyed by their msgpack tag, falling back to the json
//     tag, then to the field name;
//   - []byte as bin, time.Time as msgpack's timestamp extension (-1), which
//     Titan does not decode: send times to a JS peer as numbers or strings.
const customStructTag = "json"

// maxPooledBuffer bounds the scratch buffers kept in the pools, so one huge
// message does not pin its memory for the life of the process.
const maxPooledBuffer = 64 << 10

// appendWriter is the io.Writer (and io.ByteWriter) the pooled encoders write
// to: it appends to b.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *appendWriter) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}

// encState is a pooled encoder together with the buffer it writes to.
type encState struct {
	w       appendWriter
	scratch []byte // kept between uses; w.b points into it or into a caller's slice
	enc     *msgpack.Encoder
}

var encPool = sync.Pool{New: func() any { return newEncState() }}

func newEncState() *encState {
	s := new(encState)
	s.enc = msgpack.NewEncoder(&s.w)
	s.enc.UseCompactInts(true)
	s.enc.SetSortMapKeys(true)
	s.enc.SetCustomStructTag(customStructTag)
	return s
}

func getEnc() *encState { return encPool.Get().(*encState) }

func putEnc(s *encState) {
	s.w.b = nil
	if cap(s.scratch) > maxPooledBuffer {
		s.scratch = nil
	}
	encPool.Put(s)
}

// encode appends v to s.w.b. The common types of call arguments and
// results are written directly (the same bytes msgpack v5 writes with the
// settings above, without its per-value reflection and type-cache lookups);
// everything else goes to msgpack v5.
func (s *encState) encode(v any) error {
	b := s.w.b
	switch x := v.(type) {
	case nil:
		b = AppendNil(b)
	case bool:
		b = appendBool(b, x)
	case int:
		b = appendInt(b, int64(x))
	case int64:
		b = appendInt(b, x)
	case int32:
		b = appendInt(b, int64(x))
	case int16:
		b = appendInt(b, int64(x))
	case int8:
		b = appendInt(b, int64(x))
	case uint:
		b = appendUint(b, uint64(x))
	case uint64:
		b = appendUint(b, x)
	case uint32:
		b = appendUint(b, uint64(x))
	case uint16:
		b = appendUint(b, uint64(x))
	case uint8:
		b = appendUint(b, uint64(x))
	case float64:
		b = appendFloat64(b, x)
	case float32:
		b = appendFloat32(b, x)
	case string:
		b = AppendString(b, x)
	case []byte:
		if x == nil {
			b = AppendNil(b)
		} else {
			b = appendBin(b, x)
		}
	case Undefined:
		b = AppendUndefined(b)
	case []string:
		if x == nil {
			b = AppendNil(b)
			break
		}
		b = AppendArrayHeader(b, len(x))
		for _, e := range x {
			b = AppendString(b, e)
		}
	case []any:
		if x == nil {
			b = AppendNil(b)
			break
		}
		s.w.b = AppendArrayHeader(b, len(x))
		for _, e := range x {
			if err := s.encode(e); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		if x == nil {
			b = AppendNil(b)
			break
		}
		s.w.b = AppendMapHeader(b, len(x))
		var arr [16]string
		for _, k := range sortedKeys(arr[:0], x) {
			s.w.b = AppendString(s.w.b, k)
			if err := s.encode(x[k]); err != nil {
				return err
			}
		}
		return nil
	case map[string]string:
		if x == nil {
			b = AppendNil(b)
			break
		}
		b = AppendMapHeader(b, len(x))
		var arr [16]string
		for _, k := range sortedKeys(arr[:0], x) {
			b = AppendString(AppendString(b, k), x[k])
		}
	default:
		return s.enc.Encode(v)
	}
	s.w.b = b
	return nil
}

// sortedKeys appends the keys of m to keys and sorts them, as msgpack v5's
// SetSortMapKeys does.
func sortedKeys[V any](keys []string, m map[string]V) []string {
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Marshal returns the msgpack encoding of v with Titan's conventions and
// extension types (see AppendMarshal).
func Marshal(v any) ([]byte, error) {
	s := getEnc()
	s.w.b = s.scratch[:0]
	err := s.encode(v)
	var out []byte
	if err == nil {
		out = bytes.Clone(s.w.b)
	}
	s.scratch = s.w.b[:0]
	putEnc(s)
	if err != nil {
		return nil, fmt.Errorf("wire: encode %T: %w", v, err)
	}
	return out, nil
}

// AppendMarshal appends the msgpack encoding of v to dst and returns the
// extended buffer. It allocates nothing beyond growing dst (and what
// encoding v itself needs: sorting the keys of a large map, the payload of
// an extension value), so a caller that reuses dst encodes a CALL without
// allocating. (Converting a slice to the any parameter allocates its
// header, in the caller; pass a pointer to the slice to avoid it.)
//
// Integers are written in their most compact form, floats keep their width,
// map[string]any keys are sorted, structs are maps keyed by their msgpack or
// else json tag, and the types of this package (Undefined, Definition,
// Reference, StreamReference, TitanError, JSError, and pointers to them) are
// written as Titan's extension types.
func AppendMarshal(dst []byte, v any) ([]byte, error) {
	s := getEnc()
	s.w.b = dst
	err := s.encode(v)
	out := s.w.b
	putEnc(s)
	if err != nil {
		return dst, fmt.Errorf("wire: encode %T: %w", v, err)
	}
	return out, nil
}

// decState is a pooled decoder together with the reader it reads from: the
// reader is a plain []byte cursor, so the extension decoders can take their
// payload as a sub-slice without copying and check every length field
// against the bytes that are really there.
type decState struct {
	b     []byte
	off   int
	depth int // nesting depth of b's first value, for MaxDepth across extension payloads
	dec   *msgpack.Decoder
	// bud is the decode budget (see Budget): own's for a decoder of a
	// whole input, the outer decoder's for one of a value inside it.
	bud *budget
	own budget
	// broken is set when msgpack v5 panicked while decoding: its internal
	// state is unknown, so the decoder is not reused.
	broken bool
	// scratch is set once msgpack v5 decoded a value on its own: it may
	// have grown its scratch buffer to the size of a string of the input,
	// which a pooled decoder would keep for ever.
	scratch bool
}

var errUnread = errors.New("wire: UnreadByte at the start of the input")

func (s *decState) Read(p []byte) (int, error) {
	if s.off >= len(s.b) {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := copy(p, s.b[s.off:])
	s.off += n
	return n, nil
}

func (s *decState) ReadByte() (byte, error) {
	if s.off >= len(s.b) {
		return 0, io.EOF
	}
	c := s.b[s.off]
	s.off++
	return c, nil
}

func (s *decState) UnreadByte() error {
	if s.off <= 0 {
		return errUnread
	}
	s.off--
	return nil
}

// rest returns the bytes not read yet.
func (s *decState) rest() []byte { return s.b[s.off:] }

var decPool = sync.Pool{New: func() any { return newDecState() }}

func newDecState() *decState {
	s := new(decState)
	s.dec = msgpack.NewDecoder(s) // s is an io.ByteScanner: no bufio in between
	s.dec.SetCustomStructTag(customStructTag)
	s.dec.UseLooseInterfaceDecoding(true)
	return s
}

// getDec returns a pooled decoder of b with a budget of its own (the
// default cap, no Account).
func getDec(b []byte, depth int) *decState {
	return getDecAccount(b, depth, nil)
}

// getDecAccount returns a pooled decoder of b whose budget is a's (the
// default one without a).
func getDecAccount(b []byte, depth int, a *Account) *decState {
	s := decPool.Get().(*decState)
	s.b, s.off, s.depth = b, 0, depth
	if a != nil {
		s.own.reset(len(b), a.max, a)
	} else {
		s.own.reset(len(b), 0, nil)
	}
	s.bud = &s.own
	return s
}

// getTrustedDec returns a pooled decoder of b without a budget.
func getTrustedDec(b []byte) *decState {
	s := decPool.Get().(*decState)
	s.b, s.off, s.depth = b, 0, 0
	s.own.resetUnlimited()
	s.bud = &s.own
	return s
}

// getDecIn returns a pooled decoder of b, a value inside the input of
// outer, charging outer's budget.
func getDecIn(b []byte, depth int, outer *budget) *decState {
	s := getDec(b, depth)
	if outer != nil {
		s.bud = outer
	}
	return s
}

func putDec(s *decState) {
	if s.broken || (s.scratch && len(s.b) > maxPooledBuffer) {
		return
	}
	s.b, s.off, s.depth, s.bud, s.own, s.scratch = nil, 0, 0, nil, budget{}, false
	decPool.Put(s)
}

// stateOf returns the decState behind dec, or nil when dec was not made by
// NewDecoder (or by this package's extension decoders).
func stateOf(dec *msgpack.Decoder) *decState {
	if dec == nil {
		return nil
	}
	s, _ := dec.Buffered().(*decState)
	return s
}

// NewDecoder returns a pooled msgpack decoder reading data, configured like
// Unmarshal's (json tag fallback, this package's extension types). Give it
// back with ReleaseDecoder when done; neither the decoder nor anything
// aliasing it may be used after that. Decoded values never alias data.
//
// What DecodeArg and DecodeString decode through it is charged to the
// decode budget of data, Budget(len(data), DefaultMaxDecodeMemory);
// Charged reports the charge. NewDecoderAccount sets another cap and
// draws from a Memory; NewTrustedDecoder has no budget.
//
// The decoder itself trusts the bytes it reads: msgpack v5 preallocates
// arrays and maps from their announced length and recurses without a
// depth limit. Either check data with SkipValue first (Decode does that for
// a packet's Data) or decode through DecodeArg, which checks each value
// before decoding it.
func NewDecoder(data []byte) *msgpack.Decoder {
	return getDec(data, 0).dec
}

// NewDecoderAccount is NewDecoder whose budget is a's: its cap, and the
// Memory it draws from as decoding charges it (see Account). a must stay
// valid, and not be used by another decoder, until the decoder is
// released.
func NewDecoderAccount(data []byte, a *Account) *msgpack.Decoder {
	return getDecAccount(data, 0, a).dec
}

// NewTrustedDecoder is NewDecoder without a budget, for bytes this process
// encoded itself (the arguments of an in-process call): they cost what the
// caller's values cost already. Never use it for bytes from a peer.
func NewTrustedDecoder(data []byte) *msgpack.Decoder {
	return getTrustedDec(data).dec
}

// ReleaseDecoder returns a decoder obtained from NewDecoder to the pool.
// Other decoders are ignored.
func ReleaseDecoder(dec *msgpack.Decoder) {
	if s := stateOf(dec); s != nil {
		putDec(s)
	}
}

// Remaining reports how many bytes a decoder from NewDecoder has not read
// yet (-1 for other decoders): after the last argument of a call it should
// be 0.
func Remaining(dec *msgpack.Decoder) int {
	if s := stateOf(dec); s != nil {
		return len(s.b) - s.off
	}
	return -1
}

// checkOne verifies that data is exactly one well-formed msgpack value no
// deeper than MaxDepth.
func checkOne(data []byte) error {
	n, err := SkipValue(data)
	if err != nil {
		return err
	}
	if n != len(data) {
		return fmt.Errorf("%w: %d bytes after the msgpack value", ErrTrailingBytes, len(data)-n)
	}
	return nil
}

// Unmarshal decodes data, which must hold exactly one msgpack value, into
// the value v points to. It checks the bytes first (well-formed, no deeper
// than MaxDepth, no count larger than the bytes that follow, no trailing
// bytes), then decodes with the rules of DecodeArg: an integer target
// accepts a float holding an exact integer in range and rejects anything
// else that does not fit, undefined stores the zero value. One exception:
// an undefined decoded into an empty interface is stored as Undefined{}, so
// a caller can tell undefined from nil.
//
// Extension values decoded into an interface are the value types of this
// package (Definition, never *Definition). Every error caused by data wraps
// ErrMalformed; v that is not a non-nil pointer is a plain error.
func Unmarshal(data []byte, v any) error {
	if err := checkOne(data); err != nil {
		return err
	}
	rv, err := target(v)
	if err != nil {
		return err
	}
	s := getDec(data, 0)
	err = decodeArg(s.dec, rv, true)
	putDec(s)
	return err
}

// UnmarshalAccount is Unmarshal whose budget is a's (see
// NewDecoderAccount).
func UnmarshalAccount(data []byte, v any, a *Account) error {
	if err := checkOne(data); err != nil {
		return err
	}
	rv, err := target(v)
	if err != nil {
		return err
	}
	s := getDecAccount(data, 0, a)
	err = decodeArg(s.dec, rv, true)
	putDec(s)
	return err
}

// UnmarshalMax is Unmarshal with the cap limit on its budget (see Budget)
// and no Memory to draw from.
func UnmarshalMax(data []byte, v any, limit int64) error {
	if err := checkOne(data); err != nil {
		return err
	}
	rv, err := target(v)
	if err != nil {
		return err
	}
	s := decPool.Get().(*decState)
	s.b, s.off, s.depth = data, 0, 0
	s.own.reset(len(data), limit, nil)
	s.bud = &s.own
	err = decodeArg(s.dec, rv, true)
	putDec(s)
	return err
}

// UnmarshalTrusted is Unmarshal without a budget (see NewTrustedDecoder).
func UnmarshalTrusted(data []byte, v any) error {
	if err := checkOne(data); err != nil {
		return err
	}
	rv, err := target(v)
	if err != nil {
		return err
	}
	s := getTrustedDec(data)
	err = decodeArg(s.dec, rv, true)
	putDec(s)
	return err
}
