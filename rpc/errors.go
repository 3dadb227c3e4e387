package rpc

import (
	"errors"
	"fmt"
	"maps"
	"strings"
)

// Error is an error that crossed (or would cross) the wire: a failed call
// on a peer, or a call the peer refused. Its Code follows Titan's HTTP-like
// codes (400 bad request, 403 forbidden, 404 not found, 408 timeout, 429,
// 500 internal, 503 unavailable). Errors from JavaScript peers that carry no
// code (ext 126) get Code 500 and keep their name, stack and own fields.
//
// Match kinds with errors.Is against the sentinels of this package:
//
//	if errors.Is(err, rpc.ErrMethodNotFound) { … }
//
// and read the data with errors.As:
//
//	var re *rpc.Error
//	if errors.As(err, &re) { log(re.Code, re.Details, re.Fields) }
type Error struct {
	Code    int
	Name    string
	Message string
	// Details are TitanError details (e.g. {"resource":"Method"}).
	Details map[string]any
	// Fields are custom fields: a JS error's own fields (code, meta, …) or
	// a TitanError's extras. From a peer, Details, Fields and Thrown hold
	// values as Result.Decode decodes into any (undefined is nil, a nested
	// error an *Error, a service a ServiceDescription).
	Fields map[string]any
	// Stack is the remote stack trace, when the peer sent one.
	Stack string
	// Kind is the JavaScript error class of an error that crossed as
	// ext 126 (see NewJSError); 0 for a TitanError (ext 110).
	Kind JSKind
	// Thrown is the value a JavaScript peer threw when it was not an
	// Error (a string, a number, a map; see Throw).
	Thrown any
	// Cause is a TitanError's cause, when it has one.
	Cause *Error
	// Available is what the caller's side knows exists when a service or
	// a method was not found: the versions of the service ("1.0.0") or
	// the services ("calculator@1.0.0") the peer offers, or the methods
	// of the service. It is filled in on the caller's side (Service.Call,
	// netron's Peer.Service and Node.Service) and never sent.
	Available []string

	op     string // what was called ("calculator@1.0.0.add"), set by the caller's side
	reason string // sentinel matching: "" matches any reason
}

// Error reads like "rpc: calculator@1.0.0: method "ad" not found (404);
// available: add, multiply", or "rpc: orders@1.0.0.quote: only 60 in stock
// (409)": what failed, the code, and what exists. The Message sent over
// the wire is unchanged (Titan's "Method 'calculator@1.0.0.ad' not found").
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("rpc: ")
	b.WriteString(e.describe())
	if e.Code != 0 {
		fmt.Fprintf(&b, " (%d)", e.Code)
	}
	if len(e.Available) > 0 {
		b.WriteString("; available: ")
		b.WriteString(strings.Join(e.Available, ", "))
	}
	return b.String()
}

// describe says what failed, without the code.
func (e *Error) describe() string {
	id, _ := e.Details["id"].(string)
	switch r := e.Reason(); {
	case r == "Method" && id != "":
		if i := strings.LastIndexByte(id, '.'); i > 0 && strings.Contains(id[:i], "@") {
			return fmt.Sprintf("%s: method %q not found", id[:i], id[i+1:])
		}
		return fmt.Sprintf("method %q not found", id)
	case r == "Service":
		name, _ := e.Details["serviceName"].(string)
		if name == "" {
			name = id
		}
		if name == "" {
			break
		}
		if len(e.Available) > 0 && allVersions(e.Available) {
			return name + ": no match" // the service is there, not in that version
		}
		return fmt.Sprintf("service %q not found", name)
	case (r == "Task" || r == "Property") && id != "":
		return fmt.Sprintf("%s %q not found", strings.ToLower(r), id)
	}
	msg := e.Message
	if msg == "" {
		msg = e.kind()
	}
	if e.Name != "" && e.Name != "TitanError" && e.Name != "Error" {
		msg = e.Name + ": " + msg // a JavaScript error class: TypeError, …
	}
	if e.op != "" && !strings.HasPrefix(msg, e.op) {
		msg = e.op + ": " + msg
	}
	return msg
}

// kind names the failure of an error without a message (the sentinels
// of this package, an empty remote message) by its reason or code.
func (e *Error) kind() string {
	switch e.Reason() {
	case "Service":
		return "service not found"
	case "Method":
		return "method not found"
	case "Task":
		return "task not found"
	case "ArgumentCount":
		return "wrong number of arguments"
	case "ArgumentType":
		return "wrong argument type"
	}
	switch e.Code {
	case 400:
		return "bad request"
	case 403:
		return "forbidden"
	case 404:
		return "not found"
	case 408:
		return "request timeout"
	case 429:
		return "too many requests"
	case 500:
		return "internal error"
	case 503:
		return "unavailable"
	}
	return "error"
}

// allVersions reports whether every entry of list is a bare version.
func allVersions(list []string) bool {
	for _, s := range list {
		if s == "" || s[0] < '0' || s[0] > '9' {
			return false
		}
	}
	return true
}

// Reason is the kind of failure within a code: the details' "resource" of
// Titan's 404 errors ("Service", "Method", "Task", "Property") or our
// "reason" detail ("ArgumentCount", "ArgumentType", …).
func (e *Error) Reason() string {
	if e.reason != "" {
		return e.reason
	}
	for _, k := range [...]string{"reason", "resource"} {
		if s, ok := e.Details[k].(string); ok {
			return s
		}
	}
	if _, ok := e.Details["serviceName"]; ok && e.Code == 404 {
		return "Service"
	}
	return ""
}

// Is matches sentinels of this package: same code (a sentinel with code 0
// matches any) and, where the sentinel names one, the same reason.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok || !t.sentinel() {
		return false
	}
	return (t.Code == 0 || t.Code == e.Code) && (t.reason == "" || t.reason == e.Reason()) && (t.Kind == 0 || t.Kind == e.Kind)
}

func (e *Error) sentinel() bool {
	return e.Name == "" && e.Message == "" && e.Details == nil && e.Fields == nil && e.Thrown == nil
}

// Code returns the code of an *Error in err's chain, 0 if there is none.
func Code(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// Sentinels for errors.Is. Remote errors from Go and Titan peers match them.
var (
	ErrBadRequest    = &Error{Code: 400}
	ErrArgumentCount = &Error{Code: 400, reason: "ArgumentCount"}
	ErrArgumentType  = &Error{Code: 400, reason: "ArgumentType"}
	// ErrDecodeBudget: the request's data would take more memory to
	// decode than its budget allows (32 × its bytes + 64
	// KiB, at most 64 MiB). A connection whose requests do this three
	// times in a row is closed.
	ErrDecodeBudget    = &Error{Code: 400, reason: "DecodeBudget"}
	ErrForbidden       = &Error{Code: 403}
	ErrNotFound        = &Error{Code: 404}
	ErrServiceNotFound = &Error{Code: 404, reason: "Service"}
	ErrMethodNotFound  = &Error{Code: 404, reason: "Method"}
	ErrTaskNotFound    = &Error{Code: 404, reason: "Task"}
	ErrRequestTimeout  = &Error{Code: 408}
	ErrTooManyRequests = &Error{Code: 429}
	ErrInternal        = &Error{Code: 500}
	ErrUnavailable     = &Error{Code: 503}
)

// Local errors of the registry.
var (
	ErrInvalidName     = errors.New("rpc: invalid service name")
	ErrInvalidVersion  = errors.New("rpc: invalid service version")
	ErrInvalidService  = errors.New("rpc: invalid service value")
	ErrAlreadyExposed  = errors.New("rpc: service already exposed")
	ErrNotExposed      = errors.New("rpc: service not exposed")
	ErrMalformedResult = errors.New("rpc: malformed result")
	ErrClosed          = errors.New("rpc: closed")
	// ErrStreamResult: Service.Call (and Call) of a method that produces a
	// stream; read it with OpenStream or Stream. The producer is told to
	// stop.
	ErrStreamResult = errors.New("rpc: the method produces a stream (use OpenStream or Stream)")
	// ErrInvalidTask: Node.HandleTask was given an empty name, a nil
	// handler, or the name of a task the node answers itself.
	ErrInvalidTask = errors.New("rpc: invalid task")
)

// NewError returns an *Error with a code, for handlers that want the
// caller to see a specific code.
func NewError(code int, message string, details map[string]any) *Error {
	return &Error{Code: code, Name: "TitanError", Message: message, Details: details}
}

func badRequest(reason, msg string, details map[string]any) *Error {
	d := map[string]any{"reason": reason}
	maps.Copy(d, details)
	return &Error{Code: 400, Name: "TitanError", Message: msg, Details: d}
}
