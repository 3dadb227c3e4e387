package wire

import (
	"bytes"
	"errors"
	"testing"
)

func batchOf(frames ...[]byte) []byte {
	b := AppendArrayHeader(nil, 1+len(frames))
	b = AppendString(b, "batch")
	for _, f := range frames {
		b = AppendBin(b, f)
	}
	return b
}

func TestEachBatchFrame(t *testing.T) {
	big := bytes.Repeat([]byte{7}, 70000)
	want := [][]byte{{0, 0, 0, 1, 0x03, 0x05}, {0, 0, 0, 2, 0x03, 0xc0}, big}
	var got [][]byte
	if err := EachBatchFrame(batchOf(want...), func(f []byte) error { got = append(got, f); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !bytes.Equal(got[0], want[0]) || !bytes.Equal(got[1], want[1]) || !bytes.Equal(got[2], big) {
		t.Fatalf("got %d frames", len(got))
	}
	stop := errors.New("stop")
	n := 0
	if err := EachBatchFrame(batchOf(want...), func([]byte) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("stop: %v after %d", err, n)
	}
	for name, bad := range map[string][]byte{
		"not an array":   {0xa5, 'b', 'a', 't', 'c', 'h'},
		"empty array":    {0x90},
		"truncated":      batchOf(want...)[:20],
		"not bin":        append(AppendString([]byte{0x92}, "batch"), 0x05),
		"huge bin count": {0xdd, 0xff, 0xff, 0xff, 0xff, 0xa5, 'b', 'a', 't', 'c', 'h'},
	} {
		if err := EachBatchFrame(bad, func([]byte) error { return nil }); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzEachBatchFrame(f *testing.F) {
	f.Add(batchOf([]byte{0, 0, 0, 1, 0x03, 0x05}, []byte{0, 0, 0, 2, 0x43, 0x90}))
	f.Add([]byte{0x91, 0xa5, 'b', 'a', 't', 'c', 'h'})
	f.Fuzz(func(t *testing.T, data []byte) {
		total := 0
		_ = EachBatchFrame(data, func(fr []byte) error {
			total += len(fr)
			if total > len(data) {
				t.Fatalf("frames longer than the data")
			}
			return nil
		})
	})
}

func TestExtKind(t *testing.T) {
	for in, want := range map[string]string{
		"\x93\xa5batch\x01\x02":     "batch",
		"\x92\xa6goaway\xa0":        "goaway",
		"\x91\xa0":                  "",
		"\x92\x01\x02":              "",
		"\x90":                      "",
		"\x92\xa9short":             "",
		"":                          "",
		"\xdc\x00\x02\xa5event\x01": "event",
	} {
		if got := string(ExtKind([]byte(in))); got != want {
			t.Errorf("ExtKind(%q) = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = string(ExtKind([]byte("\x93\xa5batch\x01\x02"))) == "batch" }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// BinLen is exactly what AppendBin writes, at each header size's bounds.
func TestBinLen(t *testing.T) {
	for _, n := range []int{0, 1, 0xff, 0x100, 0xffff, 0x10000, 1 << 20} {
		if got, want := BinLen(n), len(AppendBin(nil, make([]byte, n))); got != want {
			t.Errorf("BinLen(%d) = %d, AppendBin wrote %d", n, got, want)
		}
	}
}
