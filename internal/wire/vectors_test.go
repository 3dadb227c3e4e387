package wire

import (
	"bytes"
	"math"
	"reflect"
	"testing"
)

// Test vectors copied from /work/shared/reference/netron-wire-capture-1.txt
// ("c1 #n") and netron-wire-capture-2.txt ("c2 #n", PART B): the bytes of
// one WebSocket message each, as Titan's Netron sent them. docs/protocol.md
// lists the same vectors.

const (
	calcDefID     = "01a21afd-f0a7-7db5-8e37-e6b12ddf25fe"
	streamerDefID = "01a21b02-5d46-7924-a290-4f0d610e11a5"
	propsDefID    = "01a21b02-5d46-7925-97d1-d6c26d4af073"
)

// Stack texts of the two JS errors. The captures omit the hex of these
// frames (the stacks held file paths) and print the fields with shortened
// paths; the vectors below are rebuilt from those fields with the exact
// layout the annotation gives (offsets, formats, counts).
const (
	stackCustom = "CustomError: custom failure\n    at Errs.custom (file:///app/proto2.mjs:20013:15)\n    at ServiceStub.call (file:///app/proto2.mjs:6064:43)\n    at _RemotePeer.handlePacket (file:///app/proto2.mjs:8075:58)\n    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)"
	stackDiv    = "Error: division by zero\n    at CalculatorService.div (file:///app/calc.mjs:19551:17)\n    at ServiceStub.call (file:///app/calc.mjs:5921:43)\n    at _RemotePeer.handlePacket (file:///app/calc.mjs:7917:58)\n    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)"
)

func numberMethod() MethodMeta {
	return MethodMeta{Type: "Number", Arguments: []ArgumentMeta{{Index: 0, Type: "Number"}, {Index: 1, Type: "Number"}}}
}

// calcDef is the Definition of c1 #3.
var calcDef = Definition{
	ID:     calcDefID,
	PeerID: "ts-server",
	Meta: ServiceMeta{
		Name:    "calculator",
		Version: "1.0.0",
		Methods: map[string]MethodMeta{"add": numberMethod(), "div": numberMethod()},
	},
}

// streamerDef is the Definition of c2 #4: a method without arguments.
var streamerDef = Definition{
	ID:     streamerDefID,
	PeerID: "ts-server",
	Meta: ServiceMeta{
		Name:    "streamer",
		Version: "1.0.0",
		Methods: map[string]MethodMeta{
			"count":   {Type: "void", Arguments: []ArgumentMeta{{Index: 0, Type: "Number"}}},
			"failing": {Type: "void"},
			"slow":    {Type: "void", Arguments: []ArgumentMeta{{Index: 0, Type: "Number"}}},
		},
	},
}

// propsDef is the Definition of c2 #77: properties.
var propsDef = Definition{
	ID:     propsDefID,
	PeerID: "ts-server",
	Meta: ServiceMeta{
		Name:    "props",
		Version: "1.0.0",
		Properties: map[string]PropertyMeta{
			"counter": {Type: "Number"},
			"label":   {Type: "String", Readonly: true},
		},
		Methods: map[string]MethodMeta{"bump": {Type: "Number"}},
	},
}

// lateDef is the Definition inside the service:expose event of c2 #56.
var lateDef = Definition{
	ID:     "01a21b02-6420-7100-93cf-b1b96b1d02a3",
	PeerID: "ts-server",
	Meta: ServiceMeta{
		Name:    "late",
		Version: "1.0.0",
		Methods: map[string]MethodMeta{"ping": {Type: "void"}},
	},
}

// serviceExpose is the payload of the service:expose event, keys in Titan's order.
type serviceExpose struct {
	Name          string     `msgpack:"name"`
	Version       string     `msgpack:"version"`
	QualifiedName string     `msgpack:"qualifiedName"`
	PeerID        string     `msgpack:"peerId"`
	Definition    Definition `msgpack:"definition"`
}

// customMeta is the meta field of the CustomError of c2 #255, keys in
// Titan's order (a map[string]any would be written sorted).
type customMeta struct {
	Retry bool `json:"retry"` // json tag: checks the fallback to json tags
	N     int  `json:"n"`
}

type vector struct {
	name        string
	frame       []byte
	id          uint32
	flags       uint8
	streamID    uint32
	streamIndex uint32
	// value, if not nil (or if encodeNil), is encoded with Marshal: the
	// packet built from it must be frame, byte for byte.
	value     any
	encodeNil bool
	// decoded is what Unmarshal into an empty interface must give.
	decoded any
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func vectors(t testing.TB) []vector {
	h := func(s string) []byte { return unhex(t, s) }
	return []vector{
		{
			name: "c1 #2 TASK query_interface request", id: 1, flags: 0x44,
			frame:   h("000000014492af71756572795f696e74657266616365b063616c63756c61746f7240312e302e30"),
			value:   []any{"query_interface", "calculator@1.0.0"},
			decoded: []any{"query_interface", "calculator@1.0.0"},
		},
		{
			name: "c1 #3 TASK response Definition (ext 109)", id: 1, flags: 0x04,
			frame: h(`0000000104c801296dd92430316132316166642d663061372d376462352d386533372d653662313264646632356665a0a974732d73657276657288a4
				6e616d65aa63616c63756c61746f72a776657273696f6ea5312e302e30aa70726f7065727469657380a76d6574686f647382a361646482a474797065
				a64e756d626572a9617267756d656e74739282a5696e64657800a474797065a64e756d62657282a5696e64657801a474797065a64e756d626572a364
				697682a474797065a64e756d626572a9617267756d656e74739282a5696e64657800a474797065a64e756d62657282a5696e64657801a474797065a6
				4e756d626572a8636f6e7472616374d40000aa7472616e73706f727473d40000ab5f7472616e73706f727473d40000af7472616e73706f7274436f6e
				666967d40000`),
			value:   calcDef,
			decoded: calcDef,
		},
		{
			name: "c1 #4 CALL add(2, 3)", id: 2, flags: 0x43,
			frame:   h("000000024394d92430316132316166642d663061372d376462352d386533372d653662313264646632356665a36164640203"),
			value:   []any{calcDefID, "add", 2, 3},
			decoded: []any{calcDefID, "add", int64(2), int64(3)},
		},
		{
			name: "c1 #5 CALL response 5", id: 2, flags: 0x03,
			frame: h("000000020305"), value: int64(5), decoded: int64(5),
		},
		{
			name: "c1 #6 CALL add(2.5, 0.25): float64", id: 3, flags: 0x43,
			frame:   h("000000034394d92430316132316166642d663061372d376462352d386533372d653662313264646632356665a3616464cb4004000000000000cb3fd0000000000000"),
			value:   []any{calcDefID, "add", 2.5, 0.25},
			decoded: []any{calcDefID, "add", 2.5, 0.25},
		},
		{
			name: "c1 #7 CALL response 2.75", id: 3, flags: 0x03,
			frame: h("0000000303cb4006000000000000"), value: 2.75, decoded: 2.75,
		},
		{
			name: "c1 #8 CALL add(4294967296.0, -7): JS sends 2^32 as float64", id: 4, flags: 0x43,
			frame:   h("000000044394d92430316132316166642d663061372d376462352d386533372d653662313264646632356665a3616464cb41f0000000000000f9"),
			value:   []any{calcDefID, "add", float64(1 << 32), -7},
			decoded: []any{calcDefID, "add", float64(1 << 32), int64(-7)},
		},
		{
			name: "c1 #9 CALL response 4294967289: uint32", id: 4, flags: 0x03,
			frame: h("0000000403cefffffff9"), value: int64(4294967289), decoded: int64(4294967289),
		},
		{
			name: "c1 #10 CALL div(1, 0)", id: 5, flags: 0x43,
			frame:   h("000000054394d92430316132316166642d663061372d376462352d386533372d653662313264646632356665a36469760100"),
			value:   []any{calcDefID, "div", 1, 0},
			decoded: []any{calcDefID, "div", int64(1), int64(0)},
		},
		{
			name: "c1 #11 CALL error response JS Error (ext 126), rebuilt", id: 5, flags: 0x83,
			frame:   cat(h("0000000583c8013a7e0001a54572726f72da011c"), []byte(stackDiv), h("b06469766973696f6e206279207a65726f0000")),
			value:   JSError{Kind: JSKindError, Name: "Error", Stack: stackDiv, Message: "division by zero"},
			decoded: JSError{Kind: JSKindError, Name: "Error", Stack: stackDiv, Message: "division by zero"},
		},
		{
			name: "c1 #13 TASK error response TitanError 404 (ext 110)", id: 6, flags: 0x84,
			frame: h(`0000000684c7636eaa546974616e4572726f72cd0194d9205365727669636520276e6f7375636840312e302e3027206e6f7420666f756e6481ab7365
				72766963654e616d65ac6e6f7375636840312e302e3080cb427a21afdf135000d40000d40000d40000d40000c0c0c0`),
			value: TitanError{
				Name: "TitanError", Code: 404, Message: "Service 'nosuch@1.0.0' not found",
				Details: map[string]any{"serviceName": "nosuch@1.0.0"}, Timestamp: 1795749179701,
			},
			decoded: TitanError{
				Name: "TitanError", Code: 404, Message: "Service 'nosuch@1.0.0' not found",
				Details: map[string]any{"serviceName": "nosuch@1.0.0"}, Timestamp: 1795749179701,
			},
		},
		{
			name: "c1 #16 CALL by qualified service name", id: 7, flags: 0x43,
			frame:   h("000000074394b063616c63756c61746f7240312e302e30a36164640203"),
			value:   []any{"calculator@1.0.0", "add", 2, 3},
			decoded: []any{"calculator@1.0.0", "add", int64(2), int64(3)},
		},
		{
			name: "c2 #4 Definition with a method without arguments", id: 1, flags: 0x04,
			frame: h(`0000000104c8011c6dd92430316132316230322d356434362d373932342d613239302d346630643631306531316135a0a974732d73657276657288a4
				6e616d65a873747265616d6572a776657273696f6ea5312e302e30aa70726f7065727469657380a76d6574686f647383a5636f756e7482a474797065
				a4766f6964a9617267756d656e74739182a5696e64657800a474797065a64e756d626572a76661696c696e6782a474797065a4766f6964a961726775
				6d656e747390a4736c6f7782a474797065a4766f6964a9617267756d656e74739182a5696e64657800a474797065a64e756d626572a8636f6e747261
				6374d40000aa7472616e73706f727473d40000ab5f7472616e73706f727473d40000af7472616e73706f7274436f6e666967d40000`),
			value:   streamerDef,
			decoded: streamerDef,
		},
		{
			name: "c2 #6 CALL response StreamReference (ext 107)", id: 2, flags: 0x03,
			frame:   h("0000000203c70e6ba1310101a974732d636c69656e74"),
			value:   StreamReference{StreamID: "1", Type: 1, Live: true, PeerID: "ts-client"},
			decoded: StreamReference{StreamID: "1", Type: 1, Live: true, PeerID: "ts-client"},
		},
		{
			name: "c2 #7 STREAM chunk 0", id: 3, flags: 0x65, streamID: 1, streamIndex: 0,
			frame:   h("000000036582a16900a27371000000000100000000"),
			value:   map[string]any{"i": 0, "sq": 0},
			decoded: map[string]any{"i": int64(0), "sq": int64(0)},
		},
		{
			name: "c2 #8 STREAM chunk 1", id: 4, flags: 0x65, streamID: 1, streamIndex: 1,
			frame:   h("000000046582a16901a27371010000000100000001"),
			value:   map[string]any{"i": 1, "sq": 1},
			decoded: map[string]any{"i": int64(1), "sq": int64(1)},
		},
		{
			name: "c2 #9 STREAM chunk 2", id: 5, flags: 0x65, streamID: 1, streamIndex: 2,
			frame:   h("000000056582a16902a27371040000000100000002"),
			value:   map[string]any{"i": 2, "sq": 4},
			decoded: map[string]any{"i": int64(2), "sq": int64(4)},
		},
		{
			name: "c2 #10 STREAM end: eos, nil, index = chunk count", id: 6, flags: 0x75, streamID: 1, streamIndex: 3,
			frame: h("0000000675c00000000100000003"), encodeNil: true, decoded: nil,
		},
		{
			name: "c2 #32 STREAM chunk string", id: 1, flags: 0x65, streamID: 1, streamIndex: 0,
			frame: h("0000000165a1610000000100000000"), value: "a", decoded: "a",
		},
		{
			name: "c2 #38 STREAM_CLOSE from a failing generator, rebuilt", id: 3, flags: 0x47,
			frame:   h("000000034782a873747265616d496401a6726561736f6eae67656e657261746f7220626f6f6d"),
			value:   StreamCloseData{StreamID: 1, Reason: "generator boom"},
			decoded: map[string]any{"streamId": int64(1), "reason": "generator boom"},
		},
		{
			name: "c2 #43 TASK subscribe", id: 16, flags: 0x44,
			frame:   h("000000104492a9737562736372696265a46e657773"),
			value:   []any{"subscribe", "news"},
			decoded: []any{"subscribe", "news"},
		},
		{
			name: "c2 #44 TASK response undefined", id: 16, flags: 0x04,
			frame: h("0000001004d40000"), value: Undefined{}, decoded: Undefined{},
		},
		{
			name: "c2 #45 TASK emit request with an object", id: 17, flags: 0x44,
			frame:   h("000000114493a4656d6974a46e65777382a8686561646c696e65a56669727374a16e01"),
			value:   []any{"emit", "news", map[string]any{"headline": "first", "n": 1}},
			decoded: []any{"emit", "news", map[string]any{"headline": "first", "n": int64(1)}},
		},
		{
			name: "c2 #46 TASK emit request with several arguments", id: 18, flags: 0x44,
			frame:   h("000000124495a4656d6974a46e657773a67365636f6e640292c3c0"),
			value:   []any{"emit", "news", "second", 2, []any{true, nil}},
			decoded: []any{"emit", "news", "second", int64(2), []any{true, nil}},
		},
		{
			name: "c2 #47 TASK response undefined to emit", id: 17, flags: 0x04,
			frame: h("0000001104d40000"), value: &Undefined{}, decoded: Undefined{},
		},
		{
			name: "c2 #56 TASK emit service:expose carrying a Definition", id: 22, flags: 0x44,
			frame: h(`000000164493a4656d6974ae736572766963653a6578706f736585a46e616d65a46c617465a776657273696f6ea5312e302e30ad7175616c6966
				6965644e616d65aa6c61746540312e302e30a6706565724964a974732d736572766572aa646566696e6974696f6ec7b66dd92430316132316230322d
				363432302d373130302d393363662d623162393662316430326133a0a974732d73657276657288a46e616d65a46c617465a776657273696f6ea5312e
				302e30aa70726f7065727469657380a76d6574686f647381a470696e6782a474797065a4766f6964a9617267756d656e747390a8636f6e7472616374
				d40000aa7472616e73706f727473d40000ab5f7472616e73706f727473d40000af7472616e73706f7274436f6e666967d40000`),
			value: []any{"emit", "service:expose", serviceExpose{
				Name: "late", Version: "1.0.0", QualifiedName: "late@1.0.0", PeerID: "ts-server", Definition: lateDef,
			}},
			decoded: []any{"emit", "service:expose", map[string]any{
				"name": "late", "version": "1.0.0", "qualifiedName": "late@1.0.0", "peerId": "ts-server", "definition": lateDef,
			}},
		},
		{
			name: "c2 #77 Definition with properties", id: 28, flags: 0x04,
			frame: h(`0000001c04c7f56dd92430316132316230322d356434362d373932352d393764312d643663323664346166303733a0a974732d73657276657288a4
				6e616d65a570726f7073a776657273696f6ea5312e302e30aa70726f7065727469657382a7636f756e74657282a474797065a64e756d626572a87265
				61646f6e6c79c2a56c6162656c82a474797065a6537472696e67a8726561646f6e6c79c3a76d6574686f647381a462756d7082a474797065a64e756d
				626572a9617267756d656e747390a8636f6e7472616374d40000aa7472616e73706f727473d40000ab5f7472616e73706f727473d40000af7472616e
				73706f7274436f6e666967d40000`),
			value:   propsDef,
			decoded: propsDef,
		},
		{
			name: "c2 #100 GET error response TitanError 400, empty details", id: 35, flags: 0x81,
			frame: h(`0000002381c73e6eaa546974616e4572726f72cd0190b5496e76616c69642070726f7065727479206e616d658080cb427a21b0265f6000d40000d4
				0000d40000d40000c0c0c0`),
			value:   TitanError{Name: "TitanError", Code: 400, Message: "Invalid property name", Timestamp: 1795749471734},
			decoded: TitanError{Name: "TitanError", Code: 400, Message: "Invalid property name", Timestamp: 1795749471734},
		},
		{
			name: "c2 #151 CALL response NaN", id: 50, flags: 0x03,
			frame: h("0000003203cb7ff8000000000000"), value: math.Float64frombits(0x7ff8000000000000),
		},
		{
			name: "c2 #207 CALL with a Reference argument (ext 108)", id: 66, flags: 0x43,
			frame: h(`000000424393d92430316132316230322d356434362d373932372d383466622d616134663965396365633362a87573654368696c64c7266cd924303161
				32316230322d376431372d376131652d623838362d366361323832333036666331`),
			value:   []any{"01a21b02-5d46-7927-84fb-aa4f9e9cec3b", "useChild", &Reference{DefID: "01a21b02-7d17-7a1e-b886-6ca282306fc1"}},
			decoded: []any{"01a21b02-5d46-7927-84fb-aa4f9e9cec3b", "useChild", Reference{DefID: "01a21b02-7d17-7a1e-b886-6ca282306fc1"}},
		},
		{
			name: "c2 #255 CALL error response CustomError with custom fields (ext 126), rebuilt", id: 82, flags: 0x83,
			frame: cat(h("0000005283c8015c7e0001ab437573746f6d4572726f72da011c"), []byte(stackCustom),
				h("ae637573746f6d206661696c7572650002a4636f6465a8455f435553544f4da46d65746182a57265747279c3a16e03")),
			value: JSError{
				Kind: JSKindError, Name: "CustomError", Stack: stackCustom, Message: "custom failure",
				Fields: map[string]any{"code": "E_CUSTOM", "meta": customMeta{Retry: true, N: 3}},
			},
			decoded: JSError{
				Kind: JSKindError, Name: "CustomError", Stack: stackCustom, Message: "custom failure",
				Fields: map[string]any{"code": "E_CUSTOM", "meta": map[string]any{"retry": true, "n": int64(3)}},
			},
		},
		{
			name: "c2 #259 CALL error response TitanError with extras", id: 83, flags: 0x83,
			frame: h(`0000005383c74e6eaa546974616e4572726f72cd01adae71756f746120657863656564656481a4706c616ea46672656580cb427a21b027f4b000d4
				0000d40000d40000d40000c0c082a571756f74610aa4757365640c`),
			value: TitanError{
				Name: "TitanError", Code: 429, Message: "quota exceeded", Details: map[string]any{"plan": "free"},
				Timestamp: 1795749478219, Extras: map[string]any{"quota": 10, "used": 12},
			},
			decoded: TitanError{
				Name: "TitanError", Code: 429, Message: "quota exceeded", Details: map[string]any{"plan": "free"},
				Timestamp: 1795749478219, Extras: map[string]any{"quota": int64(10), "used": int64(12)},
			},
		},
		{
			name: "c2 #268 PING request nil", id: 0x70000001, flags: 0x40,
			frame: h("7000000140c0"), encodeNil: true, decoded: nil,
		},
		{
			name: "c2 #269 PING response: same id, flags 0x00, data echoed", id: 0x70000001, flags: 0x00,
			frame: h("7000000100c0"), encodeNil: true, decoded: nil,
		},
		{
			name: "c2 #272 PING request 1234", id: 0x70000002, flags: 0x40,
			frame: h("7000000240cd04d2"), value: 1234, decoded: int64(1234),
		},
		{
			name: "c2 #273 PING response 1234", id: 0x70000002, flags: 0x00,
			frame: h("7000000200cd04d2"), value: uint16(1234), decoded: int64(1234),
		},
		{
			name: "c2 #280 bytes de ad be ef 00 ff: a PING response holding -1", id: 0xdeadbeef, flags: 0x00,
			frame: h("deadbeef00ff"), value: -1, decoded: int64(-1),
		},
		{
			name: "c2 #311 PING in a text frame", id: 5, flags: 0x40,
			frame: h("000000054001"), value: 1, decoded: int64(1),
		},
		{
			name: "c2 #315 type 8 (EXT) is a packet for Decode", id: 0x70000007, flags: 0x48,
			frame: h("7000000748c0"), encodeNil: true, decoded: nil,
		},
		{
			name: "c2 #319 CALL whose data is a string", id: 0x70000008, flags: 0x43,
			frame: h("7000000843a3616263"), value: "abc", decoded: "abc",
		},
		{
			name: "c2 #321 TitanError 404 with details in Titan's key order (decode only)", id: 0x70000008, flags: 0x83,
			frame: h(`7000000883c75a6eaa546974616e4572726f72cd0194bb5365727669636520776974682069642061206e6f7420666f756e6482a87265736f7572
				6365a753657276696365a26964a16180cb427a21b028628000d40000d40000d40000d40000c0c0c0`),
			decoded: TitanError{
				Name: "TitanError", Code: 404, Message: "Service with id a not found",
				Details: map[string]any{"resource": "Service", "id": "a"}, Timestamp: 1795749479976,
			},
		},
		{
			name: "c2 #328 unsolicited STREAM chunk", id: 0x7000000a, flags: 0x65, streamID: 77, streamIndex: 0,
			frame: h("7000000a65a1780000004d00000000"), value: "x", decoded: "x",
		},
		{
			name: "c2 #341 STREAM_CLOSE from a consumer", id: 0x70000011, flags: 0x47,
			frame:   h("700000114782a873747265616d496404a6726561736f6eaf636f6e73756d65722d63616e63656c"),
			value:   &StreamCloseData{StreamID: 4, Reason: "consumer-cancel"},
			decoded: map[string]any{"streamId": int64(4), "reason": "consumer-cancel"},
		},
		{
			name: "c2 #343 STREAM_ERROR", id: 0x70000012, flags: 0x46,
			frame:   h("700000124682a873747265616d496404a76d657373616765ae636f6e73756d65722d6572726f72"),
			value:   StreamErrorData{StreamID: 4, Message: "consumer-error"},
			decoded: map[string]any{"streamId": int64(4), "message": "consumer-error"},
		},
	}
}

// TestVectors checks every capture vector both ways: Decode gives the
// header, Data and trailer, Append rebuilds the frame, Unmarshal gives the
// Go value, and Marshal of the Go value gives Titan's bytes exactly.
func TestVectors(t *testing.T) {
	for _, v := range vectors(t) {
		t.Run(v.name, func(t *testing.T) {
			p, err := Decode(v.frame)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if p.ID != v.id || p.Flags != v.flags || p.StreamID != v.streamID || p.StreamIndex != v.streamIndex {
				t.Errorf("Decode = id %#x flags %#02x stream %d/%d, want id %#x flags %#02x stream %d/%d",
					p.ID, p.Flags, p.StreamID, p.StreamIndex, v.id, v.flags, v.streamID, v.streamIndex)
			}
			if got := p.Append(nil); !bytes.Equal(got, v.frame) {
				diffHex(t, got, v.frame)
			}

			if v.value != nil || v.encodeNil {
				data, err := Marshal(v.value)
				if err != nil {
					t.Fatalf("Marshal: %v", err)
				}
				q := Packet{ID: v.id, Flags: v.flags, Data: data, StreamID: v.streamID, StreamIndex: v.streamIndex}
				if got := q.Append(nil); !bytes.Equal(got, v.frame) {
					t.Errorf("encoding %T:", v.value)
					diffHex(t, got, v.frame)
				}
				// AppendMarshal after a header gives the same frame.
				buf := AppendHeader(make([]byte, 0, 8), v.id, v.flags)
				if buf, err = AppendMarshal(buf, v.value); err != nil {
					t.Fatalf("AppendMarshal: %v", err)
				}
				if p.Type() == TypeStream {
					buf = AppendTrailer(buf, v.streamID, v.streamIndex)
				}
				if !bytes.Equal(buf, v.frame) {
					t.Errorf("AppendMarshal %T:", v.value)
					diffHex(t, buf, v.frame)
				}
			}

			var got any
			if err := Unmarshal(p.Data, &got); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if f, ok := got.(float64); ok && math.IsNaN(f) {
				return
			}
			if !reflect.DeepEqual(got, v.decoded) {
				t.Errorf("Unmarshal = %#v\n        want %#v", got, v.decoded)
			}
		})
	}
}

// TestVectorDefinitionSize pins the size of the Definition of c1 #3: the
// Go encoder must produce those 306 bytes given the same fields.
func TestVectorDefinitionSize(t *testing.T) {
	data, err := Marshal(calcDef)
	if err != nil {
		t.Fatal(err)
	}
	frame := (&Packet{ID: 1, Flags: Flags(TypeTask, false, 0), Data: data}).Append(nil)
	if len(frame) != 306 {
		t.Errorf("frame is %d bytes, want 306", len(frame))
	}
}
