package rpccore

import (
	"context"
	"testing"

	"github.com/netron-go/netron/bus"
	"github.com/netron-go/netron/internal/wire"
)

// fuzzServer serves props@1.0.0 and shop@1.0.0 for the fuzz targets,
// with no connection (a request from this node: every child is
// reachable).
func fuzzServer(f *testing.F) (*Server, string, string) {
	b := bus.New()
	reg := NewRegistry("fuzz")
	props, err := reg.Expose("props@1.0.0", newPropSvc())
	if err != nil {
		f.Fatal(err)
	}
	shopDef, err := reg.Expose("shop@1.0.0", newShop())
	if err != nil {
		f.Fatal(err)
	}
	srv, err := NewServer(b, reg)
	if err != nil {
		f.Fatal(err)
	}
	c, err := NewClient(b)
	if err != nil {
		f.Fatal(err)
	}
	srv.AllowRemoteExposure(c)
	f.Cleanup(func() { c.Close(); srv.Close(); b.Close() })
	return srv, props.ID, shopDef.ID
}

func fuzzSeed(f *testing.F, v any) []byte {
	b, err := wire.Marshal(v)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzPropertyRequest feeds arbitrary data to GET and SET (type 1 or 2):
// it must answer a value or an error, never panic, and never change a
// read-only property.
func FuzzPropertyRequest(f *testing.F) {
	srv, props, _ := fuzzServer(f)
	for _, seed := range []any{
		[]any{props, "counter"},
		[]any{props, "counter", 42},
		[]any{props, "label", "hacked"},
		[]any{props, "bad-name"},
		[]any{props, "counter", "nan"},
		[]any{"props@1.0.0", "temp"},
		[]any{7, "counter"},
		map[string]any{"a": 1},
		[]any{props},
	} {
		f.Add(byte(1), fuzzSeed(f, seed))
		f.Add(byte(2), fuzzSeed(f, seed))
	}
	label := srv.reg.byDef[props].value.(*propSvc)
	f.Fuzz(func(t *testing.T, typ byte, data []byte) {
		p := &wire.Packet{ID: 1, Flags: wire.Flags(wire.Type(1+typ%2), true, 0), Data: data}
		dec := wire.NewDecoder(data)
		defer wire.ReleaseDecoder(dec)
		_, _ = srv.handleData(context.Background(), nil, p, dec, nil, nil)
		if label.Label.Get() != "fixed" {
			t.Fatalf("the read-only label changed to %q", label.Label.Get())
		}
	})
}

// FuzzReferenceArgument feeds arbitrary data as the argument of methods
// that take a service by reference (ext 108) and of the core tasks.
func FuzzReferenceArgument(f *testing.F) {
	srv, _, shop := fuzzServer(f)
	f.Add(fuzzSeed(f, []any{shop, "checkout", wire.Reference{DefID: shop}}))
	f.Add(fuzzSeed(f, []any{shop, "describe", wire.Reference{DefID: "01a21b02-7d17-7a1e-b886-6ca282306fc1"}}))
	f.Add(fuzzSeed(f, []any{shop, "checkout", wire.Reference{}}))
	f.Add(fuzzSeed(f, []any{shop, "checkout", 7}))
	f.Add(unhexF("93 aa 73686f7040312e302e30 a8 636865636b6f7574 c7 01 6c 07"))
	f.Add(fuzzSeed(f, []any{"unref_service", shop}))
	f.Add(fuzzSeed(f, []any{"invalidate_cache", map[string]any{"pattern": "x*"}}))
	f.Add(fuzzSeed(f, []any{"authenticate", map[string]any{"token": "t"}}))
	f.Add(fuzzSeed(f, []any{"expose_service", map[string]any{"name": "evil", "version": "1.0.0", "methods": map[string]any{"m": map[string]any{"type": "void"}}}}))
	f.Add(fuzzSeed(f, []any{"unexpose_service", "evil"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, typ := range []wire.Type{wire.TypeCall, wire.TypeTask} {
			p := &wire.Packet{ID: 1, Flags: wire.Flags(typ, true, 0), Data: data}
			dec := wire.NewDecoder(data)
			_, _ = srv.handleData(context.Background(), nil, p, dec, nil, nil)
			wire.ReleaseDecoder(dec)
		}
	})
}

func unhexF(s string) []byte {
	var out []byte
	var hi int = -1
	for _, c := range s {
		var v int
		switch {
		case c >= '0' && c <= '9':
			v = int(c - '0')
		case c >= 'a' && c <= 'f':
			v = int(c-'a') + 10
		default:
			continue
		}
		if hi < 0 {
			hi = v
		} else {
			out = append(out, byte(hi<<4|v))
			hi = -1
		}
	}
	return out
}

// FuzzRetarget: the relay's rewriting of a request's target never
// panics, and what it makes decodes as the request with the new target.
func FuzzRetarget(f *testing.F) {
	f.Add(fuzzSeed(f, []any{"clientsvc", "greet", "C"}))
	f.Add(fuzzSeed(f, []any{"01a21b02-7d17-7a1e-b886-6ca282306fc1", "hello", 1, []any{2}}))
	f.Add(unhexF("dc 00 02 da 00 03 616263 a1 78"))
	f.Add(unhexF("dd 00 00 00 01 db 00 00 00 01 78"))
	f.Add(unhexF("93 d9"))
	f.Add(unhexF("90"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const id = "01a21b02-0000-7000-8000-000000000000"
		out, err := retarget(data, id)
		if err != nil {
			return
		}
		var in, got []any
		if wire.UnmarshalTrusted(data, &in) != nil {
			return // the rest of a malformed request stays malformed
		}
		if err := wire.UnmarshalTrusted(out, &got); err != nil {
			t.Fatalf("retarget(%x) = %x: %v", data, out, err)
		}
		if len(got) != len(in) || got[0] != id {
			t.Fatalf("retarget(%x) = %v", data, got)
		}
	})
}
