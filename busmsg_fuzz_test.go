package netron

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/netron-go/netron/internal/wire"
)

// FuzzInjectedMessage feeds the decoders of messages published on a
// node's bus by anyone (TopicCalls, TopicEvents, replies) and the splitter
// of request packets from peers: none may panic, and what decodeCall
// accepts has its service and method.
func FuzzInjectedMessage(f *testing.F) {
	seed := func(payload []byte, enc string, isErr bool) { f.Add(payload, enc, isErr) }
	good, _ := wire.Marshal([]any{2, 3})
	seed(good, "", false)
	seed(good, EncodingMsgpack, true)
	seed([]byte(`[1.5,"x",{"a":[1]}]`), EncodingJSON, false)
	seed([]byte(`{"code":404,"name":"TitanError","message":"nope"}`), EncodingJSON, true)
	seed([]byte{0x92, 0x01}, "", false)                   // truncated
	seed([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}, "", false) // huge count
	seed([]byte{0xc1}, "", false)                         // never used
	seed([]byte("hello"), "xml", false)
	f.Fuzz(func(t *testing.T, payload []byte, enc string, isErr bool) {
		m := message.NewMessage("u", payload)
		m.Metadata.Set(MetaService, "calculator")
		m.Metadata.Set(MetaMethod, "add")
		m.Metadata.Set(MetaEvent, "e")
		if enc != "" {
			m.Metadata.Set(MetaEncoding, enc)
		}
		if isErr {
			m.Metadata.Set(MetaError, "true")
		}
		if c, err := decodeCall(m); err == nil && (c.service != "calculator" || c.method != "add" || c.corr != "u") {
			t.Fatalf("decodeCall accepted %+v", c)
		}
		_, _ = DecodeArgs(m)
		_, _ = DecodeEvent(m)
		var v any
		_ = DecodeResult(m, &v)
		var s string
		_ = DecodeArg(m, 0, &s)
		_, _ = splitRequest(payload, wire.TypeCall)
	})
}
