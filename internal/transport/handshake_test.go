package transport

import (
	"strings"
	"testing"
)

func TestParseHandshake(t *testing.T) {
	for in, want := range map[string]bool{
		`{"type":"id","id":"ts-server"}`:                        true,
		`{"type":"client-id","id":"c3a596a9"}`:                  true,
		`{"type":"client-id"}`:                                  true, // no id: accepted as a message, callers check the id
		`{"id":"x"}`:                                            false,
		`{"type":"id","id":"a\u0000b"}`:                         false,
		`{"type":"id","id":"` + strings.Repeat("x", 257) + `"}`: false,
		`{"type":"id","id":`:                                    false,
		`[1,2]`:                                                 false,
		``:                                                      false,
		"\x00\x00\x00\x01\x44":                                  false,
	} {
		if _, ok := parseHandshake([]byte(in)); ok != want {
			t.Errorf("parseHandshake(%.40q) = %v, want %v", in, ok, want)
		}
	}
}

func FuzzParseHandshake(f *testing.F) {
	f.Add([]byte(`{"type":"id","id":"ts-server"}`))
	f.Add([]byte(`{"type":"client-id","id":"c3a596a9-bc9c-4fc8-a3d7-06564c1cc619"}`))
	f.Add([]byte(`{"type":"client-id","id":"again"}`))
	f.Add([]byte{0, 0, 0, 1, 0x44, 0x92})
	f.Fuzz(func(t *testing.T, msg []byte) {
		hs, ok := parseHandshake(msg)
		if ok && (hs.Type == "" || len(hs.ID) > maxPeerIDLen) {
			t.Fatalf("accepted %+v", hs)
		}
	})
}
