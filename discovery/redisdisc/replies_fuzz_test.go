package redisdisc

import (
	"testing"
	"time"
)

// FuzzReplies feeds the parsers of the heartbeat, snapshot, announcement
// and incarnation scripts' replies with arbitrary values of the shapes
// go-redis returns (int64, string, nested []any, nil), built from the
// fuzzer's bytes. Nothing Redis returns may panic them.
func FuzzReplies(f *testing.F) {
	f.Add([]byte{3, 8, 1, 0, 3, 0, 3, 0, 3, 0, 1, 5, 1, 9, 1, 1, 2, 2, 'n', '1'})
	f.Add([]byte{3, 6, 1, 1, 2, 3, '0', '-', '0', 3, 4, 2, 2, 'n', '1', 2, 5, 'j', 's', 'o', 'n', '!', 3, 2, 2, 2, 'n', '1', 2, 3, '9', '9', '9', 1, 0})
	f.Add([]byte{3, 5, 2, 5, 't', 'a', 'k', 'e', 'n', 2, 2, '{', '}', 1, 1, 1, 1, 1, 1})
	f.Add([]byte{3, 2, 2, 2, 'o', 'k', 1, 7})
	f.Add([]byte{3, 3, 1, 0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00, 1, 0, 0, 0, 0, 0, 1, 0xe2, 0x40, 1, 0, 0, 0, 0, 0, 0, 0, 9})
	f.Add([]byte(`{"v":1,"op":"join","id":"n1","ttl":1000,"inc":1,"seq":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, _ := build(data, 0)
		res, _ := v.([]any)
		if r, err := parseBeat(res); err == nil && (len(res) != 8 || r.earliest < -1) {
			t.Fatalf("parseBeat accepted %v", res)
		}
		_, _, _ = parseSnapshot(res, time.Unix(0, 0))
		if taken, err := parsePut(res); err == nil && taken != nil && (taken.left < 0 || taken.silentIn < 0) {
			t.Fatalf("parsePut accepted %v", res)
		}
		if inc, err := parseInc(res); err == nil && inc <= 0 {
			t.Fatalf("parseInc(%v) = %d", res, inc)
		}
	})
}

// FuzzStreamUnmarshal feeds the stream entry unmarshaller and the entry
// decoder behind it with field maps built from the fuzzer's bytes: field
// names and values of any shape. It never fails and never panics, and a
// message it marks well-formed carries the payload given.
func FuzzStreamUnmarshal(f *testing.F) {
	f.Add([]byte{3, 6, 2, 7, 'p', 'a', 'y', 'l', 'o', 'a', 'd', 2, 2, '{', '}', 2, 10, 'n', 'e', 't', 'r', 'o', 'n', '_', 'g', 'e', 'n', 2, 1, '3'})
	f.Add([]byte{3, 2, 2, 1, 'x', 1, 5})
	f.Fuzz(func(t *testing.T, data []byte) {
		v, _ := build(data, 0)
		list, _ := v.([]any)
		values := map[string]any{}
		for i := 0; i+1 < len(list); i += 2 {
			k, _ := list[i].(string)
			values[k] = list[i+1]
		}
		m, err := unmarshaller{}.Unmarshal(values)
		if err != nil || m == nil {
			t.Fatalf("Unmarshal(%v) = %v, %v", values, m, err)
		}
		if m.Metadata.Get(malformedKey) == "" {
			if p, ok := values["payload"].(string); !ok || string(m.Payload) != p {
				t.Fatalf("Unmarshal(%v): well-formed message with payload %q", values, m.Payload)
			}
			_, _ = decodeEntry(m.Payload)
		}
	})
}

// build decodes one value from data: a tag byte (0 nil, 1 int64, 2
// string, 3 array) and its contents; the rest of data is returned.
func build(data []byte, depth int) (any, []byte) {
	if len(data) == 0 || depth > 4 {
		return nil, nil
	}
	tag, data := data[0]%4, data[1:]
	switch tag {
	case 1:
		var n int64
		for i := 0; i < 8 && len(data) > 0; i++ {
			n = n<<8 | int64(data[0])
			data = data[1:]
		}
		return n, data
	case 2:
		if len(data) == 0 {
			return "", nil
		}
		n := min(int(data[0]), len(data)-1)
		return string(data[1 : 1+n]), data[1+n:]
	case 3:
		if len(data) == 0 {
			return []any{}, nil
		}
		n := int(data[0] % 16)
		data = data[1:]
		out := make([]any, 0, n)
		for range n {
			var v any
			v, data = build(data, depth+1)
			out = append(out, v)
		}
		return out, data
	}
	return nil, data
}
