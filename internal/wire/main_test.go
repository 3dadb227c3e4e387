package wire

import (
	"encoding/hex"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// unhex decodes a hex string, ignoring spaces and newlines.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	s = strings.Join(strings.Fields(s), "")
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

// diffHex reports the first differing byte of two encodings.
func diffHex(t testing.TB, got, want []byte) {
	t.Helper()
	n := min(len(got), len(want))
	i := 0
	for i < n && got[i] == want[i] {
		i++
	}
	t.Errorf("bytes differ at offset %d (got %d bytes, want %d)\n got: %x\nwant: %x", i, len(got), len(want), got, want)
}
