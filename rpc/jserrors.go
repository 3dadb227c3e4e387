package rpc

import (
	"fmt"

	"github.com/netron-go/netron/internal/wire"
)

// JSKind is the standard class of a JavaScript error, as ext 126 carries
// it: Titan's decoder makes an instance of that class, whatever the
// error's name.
type JSKind uint16

// The JavaScript error classes of ext 126.
const (
	KindError          JSKind = 1 // Error, and every other class (subclasses, AggregateError, …)
	KindSyntaxError    JSKind = 2
	KindTypeError      JSKind = 3
	KindReferenceError JSKind = 4
	KindRangeError     JSKind = 5
	KindEvalError      JSKind = 6
	KindURIError       JSKind = 7
)

var kindNames = [...]string{"", "Error", "SyntaxError", "TypeError", "ReferenceError", "RangeError", "EvalError", "URIError"}

// String returns the class name ("TypeError"); "JSKind(n)" out of range.
func (k JSKind) String() string {
	if int(k) < len(kindNames) && k > 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("JSKind(%d)", uint16(k))
}

// Sentinels of the JavaScript error classes, for errors.Is: they match an
// *Error of that Kind, whatever its name and code.
var (
	ErrJSError        = &Error{Kind: KindError}
	ErrSyntaxError    = &Error{Kind: KindSyntaxError}
	ErrTypeError      = &Error{Kind: KindTypeError}
	ErrReferenceError = &Error{Kind: KindReferenceError}
	ErrRangeError     = &Error{Kind: KindRangeError}
	ErrEvalError      = &Error{Kind: KindEvalError}
	ErrURIError       = &Error{Kind: KindURIError}
)

// NewJSError returns an error that goes to the peer as a JavaScript error
// of class kind (ext 126) named name ("" for the class's own name), as a
// TypeScript service's throw would: a Titan caller gets an instance of
// that class with its name, message and the custom fields (Fields; not
// name, message or stack).
//
//	return 0, rpc.NewJSError(rpc.KindRangeError, "OutOfBounds", "index 9 out of range", map[string]any{"index": 9})
func NewJSError(kind JSKind, name, message string, fields map[string]any) *Error {
	if name == "" {
		name = kind.String()
	}
	return &Error{Code: 500, Kind: kind, Name: name, Message: message, Fields: fields}
}

// Thrown is an error that goes to the peer as a bare value, as a
// TypeScript service's `throw "just a string"` would (a string, a number,
// a map, nil). Return Throw(v) from a handler. A Titan caller's promise
// rejects with exactly that value; a Go caller gets an *Error with Code
// 500 and Thrown set to it.
type Thrown struct{ Value any }

// Throw returns a Thrown error carrying v.
func Throw(v any) error { return &Thrown{Value: v} }

func (t *Thrown) Error() string { return fmt.Sprintf("rpc: thrown value %v", t.Value) }

// causeFromWire decodes a TitanError's cause: a TitanError, or the map
// Titan writes for a plain Error; nil for anything else.
func causeFromWire(v any, depth int) *Error {
	if depth > 8 {
		return nil
	}
	switch x := v.(type) {
	case wire.TitanError:
		e := &Error{Code: x.Code, Name: x.Name, Message: x.Message, Details: publicMap(x.Details), Fields: publicMap(x.Extras), Stack: x.Stack}
		e.Cause = causeFromWire(x.Cause, depth+1)
		return e
	case map[string]any:
		if x["__errorType"] == nil {
			return nil
		}
		name, _ := x["name"].(string)
		msg, _ := x["message"].(string)
		return &Error{Code: 500, Kind: KindError, Name: name, Message: msg}
	}
	return nil
}
