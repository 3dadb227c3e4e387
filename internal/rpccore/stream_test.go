package rpccore

import (
	"context"
	"iter"
	"testing"

	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/stream"
)

type streams struct{}

func (streams) Chan() <-chan int                                              { return nil }
func (streams) BothChan() chan string                                         { return nil }
func (streams) ChanErr(ctx context.Context) (<-chan int, error)               { return nil, nil }
func (streams) Seq(n int) iter.Seq2[int, error]                               { return nil }
func (streams) Source() stream.Source                                         { return nil }
func (streams) Write(ctx context.Context, n int, w *stream.Writer[int]) error { return nil }
func (streams) WriteNoErr(w *stream.Writer[[]byte])                           {}
func (streams) Read(r *stream.Reader[int], scale int) (int, error)            { return 0, nil }
func (streams) Transform(r *stream.Reader[string]) iter.Seq2[string, error]   { return nil }
func (streams) SendOnly() chan<- int                                          { return nil }
func (streams) SeqNoErr() iter.Seq[int]                                       { return nil }
func (streams) ChanOfFuncs() <-chan func()                                    { return nil }
func (streams) WriterFirst(w *stream.Writer[int], n int) error                { return nil }
func (streams) WriterResult(w *stream.Writer[int]) (int, error)               { return 0, nil }
func (streams) WriterAndSource(w *stream.Writer[int]) <-chan int              { return nil }

func TestMethodsOfStreams(t *testing.T) {
	ms := methodsOf(streams{})
	for name, want := range map[string]struct {
		source  bool
		writer  bool
		readers int
		args    int
	}{
		"chan":       {source: true},
		"bothChan":   {source: true},
		"chanErr":    {source: true},
		"seq":        {source: true, args: 1},
		"source":     {source: true},
		"write":      {writer: true, args: 1},
		"writeNoErr": {writer: true},
		"read":       {readers: 1, args: 2},
		"transform":  {source: true, readers: 1, args: 1},
	} {
		m := ms[name]
		if m == nil {
			t.Errorf("%s not callable", name)
			continue
		}
		if m.source != want.source || (m.writer != nil) != want.writer || m.readers != want.readers || len(m.args) != want.args {
			t.Errorf("%s: source %v writer %v readers %d args %d", name, m.source, m.writer != nil, m.readers, len(m.args))
		}
		if !m.streaming() && (want.source || want.writer) {
			t.Errorf("%s does not stream", name)
		}
	}
	for _, not := range []string{"sendOnly", "seqNoErr", "chanOfFuncs", "writerFirst", "writerResult", "writerAndSource"} {
		if ms[not] != nil {
			t.Errorf("%s callable", not)
		}
	}
}

func TestIsStreamRef(t *testing.T) {
	ref, err := wire.Marshal(wire.StreamReference{StreamID: "1", Type: 1, Live: true, PeerID: "ts-client"})
	if err != nil {
		t.Fatal(err)
	}
	if !isStreamRef(ref) {
		t.Fatalf("%x is a StreamReference", ref)
	}
	def, _ := wire.Marshal(wire.Definition{ID: "x"})
	for _, b := range [][]byte{nil, {0xc0}, {0xc7, 0x01}, def, {0xd4, 0x00, 0x00}, {0xc8, 0x00}} {
		if isStreamRef(b) {
			t.Errorf("%x is not a StreamReference", b)
		}
	}
	if _, err := streamRefOf([]byte{0x05}); err == nil {
		t.Error("an int reply opened as a stream")
	}
}
