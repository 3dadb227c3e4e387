package transport

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"testing"
)

// recordConn records what is written to it.
type recordConn struct {
	net.Conn
	out    bytes.Buffer
	writes int
}

func (c *recordConn) Write(p []byte) (int, error) {
	c.writes++
	return c.out.Write(p)
}

// appendFrame appends a masked frame with n bytes of payload, with each of
// the three length encodings.
func appendFrame(b []byte, op byte, n int, rng *rand.Rand) []byte {
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = binary.BigEndian.AppendUint16(append(b, 0x80|126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 0x80|127), uint64(n))
	}
	b = binary.BigEndian.AppendUint32(b, rng.Uint32()) // masking key
	for range n {
		b = append(b, byte(rng.Uint32()))
	}
	return b
}

// Whatever the split of the byte stream into writes, a frameWriter writes
// the same bytes, and every frame is out by the time the write that
// completes it returns: the writer never holds a complete frame. A frame
// of a few KiB or more is written in one call (or parts of maxHeld).
func TestFrameWriterHoldsOnlyIncompleteFrames(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 21))
	for round := range 60 {
		var stream []byte
		var ends []int // offsets where a frame ends
		for range 1 + rng.IntN(6) {
			var n int
			switch rng.IntN(4) {
			case 0:
				n = rng.IntN(126) // 7-bit length, also 0
			case 1:
				n = 126 + rng.IntN(1<<16-126) // 16-bit
			case 2:
				n = 1<<16 + rng.IntN(300<<10) // 64-bit, past maxHeld at times
			default:
				n = 4096 - 14 + rng.IntN(30)
			}
			stream = appendFrame(stream, byte(1+rng.IntN(2)), n, rng)
			ends = append(ends, len(stream))
		}
		rc := &recordConn{}
		w := &frameWriter{Conn: rc}
		w.start()
		written := 0
		for written < len(stream) {
			k := 1 + rng.IntN(5000)
			if rng.IntN(8) == 0 {
				k = 1 + rng.IntN(14) // split inside headers too
			}
			k = min(k, len(stream)-written)
			if n, err := w.Write(stream[written : written+k]); n != k || err != nil {
				t.Fatalf("round %d: Write = %d, %v", round, n, err)
			}
			written += k
			for _, e := range ends {
				if e <= written && rc.out.Len() < e {
					t.Fatalf("round %d: %d bytes written, the frame ending at %d complete, but only %d out", round, written, e, rc.out.Len())
				}
			}
		}
		if !bytes.Equal(rc.out.Bytes(), stream) {
			t.Fatalf("round %d: the bytes out differ from those written", round)
		}
		if w.held != nil || w.hdrN != 0 || w.rest != 0 {
			t.Fatalf("round %d: state after whole frames: held %d, hdrN %d, rest %d", round, len(w.held), w.hdrN, w.rest)
		}
	}
}

// Before start (the HTTP handshake), writes go through as they are.
func TestFrameWriterPassThroughBeforeStart(t *testing.T) {
	rc := &recordConn{}
	w := &frameWriter{Conn: rc}
	for _, s := range []string{"GET / HTTP/1.1\r\n", "Host: x\r\n\r\n"} {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if rc.writes != 2 || rc.out.String() != "GET / HTTP/1.1\r\nHost: x\r\n\r\n" {
		t.Fatalf("%d writes: %q", rc.writes, rc.out.String())
	}
}

// A 64 KiB message written in 4 KiB parts, as coder/websocket's client
// does, leaves in one write.
func TestFrameWriterOneWritePerMessage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	frame := appendFrame(nil, 2, 64<<10, rng)
	rc := &recordConn{}
	w := &frameWriter{Conn: rc}
	w.start()
	for p := frame; len(p) > 0; {
		k := min(4096, len(p))
		w.Write(p[:k])
		p = p[k:]
	}
	if rc.writes != 1 || !bytes.Equal(rc.out.Bytes(), frame) {
		t.Fatalf("%d writes of %d bytes, want 1 of %d", rc.writes, rc.out.Len(), len(frame))
	}
}
