package redisdisc

import (
	"testing"
	"time"
)

// FuzzReplies feeds the parsers of the heartbeat and snapshot scripts'
// replies with arbitrary values of the shapes go-redis returns (int64,
// string, nested []any, nil), built from the fuzzer's bytes. Nothing Redis
// returns may panic them.
func FuzzReplies(f *testing.F) {
	f.Add([]byte{7, 1, 0, 3, 0, 3, 0, 3, 0, 1, 5, 1, 9, 1, 1})
	f.Add([]byte{6, 1, 1, 2, 3, '0', '-', '0', 3, 4, 2, 2, 'n', '1', 2, 5, 'j', 's', 'o', 'n', '!', 3, 2, 2, 2, 'n', '1', 2, 3, '9', '9', '9', 1, 0})
	f.Add([]byte(`{"v":1,"op":"join","id":"n1","ttl":1000,"inc":1,"seq":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, _ := build(data, 0)
		res, _ := v.([]any)
		_, _ = parseBeat(res)
		_, _, _ = parseSnapshot(res, time.Unix(0, 0))
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
