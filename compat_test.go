package netron_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
)

// TitanCalculator is the calculator of the wire captures: add and div over
// JavaScript numbers, div failing on zero.
type TitanCalculator struct{}

func (TitanCalculator) Add(a, b float64) float64 { return a + b }

func (TitanCalculator) Div(a, b float64) (float64, error) {
	if b == 0 {
		return 0, errors.New("division by zero")
	}
	return a / b, nil
}

// rawClient speaks the wire format byte by byte, like the capture's clients.
type rawClient struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialRaw(t *testing.T, url, id string, answerText bool) *rawClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url+"?id="+id, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(64 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	typ, msg, err := ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if typ != websocket.MessageBinary || !bytes.HasPrefix(msg, []byte(`{"type":"id","id":"`)) {
		t.Fatalf("handshake: %v %s", typ, msg)
	}
	mt := websocket.MessageBinary
	if answerText {
		mt = websocket.MessageText
	}
	if err := ws.Write(ctx, mt, []byte(`{"type":"client-id","id":"`+id+`"}`)); err != nil {
		t.Fatal(err)
	}
	return &rawClient{t: t, ws: ws}
}

func (c *rawClient) send(frame []byte) {
	c.t.Helper()
	if err := c.ws.Write(context.Background(), websocket.MessageBinary, frame); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) recv() wire.Packet {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, msg, err := c.ws.Read(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	p, err := wire.Decode(msg)
	if err != nil {
		c.t.Fatalf("reply %x: %v", msg, err)
	}
	return p
}

// closed waits for the server to close the connection and returns the
// close status and reason.
func (c *rawClient) closed() (websocket.StatusCode, string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, _, err := c.ws.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, ce.Reason
			}
			c.t.Fatalf("connection ended without a close frame: %v", err)
		}
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decodeAny(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := wire.Unmarshal(data, &v); err != nil {
		t.Fatalf("%x: %v", data, err)
	}
	return v
}

func asFloat(v any) (float64, bool) {
	rv := reflect.ValueOf(v)
	switch {
	case rv.CanFloat():
		return rv.Float(), true
	case rv.CanInt():
		return float64(rv.Int()), true
	case rv.CanUint():
		return float64(rv.Uint()), true
	}
	return 0, false
}

// The client→server packets of netron-wire-capture-1.txt, byte for byte,
// against our node serving the same calculator.
func TestCapture1Replay(t *testing.T) {
	server := startNode(t, netron.Config{ID: "ts-server", Host: "127.0.0.1", Server: true})
	if err := server.Expose("calculator@1.0.0", TitanCalculator{}); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, server.URL(), "ts-client", false)

	// #2 query_interface("calculator@1.0.0") → #3 Definition.
	c.send(unhex(t, "000000014492af71756572795f696e74657266616365b063616c63756c61746f7240312e302e30"))
	p := c.recv()
	if p.ID != 1 || p.Flags != 0x04 {
		t.Fatalf("#3: id %d flags %#x", p.ID, p.Flags)
	}
	def, ok := decodeAny(t, p.Data).(wire.Definition)
	if !ok {
		t.Fatalf("#3: not a Definition: %x", p.Data)
	}
	if def.PeerID != "ts-server" || def.Meta.Name != "calculator" || def.Meta.Version != "1.0.0" || len(def.ID) != 36 {
		t.Fatalf("#3: %+v", def)
	}
	for _, m := range []string{"add", "div"} {
		mm := def.Meta.Methods[m]
		if mm.Type != "Number" || len(mm.Arguments) != 2 || mm.Arguments[0] != (wire.ArgumentMeta{Index: 0, Type: "Number"}) || mm.Arguments[1] != (wire.ArgumentMeta{Index: 1, Type: "Number"}) {
			t.Fatalf("#3: method %s: %+v", m, mm)
		}
	}
	// The captured CALLs carry Titan's definition id; ours has the same
	// length, so it is substituted in place.
	withDef := func(s string) []byte {
		b := unhex(t, s)
		i := bytes.Index(b, []byte("01a21afd-f0a7-7db5-8e37-e6b12ddf25fe"))
		copy(b[i:], def.ID)
		return b
	}
	for _, step := range []struct {
		name string
		req  []byte
		id   uint32
		want float64
	}{
		{"#4 add(2, 3)", withDef("000000024394d92430316132316166642d663061372d376462352d386533372d653662313264646632356665a36164640203"), 2, 5},
		{"#6 add(2.5, 0.25)", withDef("000000034394d92430316132316166642d663061372d376462352d386533372d653662313264646632356665a3616464cb4004000000000000cb3fd0000000000000"), 3, 2.75},
		{"#8 add(4294967296.0, -7)", withDef("000000044394d92430316132316166642d663061372d376462352d386533372d653662313264646632356665a3616464cb41f0000000000000f9"), 4, 4294967289},
		{"#16 add(2, 3) by service name", unhex(t, "000000074394b063616c63756c61746f7240312e302e30a36164640203"), 7, 5},
	} {
		c.send(step.req)
		p := c.recv()
		got, ok := asFloat(decodeAny(t, p.Data))
		if p.ID != step.id || p.Flags != 0x03 || !ok || got != step.want {
			t.Errorf("%s: id %d flags %#x value %v, want id %d flags 0x03 value %v", step.name, p.ID, p.Flags, got, step.id, step.want)
		}
	}

	// #10 div(1, 0) → #11 error reply, ext 126 Error "division by zero".
	c.send(withDef("000000054394d92430316132316166642d663061372d376462352d386533372d653662313264646632356665a36469760100"))
	p = c.recv()
	je, ok := decodeAny(t, p.Data).(wire.JSError)
	if p.ID != 5 || p.Flags != 0x83 || !ok || je.Kind != wire.JSKindError || je.Name != "Error" || je.Message != "division by zero" {
		t.Fatalf("#11: id %d flags %#x %#v", p.ID, p.Flags, decodeAny(t, p.Data))
	}
	if je.Stack != "" {
		t.Errorf("#11: a Go stack went to the peer: %q", je.Stack)
	}

	// #12 query_interface("nosuch@1.0.0") → #13 TitanError 404.
	c.send(unhex(t, "000000064492af71756572795f696e74657266616365ac6e6f7375636840312e302e30"))
	p = c.recv()
	te, ok := decodeAny(t, p.Data).(wire.TitanError)
	if p.ID != 6 || p.Flags != 0x84 || !ok || te.Code != 404 || te.Name != "TitanError" ||
		te.Message != "Service 'nosuch@1.0.0' not found" || te.Details["serviceName"] != "nosuch@1.0.0" {
		t.Fatalf("#13: id %d flags %#x %#v", p.ID, p.Flags, decodeAny(t, p.Data))
	}
}

// Bad input closes only the connection that sent it, with a reason; the
// node goes on serving its other peers.
func TestMalformedInput(t *testing.T) {
	server := startNode(t, netron.Config{ID: "server", Host: "127.0.0.1", Server: true, MaxPacketSize: 4096})
	if err := server.Expose("calculator@1.0.0", TitanCalculator{}); err != nil {
		t.Fatal(err)
	}
	good := startNode(t, netron.Config{ID: "good"})
	gp, err := good.Connect(context.Background(), server.URL())
	if err != nil {
		t.Fatal(err)
	}
	calc, err := gp.Service(context.Background(), "calculator")
	if err != nil {
		t.Fatal(err)
	}
	stillServing := func(when string) {
		t.Helper()
		if got, err := rpc.Call[float64](context.Background(), calc, "add", 1, 2); err != nil || got != 3 {
			t.Fatalf("%s: the good peer got %v, %v", when, got, err)
		}
	}

	// Frames that are not packets: each closes its own connection.
	for _, bad := range []struct {
		name   string
		frame  string
		status websocket.StatusCode
		reason string
	}{
		{"c1 marker (#283)", "700000304 3c1", websocket.StatusProtocolError, "invalid msgpack"},
		{"random bytes (#287)", "9f13e2c1c107aa55", websocket.StatusProtocolError, "wire:"},
		{"truncated packet (#291)", "7000000443 92a361", websocket.StatusProtocolError, "truncated"},
		{"3-byte frame (#295)", "000001", websocket.StatusProtocolError, "truncated"},
		{"trailing byte (#299)", "7000000543 94b063616c63756c61746f7240312e302e30a3616464010200", websocket.StatusProtocolError, "trailing"},
		{"stream without trailer (#324)", "7000000945 01", websocket.StatusProtocolError, "trailer"},
		{"unknown type 15", "00000009 4f c0", websocket.StatusProtocolError, "unknown packet type"},
		{"oversized", "00000009 43 c5 2000" + strings.Repeat("00", 0x2000), websocket.StatusMessageTooBig, ""},
	} {
		c := dialRaw(t, server.URL(), "raw", false)
		c.send(unhex(t, bad.frame))
		status, reason := c.closed()
		if status != bad.status || !strings.Contains(reason, bad.reason) {
			t.Errorf("%s: closed with %d %q, want %d containing %q", bad.name, status, reason, bad.status, bad.reason)
		}
		stillServing(bad.name)
	}

	// Well-formed packets with bad content get an answer or are dropped;
	// the connection stays.
	c := dialRaw(t, server.URL(), "raw", true)
	// A CALL whose data is a map (Titan crashes on it, phase 9).
	c.send(unhex(t, "700000024383a56465664964b063616c63756c61746f7240312e302e30a66d6574686f64a3616464a46172677392 01 02"))
	p := c.recv()
	if te, ok := decodeAny(t, p.Data).(wire.TitanError); p.Flags != 0x83 || !ok || te.Code != 400 {
		t.Fatalf("CALL with map data: flags %#x %#v", p.Flags, decodeAny(t, p.Data))
	}
	// A TASK whose data is a map (phase 9b).
	c.send(unhex(t, "7000000344 82a47461736ba9737562736372696265a96576656e744e616d65a178"))
	if p := c.recv(); p.Flags != 0x84 {
		t.Fatalf("TASK with map data: flags %#x", p.Flags)
	}
	// A CALL whose data is a string (#319).
	c.send(unhex(t, "7000000843 a3616263"))
	if p := c.recv(); p.Flags != 0x83 {
		t.Fatalf("CALL with string data: flags %#x", p.Flags)
	}
	// A response to an id we never used (#331): dropped.
	c.send(unhex(t, "7000000b 03 05"))
	// A repeated client-id (#307): dropped.
	if err := c.ws.Write(context.Background(), websocket.MessageText, []byte(`{"type":"client-id","id":"again"}`)); err != nil {
		t.Fatal(err)
	}
	// PING is echoed with flags 0x00 (#268/#269, #272/#273), also from a
	// text frame (#311).
	c.send(unhex(t, "70000001 40 c0"))
	if p := c.recv(); p.ID != 0x70000001 || p.Flags != 0 || !bytes.Equal(p.Data, []byte{0xc0}) {
		t.Fatalf("PING: %+v", p)
	}
	if err := c.ws.Write(context.Background(), websocket.MessageText, unhex(t, "00000005 40 01")); err != nil {
		t.Fatal(err)
	}
	if p := c.recv(); p.ID != 5 || p.Flags != 0 || !bytes.Equal(p.Data, []byte{0x01}) {
		t.Fatalf("PING in a text frame: %+v", p)
	}
	// A valid CALL by service name still works on this connection (#334).
	c.send(unhex(t, "700000044394b063616c63756c61746f7240312e302e30a36164640102"))
	if p := c.recv(); p.ID != 0x70000004 || p.Flags != 0x03 || !bytes.Equal(p.Data, []byte{0xcb, 0x40, 0x08, 0, 0, 0, 0, 0, 0}) {
		t.Fatalf("add(1,2) after bad input: %+v", p)
	}
	stillServing("end")
}
