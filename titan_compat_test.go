package netron_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
)

// PropsCapture is the props@1.0.0 service of capture 2 (phase 3): a
// writable counter, a read-only label and a method bump.
type PropsCapture struct {
	Counter rpc.Property[int]    `netron:"counter"`
	Label   rpc.Property[string] `netron:"label,readonly"`
}

func (p *PropsCapture) Bump() int { return p.Counter.Update(func(v int) int { return v + 1 }) }

// ParentCapture and KidCapture are parent@1.0.0 and its child@1.0.0 of
// capture 2 (phase 6).
type ParentCapture struct{ kid *KidCapture }

type KidCapture struct{ tag string }

func (*KidCapture) Hello(s string) string { return "hello " + s + " from kid" }

func (p *ParentCapture) GetChild() rpc.Ref { return rpc.Child("child@1.0.0", p.kid) }

func (p *ParentCapture) NewChild(tag string) rpc.Ref {
	return rpc.Child("child@1.0.0", &KidCapture{tag: tag})
}

func (p *ParentCapture) UseChild(k *KidCapture) string { return k.Hello("via-ref") }

// capturedIDs substitutes our definition ids for Titan's in a captured
// frame: both are 36 characters, so lengths do not change.
func capturedIDs(t *testing.T, s string, ids map[string]string) []byte {
	t.Helper()
	b := unhex(t, s)
	for from, to := range ids {
		if len(from) != len(to) {
			t.Fatalf("id %q for %q: lengths differ", to, from)
		}
		b = bytes.ReplaceAll(b, []byte(from), []byte(to))
	}
	return b
}

// maskTimestamp zeroes the float64 timestamp of a TitanError (ext 110)
// payload in data, found after its details and context.
func maskTimestamp(data []byte) []byte {
	b := bytes.Clone(data)
	if i := bytes.Index(b, []byte{0xcb}); i >= 0 && i+9 <= len(b) {
		copy(b[i+1:i+9], make([]byte, 8))
	}
	return b
}

// TestCapture2Properties replays capture 2's phase 3 (properties)
// against a Go node serving the same service. Where Titan and this node
// differ (a readonly SET, an unknown property), the test says so.
func TestCapture2Properties(t *testing.T) {
	server := startNode(t, netron.Config{ID: "ts-server", Host: "127.0.0.1", Server: true})
	impl := &PropsCapture{}
	impl.Counter.Set(7)
	impl.Label.Set("fixed")
	if err := server.Expose("props@1.0.0", impl); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, server.URL(), "ts-client", false)

	// #76 query_interface("props@1.0.0") → #77: the same meta bytes as
	// Titan's (properties counter Number writable, label String readonly;
	// method bump), only the id differs.
	c.send(unhex(t, "0000001c4492af71756572795f696e74657266616365ab70726f707340312e302e30"))
	p := c.recv()
	def, ok := decodeAny(t, p.Data).(wire.Definition)
	if p.ID != 0x1c || p.Flags != 0x04 || !ok {
		t.Fatalf("#77: id %d flags %#x %x", p.ID, p.Flags, p.Data)
	}
	titan77 := capturedIDs(t, "00 00 00 1c 04 c7 f5 6d d9 24 30 31 61 32 31 62 30 32 2d 35 64 34 36 2d 37 39 32 35 2d 39 37 64 31 2d 64 36 63 32 36 64 34 61 66 30 37 33 a0 a9 74 73 2d 73 65 72 76 65 72 88 a4 6e 61 6d 65 a5 70 72 6f 70 73 a7 76 65 72 73 69 6f 6e a5 31 2e 30 2e 30 aa 70 72 6f 70 65 72 74 69 65 73 82 a7 63 6f 75 6e 74 65 72 82 a4 74 79 70 65 a6 4e 75 6d 62 65 72 a8 72 65 61 64 6f 6e 6c 79 c2 a5 6c 61 62 65 6c 82 a4 74 79 70 65 a6 53 74 72 69 6e 67 a8 72 65 61 64 6f 6e 6c 79 c3 a7 6d 65 74 68 6f 64 73 81 a4 62 75 6d 70 82 a4 74 79 70 65 a6 4e 75 6d 62 65 72 a9 61 72 67 75 6d 65 6e 74 73 90 a8 63 6f 6e 74 72 61 63 74 d4 00 00 aa 74 72 61 6e 73 70 6f 72 74 73 d4 00 00 ab 5f 74 72 61 6e 73 70 6f 72 74 73 d4 00 00 af 74 72 61 6e 73 70 6f 72 74 43 6f 6e 66 69 67 d4 00 00",
		map[string]string{"01a21b02-5d46-7925-97d1-d6c26d4af073": def.ID})
	if got := append(wire.AppendHeader(nil, p.ID, p.Flags), p.Data...); !bytes.Equal(got, titan77) {
		t.Fatalf("#77:\n got %x\nwant %x", got, titan77)
	}
	ids := map[string]string{"01a21b02-5d46-7925-97d1-d6c26d4af073": def.ID}
	exchange := func(name, req, want string) wire.Packet {
		t.Helper()
		c.send(capturedIDs(t, req, ids))
		p := c.recv()
		if want != "" {
			if got := append(wire.AppendHeader(nil, p.ID, p.Flags), p.Data...); !bytes.Equal(got, unhex(t, want)) {
				t.Fatalf("%s:\n got %x\nwant %s", name, got, want)
			}
		}
		return p
	}
	const defHex = "d9 24 30 31 61 32 31 62 30 32 2d 35 64 34 36 2d 37 39 32 35 2d 39 37 64 31 2d 64 36 63 32 36 64 34 61 66 30 37 33"
	// #79 GET counter → #80 7; #82 SET counter 42 → #83 undefined; #85 → #86 42.
	exchange("#80", "00 00 00 1d 41 92 "+defHex+" a7 63 6f 75 6e 74 65 72", "00 00 00 1d 01 07")
	exchange("#83", "00 00 00 1e 42 93 "+defHex+" a7 63 6f 75 6e 74 65 72 2a", "00 00 00 1e 02 d4 00 00")
	exchange("#86", "00 00 00 1f 41 92 "+defHex+" a7 63 6f 75 6e 74 65 72", "00 00 00 1f 01 2a")
	// #89 raw SET of the read-only label: Titan accepts it (#90 undefined);
	// this node answers 403 and keeps the value.
	p = exchange("#89", "00 00 00 20 42 93 "+defHex+" a5 6c 61 62 65 6c a6 68 61 63 6b 65 64", "")
	te, ok := decodeAny(t, p.Data).(wire.TitanError)
	if p.Flags != 0x82 || !ok || te.Code != 403 || te.Message != "Property 'label' is read-only" || te.Details["property"] != "label" {
		t.Fatalf("#89: flags %#x %#v", p.Flags, decodeAny(t, p.Data))
	}
	if want := unhex(t, "c7656eaa546974616e4572726f72cd0193bd50726f706572747920276c6162656c2720697320726561642d6f6e6c7982a870726f7065727479a56c6162656ca6726561736f6ea8526561644f6e6c7980cb0000000000000000d40000d40000d40000d40000c0c0c0"); !bytes.Equal(maskTimestamp(p.Data), want) {
		t.Fatalf("#89: got %x\nwant %x", p.Data, want)
	}
	// #92 GET label: still "fixed" (Titan: "hacked").
	exchange("#93", "00 00 00 21 41 92 "+defHex+" a5 6c 61 62 65 6c", "00 00 00 21 01 a5 66 69 78 65 64")
	// #95 GET nosuch: Titan answers undefined; this node 404.
	p = exchange("#95", "00 00 00 22 41 92 "+defHex+" a6 6e 6f 73 75 63 68", "")
	if err := rpcError(t, p); p.Flags != 0x81 || !errors.Is(err, rpc.ErrPropertyNotFound) {
		t.Fatalf("#95: flags %#x %v", p.Flags, err)
	}
	// #98 GET bad-name → #100, byte for byte but the timestamp.
	p = exchange("#98", "00 00 00 23 41 92 "+defHex+" a8 62 61 64 2d 6e 61 6d 65", "")
	want100 := unhex(t, "c7 3e 6e aa 54 69 74 61 6e 45 72 72 6f 72 cd 01 90 b5 49 6e 76 61 6c 69 64 20 70 72 6f 70 65 72 74 79 20 6e 61 6d 65 80 80 cb 42 7a 21 b0 26 5f 60 00 d4 00 00 d4 00 00 d4 00 00 d4 00 00 c0 c0 c0")
	if p.Flags != 0x81 || !bytes.Equal(maskTimestamp(p.Data), maskTimestamp(want100)) {
		t.Fatalf("#100: flags %#x\n got %x\nwant %x", p.Flags, p.Data, want100)
	}
	// #102 GET of the method bump: Titan fails to encode a function
	// (ext 126); this node answers 404.
	p = exchange("#102", "00 00 00 24 41 92 "+defHex+" a4 62 75 6d 70", "")
	if err := rpcError(t, p); p.Flags != 0x81 || !errors.Is(err, rpc.ErrPropertyNotFound) {
		t.Fatalf("#102: flags %#x %v", p.Flags, err)
	}
	// Malformed: a SET without a value, a GET of a number, a target that
	// is not a string.
	for name, req := range map[string]string{
		"SET without value": "00 00 00 30 42 92 " + defHex + " a7 63 6f 75 6e 74 65 72",
		"SET wrong type":    "00 00 00 31 42 93 " + defHex + " a7 63 6f 75 6e 74 65 72 a1 78",
		"GET number name":   "00 00 00 32 41 92 " + defHex + " 07",
		"GET number target": "00 00 00 33 41 92 07 a7 63 6f 75 6e 74 65 72",
		"GET map data":      "00 00 00 34 41 81 a1 61 01",
		"GET one element":   "00 00 00 35 41 91 " + defHex,
	} {
		p := exchange(name, req, "")
		if err := rpcError(t, p); !p.IsError() || !errors.Is(err, rpc.ErrBadRequest) {
			t.Errorf("%s: flags %#x %v", name, p.Flags, err)
		}
	}
	if impl.Counter.Get() != 42 || impl.Label.Get() != "fixed" {
		t.Fatalf("values %d %q", impl.Counter.Get(), impl.Label.Get())
	}
}

func rpcError(t *testing.T, p wire.Packet) error {
	t.Helper()
	var v any
	if err := wire.Unmarshal(p.Data, &v); err != nil {
		t.Fatal(err)
	}
	switch x := v.(type) {
	case wire.TitanError:
		return &rpc.Error{Code: x.Code, Name: x.Name, Message: x.Message, Details: x.Details}
	case wire.JSError:
		return &rpc.Error{Code: 500, Name: x.Name, Message: x.Message}
	}
	t.Fatalf("not an error: %#v", v)
	return nil
}

// TestCapture2ChildServices replays capture 2's phase 6 (service
// references). This node holds one reference per (peer, child), so the
// single unref_service (#214) frees a child the peer fetched twice, where
// Titan (a count per reply) keeps it callable (#217/#218).
func TestCapture2ChildServices(t *testing.T) {
	server := startNode(t, netron.Config{ID: "ts-server", Host: "127.0.0.1", Server: true})
	if err := server.Expose("parent@1.0.0", &ParentCapture{kid: &KidCapture{}}); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, server.URL(), "ts-client", false)
	// #196 query_interface("parent@1.0.0")
	c.send(unhex(t, "0000003e4492af71756572795f696e74657266616365ac706172656e7440312e302e30"))
	parent, ok := decodeAny(t, c.recv().Data).(wire.Definition)
	if !ok || parent.Meta.Name != "parent" {
		t.Fatal("#197: not the parent's definition")
	}
	const parentHex = "d9 24 30 31 61 32 31 62 30 32 2d 35 64 34 36 2d 37 39 32 37 2d 38 34 66 62 2d 61 61 34 66 39 65 39 63 65 63 33 62"
	const childHex = "d9 24 30 31 61 32 31 62 30 32 2d 37 64 31 37 2d 37 61 31 65 2d 62 38 38 36 2d 36 63 61 32 38 32 33 30 36 66 63 31"
	ids := map[string]string{"01a21b02-5d46-7927-84fb-aa4f9e9cec3b": parent.ID}
	call := func(name, req string) wire.Packet {
		t.Helper()
		c.send(capturedIDs(t, req, ids))
		return c.recv()
	}
	// #198 getChild() → #199 ext 109 with parentId = the parent's id.
	p := call("#198", "00 00 00 3f 43 92 "+parentHex+" a8 67 65 74 43 68 69 6c 64")
	child, ok := decodeAny(t, p.Data).(wire.Definition)
	if p.Flags != 0x03 || !ok || child.ParentID != parent.ID || child.PeerID != "ts-server" || child.Meta.Name != "child" || child.Meta.Version != "1.0.0" || child.Meta.Methods["hello"].Arguments[0].Type != "String" || !bytes.Contains(p.Data, []byte("\xaaproperties\x80")) {
		t.Fatalf("#199: flags %#x %+v", p.Flags, decodeAny(t, p.Data))
	}
	if !bytes.HasPrefix(p.Data, []byte{0xc7}) || p.Data[2] != 0x6d {
		t.Fatalf("#199: not ext 109: %x", p.Data[:3])
	}
	ids["01a21b02-7d17-7a1e-b886-6ca282306fc1"] = child.ID
	// #201 hello("x") on the child → #202.
	if p := call("#201", "00 00 00 40 43 93 "+childHex+" a5 68 65 6c 6c 6f a1 78"); !bytes.Equal(p.Data, unhex(t, "b0 68 65 6c 6c 6f 20 78 20 66 72 6f 6d 20 6b 69 64")) {
		t.Fatalf("#202: %x", p.Data)
	}
	// #204 getChild() again → #205 the same definition.
	if p := call("#204", "00 00 00 41 43 92 "+parentHex+" a8 67 65 74 43 68 69 6c 64"); decodeAny(t, p.Data).(wire.Definition).ID != child.ID {
		t.Fatal("#205: another id for the same child")
	}
	// #207 useChild(Reference) → #208.
	if p := call("#207", "00 00 00 42 43 93 "+parentHex+" a8 75 73 65 43 68 69 6c 64 c7 26 6c "+childHex); p.Flags != 0x03 || !bytes.Equal(p.Data, unhex(t, "b6 68 65 6c 6c 6f 20 76 69 61 2d 72 65 66 20 66 72 6f 6d 20 6b 69 64")) {
		t.Fatalf("#208: flags %#x %x", p.Flags, p.Data)
	}
	// #210 newChild("fresh") → #211 a new id each time.
	p = call("#210", "00 00 00 43 43 93 "+parentHex+" a8 6e 65 77 43 68 69 6c 64 a5 66 72 65 73 68")
	if fresh := decodeAny(t, p.Data).(wire.Definition); fresh.ID == child.ID || fresh.ParentID != parent.ID {
		t.Fatalf("#211: %+v (parent %s, child %s)", fresh, parent.ID, child.ID)
	}
	// Reference errors: unknown id 404, a reference to the parent where a
	// child is expected 400, an empty one 400.
	for name, tc := range map[string]struct {
		req  string
		want error
	}{
		"unknown": {"00 00 00 50 43 93 " + parentHex + " a8 75 73 65 43 68 69 6c 64 c7 26 6c d9 24 30 31 61 32 31 62 30 32 2d 37 64 31 37 2d 37 61 31 65 2d 62 38 38 36 2d 36 63 61 32 38 32 33 30 36 66 66 66", rpc.ErrNotFound},
		"parent":  {"00 00 00 51 43 93 " + parentHex + " a8 75 73 65 43 68 69 6c 64 c7 26 6c " + parentHex, rpc.ErrArgumentType},
		"empty":   {"00 00 00 52 43 93 " + parentHex + " a8 75 73 65 43 68 69 6c 64 c7 01 6c a0", rpc.ErrBadRequest},
		"nil":     {"00 00 00 53 43 93 " + parentHex + " a8 75 73 65 43 68 69 6c 64 c7 01 6c c0", rpc.ErrBadRequest},
		"number":  {"00 00 00 54 43 93 " + parentHex + " a8 75 73 65 43 68 69 6c 64 c7 01 6c 07", rpc.ErrBadRequest},
	} {
		p := call(name, tc.req)
		if err := rpcError(t, p); p.Flags != 0x83 || !errors.Is(err, tc.want) {
			t.Errorf("%s: flags %#x %v, want %v", name, p.Flags, err, tc.want)
		}
	}
	// #214 unref_service(child) → #215 undefined; the child is gone.
	if p := call("#214", "00 00 00 44 44 92 ad 75 6e 72 65 66 5f 73 65 72 76 69 63 65 "+childHex); !bytes.Equal(append(wire.AppendHeader(nil, p.ID, p.Flags), p.Data...), unhex(t, "00 00 00 44 04 d4 00 00")) {
		t.Fatalf("#215: %#x %x", p.Flags, p.Data)
	}
	p = call("#217", "00 00 00 45 43 93 "+childHex+" a5 68 65 6c 6c 6f ad 61 66 74 65 72 2d 72 65 6c 65 61 73 65")
	if err := rpcError(t, p); p.Flags != 0x83 || !errors.Is(err, rpc.ErrServiceNotFound) {
		t.Fatalf("#217 after the unref: flags %#x %v", p.Flags, err)
	}
	// unref_service of anything else answers undefined too.
	for _, req := range []string{
		"00 00 00 60 44 92 ad 75 6e 72 65 66 5f 73 65 72 76 69 63 65 " + childHex,
		"00 00 00 61 44 91 ad 75 6e 72 65 66 5f 73 65 72 76 69 63 65",
		"00 00 00 62 44 92 ad 75 6e 72 65 66 5f 73 65 72 76 69 63 65 07",
		"00 00 00 63 44 92 ad 75 6e 72 65 66 5f 73 65 72 76 69 63 65 " + parentHex,
	} {
		if p := call("unref", req); p.Flags != 0x04 || !bytes.Equal(p.Data, []byte{0xd4, 0, 0}) {
			t.Errorf("unref %s: %#x %x", req[:11], p.Flags, p.Data)
		}
	}
	// The parent is public: unref does not evict it.
	if p := call("#198 again", "00 00 00 64 43 92 "+parentHex+" a8 67 65 74 43 68 69 6c 64"); p.Flags != 0x03 {
		t.Fatalf("the parent after an unref of it: %#x", p.Flags)
	}
}

// TestCoreTasks: the core tasks a Titan client sends, with Titan's
// answers (capture 2 #116, #119, #123, #127, #131).
func TestCoreTasks(t *testing.T) {
	server := startNode(t, netron.Config{ID: "ts-server", Host: "127.0.0.1", Server: true})
	c := dialRaw(t, server.URL(), "ts-client", false)
	for _, tc := range []struct{ name, req, want string }{
		{"#115 invalidate_cache()", "00 00 00 28 44 91 b0 69 6e 76 61 6c 69 64 61 74 65 5f 63 61 63 68 65", "00 00 00 28 04 00"},
		{"#118 invalidate_cache({pattern, servicesOnly})", "00 00 00 29 44 92 b0 69 6e 76 61 6c 69 64 61 74 65 5f 63 61 63 68 65 82 a7 70 61 74 74 65 72 6e a5 63 61 6c 63 2a ac 73 65 72 76 69 63 65 73 4f 6e 6c 79 c3", "00 00 00 29 04 00"},
	} {
		c.send(unhex(t, tc.req))
		p := c.recv()
		if got := append(wire.AppendHeader(nil, p.ID, p.Flags), p.Data...); !bytes.Equal(got, unhex(t, tc.want)) {
			t.Errorf("%s: got %x want %s", tc.name, got, tc.want)
		}
	}
	// #121 authenticate without auth → #123, byte for byte but the timestamp.
	c.send(unhex(t, "00 00 00 2a 44 92 ac 61 75 74 68 65 6e 74 69 63 61 74 65 82 a8 75 73 65 72 6e 61 6d 65 a5 61 6c 69 63 65 a8 70 61 73 73 77 6f 72 64 a6 73 65 63 72 65 74"))
	p := c.recv()
	want123 := unhex(t, "c7 81 6e aa 54 69 74 61 6e 45 72 72 6f 72 cd 01 f7 bd 41 75 74 68 65 6e 74 69 63 61 74 69 6f 6e 20 6e 6f 74 20 63 6f 6e 66 69 67 75 72 65 64 81 a4 68 69 6e 74 d9 34 43 61 6c 6c 20 6e 65 74 72 6f 6e 2e 63 6f 6e 66 69 67 75 72 65 41 75 74 68 28 29 20 74 6f 20 73 65 74 20 75 70 20 61 75 74 68 65 6e 74 69 63 61 74 69 6f 6e 80 cb 42 7a 21 b0 26 60 00 00 d4 00 00 d4 00 00 d4 00 00 d4 00 00 c0 c0 c0")
	if p.Flags != 0x84 || !bytes.Equal(maskTimestamp(p.Data), maskTimestamp(want123)) {
		t.Fatalf("#123: %#x\n got %x\nwant %x", p.Flags, p.Data, want123)
	}
	// expose_service / unexpose_service: Titan's 403 (remote exposure is
	// off), details {task, peerId}.
	for _, task := range []string{"expose_service", "unexpose_service"} {
		c.send(append(wire.AppendHeader(nil, 0x30, 0x44), mustMarshal(t, []any{task, map[string]any{"name": "evil", "version": "1.0.0"}})...))
		p := c.recv()
		te, ok := decodeAny(t, p.Data).(wire.TitanError)
		if p.Flags != 0x84 || !ok || te.Code != 403 || te.Details["task"] != task || te.Details["peerId"] != "ts-client" ||
			te.Message != "Core task '"+task+"' is disabled for remote peers. Set Netron option 'allowRemoteServiceExposure: true' to allow federated peers to publish or withdraw services, and gate with an AuthorizationManager." {
			t.Errorf("%s: %#x %#v", task, p.Flags, decodeAny(t, p.Data))
		}
	}
}

// TestAuthenticateTask: with an Authenticator, authenticate answers
// Titan's map, {success, context} or {success: false, error}.
func TestAuthenticateTask(t *testing.T) {
	const token = "s3cret-token"
	server := startNode(t, netron.Config{ID: "srv", Host: "127.0.0.1", Server: true, Auth: netron.AuthConfig{Token: token, MaxFailures: 10}})
	client := startNode(t, netron.Config{ID: "cli", Auth: netron.AuthConfig{DialToken: token}})
	ctx := context.Background()
	p, err := client.Connect(ctx, server.URL())
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		Success bool           `msgpack:"success"`
		Context map[string]any `msgpack:"context"`
		Error   string         `msgpack:"error"`
	}
	for _, tc := range []struct {
		creds any
		want  result
	}{
		{map[string]any{"token": token}, result{Success: true, Context: map[string]any{"userId": "token", "roles": []any{}, "permissions": []any{}}}},
		{map[string]any{"token": "wrong"}, result{Error: "wrong token"}},
		{map[string]any{"token": "   "}, result{Error: "Token cannot be empty"}},
		{map[string]any{"username": ""}, result{Error: "Username cannot be empty"}},
		{map[string]any{"username": "alice"}, result{Error: "Password must be a string"}},
		{map[string]any{"username": "alice", "password": "pw"}, result{Error: "no token"}},
		{"not a map", result{Error: "Credentials must be an object"}},
	} {
		r, err := p.RunTask(ctx, "authenticate", tc.creds)
		if err != nil {
			t.Fatal(err)
		}
		var got result
		if err := r.Decode(&got); err != nil {
			t.Fatal(err)
		}
		if got.Success != tc.want.Success || got.Error != tc.want.Error || (tc.want.Context != nil && got.Context["userId"] != tc.want.Context["userId"]) {
			t.Errorf("authenticate(%v) = %+v, want %+v", tc.creds, got, tc.want)
		}
	}
}
