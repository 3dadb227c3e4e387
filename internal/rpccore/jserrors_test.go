package rpccore

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"github.com/netron-go/netron/rpc"
	"strings"
	"testing"

	"github.com/netron-go/netron/internal/wire"
)

func unhexT(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestJSErrorVectors: the ext 126 bytes of Titan's serializer (stack
// pinned to "S", message "m"; /work/titan/captures/vectors.jsonl), made
// from *rpc.Error values, and decoded back.
func TestJSErrorVectors(t *testing.T) {
	for _, tc := range []struct {
		err  *rpc.Error
		want string
	}{
		{&rpc.Error{Kind: rpc.KindError, Name: "Error", Message: "m", Stack: "S"}, "c7 0e 7e 00 01 a5 4572726f72 a1 53 a1 6d 00 00"},
		{&rpc.Error{Kind: rpc.KindSyntaxError, Message: "m", Stack: "S"}, "c7 14 7e 00 02 ab 53796e7461784572726f72 a1 53 a1 6d 00 00"},
		{&rpc.Error{Kind: rpc.KindTypeError, Message: "m", Stack: "S"}, "c7 12 7e 00 03 a9 547970654572726f72 a1 53 a1 6d 00 00"},
		{&rpc.Error{Kind: rpc.KindReferenceError, Message: "m", Stack: "S"}, "c7 17 7e 00 04 ae 5265666572656e63654572726f72 a1 53 a1 6d 00 00"},
		{&rpc.Error{Kind: rpc.KindRangeError, Message: "m", Stack: "S"}, "c7 13 7e 00 05 aa 52616e67654572726f72 a1 53 a1 6d 00 00"},
		{&rpc.Error{Kind: rpc.KindEvalError, Message: "m", Stack: "S"}, "c7 12 7e 00 06 a9 4576616c4572726f72 a1 53 a1 6d 00 00"},
		{&rpc.Error{Kind: rpc.KindURIError, Message: "m", Stack: "S"}, "c7 11 7e 00 07 a8 5552494572726f72 a1 53 a1 6d 00 00"},
		// c2 #165: a custom class with fields (sorted keys: code, meta).
		{&rpc.Error{Kind: rpc.KindError, Name: "CustomError", Message: "custom failure", Stack: "S", Fields: map[string]any{"code": "E_CUSTOM", "meta": map[string]any{"retry": true, "n": 3}}},
			"c7 3f 7e 00 01 ab 437573746f6d4572726f72 a1 53 ae 637573746f6d206661696c757265 00 02 a4 636f6465 a8 455f435553544f4d a4 6d657461 82 a1 6e 03 a5 7265747279 c3"},
	} {
		b, err := wire.Marshal(toWire(tc.err, true))
		if err != nil {
			t.Fatal(err)
		}
		if want := unhexT(t, tc.want); !bytes.Equal(b, want) {
			t.Errorf("%v:\n got %x\nwant %x", tc.err.Kind, b, want)
		}
		var v any
		if err := wire.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		got := fromWire(v)
		if got.Kind != tc.err.Kind || got.Message != "m" && got.Message != tc.err.Message || got.Stack != "S" {
			t.Errorf("decoded %+v", got)
		}
	}
	// A kind Titan cannot decode goes out as Error; fields named like
	// the error's own are left out.
	b, _ := wire.Marshal(toWire(&rpc.Error{Kind: 9, Name: "X", Message: "m", Fields: map[string]any{"message": "y", "ok": 1}}, false))
	var je wire.JSError
	if err := wire.Unmarshal(b, &je); err != nil || je.Kind != 1 || je.Stack != "X: m" || len(je.Fields) != 1 || je.Fields["ok"] == nil {
		t.Fatalf("%+v %v", je, err)
	}
}

// TestThrownValues: Throw sends the bare value (c2 #187/#189, H1
// 634-654), and a caller gets it back in Thrown.
func TestThrownValues(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{"just a string", "ad 6a75737420612073747269 6e67"},
		{42, "2a"},
		{nil, "c0"},
		{wire.Undefined{}, "d4 00 00"},
		{map[string]any{"code": "E_OBJ", "message": "plain object thrown"}, "82 a4 636f6465 a5 455f4f424a a7 6d657373616765 b3 706c61696e206f626a656374207468726f776e"},
	} {
		b, err := wire.Marshal(toWire(rpc.Throw(tc.v), false))
		if err != nil {
			t.Fatal(err)
		}
		if want := unhexT(t, tc.want); !bytes.Equal(b, want) {
			t.Errorf("rpc.Throw(%v): got %x want %x", tc.v, b, want)
		}
	}
	got := fromWire("just a string")
	if got.Thrown != "just a string" || got.Code != 500 || got.Kind != 0 {
		t.Fatalf("%+v", got)
	}
}

// TestTitanErrorCause: a cause goes as Titan writes it and comes back.
func TestTitanErrorCause(t *testing.T) {
	e := rpc.NewError(409, "conflict", nil)
	e.Cause = rpc.NewError(404, "missing", map[string]any{"id": "x"})
	e.Cause.Cause = rpc.NewJSError(rpc.KindTypeError, "", "root", nil)
	// Through bytes, as every error response goes (roundTrip for local
	// calls): package rpc decodes what the engine encodes.
	b0, err := wire.Marshal(toWire(e, false))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := wire.UnmarshalTrusted(b0, &v); err != nil {
		t.Fatal(err)
	}
	got := fromWire(v)
	if got.Cause == nil || got.Cause.Code != 404 || got.Cause.Message != "missing" || got.Cause.Cause == nil || got.Cause.Cause.Name != "TypeError" || got.Cause.Cause.Message != "root" {
		t.Fatalf("%+v / %+v", got, got.Cause)
	}
	// V: ext110 with a plain Error cause: the cause map's bytes.
	b, _ := wire.Marshal(causeToWire(rpc.NewJSError(rpc.KindTypeError, "", "root", nil), 0))
	if want := unhexT(t, "84 ab 5f5f6572726f7254797065 a5 4572726f72 a4 6e616d65 a9 547970654572726f72 a7 6d657373616765 a4 726f6f74 a5 737461636b d4 00 00"); !bytes.Equal(b, want) {
		t.Fatalf("cause map:\n got %x\nwant %x", b, want)
	}
}

type thrower struct{}

func (thrower) Range(i int) (int, error) {
	return 0, rpc.NewJSError(rpc.KindRangeError, "OutOfBounds", "index out of range", map[string]any{"index": i})
}
func (thrower) Str() error { return rpc.Throw("just a string") }

// TestJSErrorsRemote: a handler's JS error and thrown value reach a Go
// caller over a connection with class, name, fields and value.
func TestJSErrorsRemote(t *testing.T) {
	ctx := context.Background()
	svc, _ := servePairReg(t, "thrower@1.0.0", thrower{})
	_, err := rpc.Call[int](ctx, svc, "range", 9)
	var re *rpc.Error
	if !errors.As(err, &re) || !errors.Is(err, rpc.ErrRangeError) || errors.Is(err, rpc.ErrTypeError) || re.Name != "OutOfBounds" || re.Message != "index out of range" || re.Fields["index"] != int64(9) || re.Stack != "OutOfBounds: index out of range" {
		t.Fatalf("%v %+v %T", err, re, re.Fields["index"])
	}
	_, err = svc.Call(ctx, "str")
	if !errors.As(err, &re) || re.Thrown != "just a string" || !errors.Is(err, rpc.ErrInternal) {
		t.Fatalf("%v %+v", err, re)
	}
}
