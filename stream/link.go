package stream

import (
	"reflect"

	"github.com/netron-go/netron/internal/streamcore"
)

// The engines (internal/streamcore, internal/rpccore) find and build this
// package's typed ends of a stream through these.
func init() {
	streamcore.RegisterTyped(streamcore.Typed{
		IsReader:    isReaderType,
		IsWriter:    isWriterType,
		IsSource:    isSourceType,
		NewReader:   readerValue,
		NewWriter:   writerValue,
		Producer:    producerOf,
		RemoteError: remoteError,
	})
}

// producerOf returns how v, of a type isSourceType accepts, is streamed.
func producerOf(v reflect.Value) (streamcore.Producer, error) {
	src, err := sourceOf(v)
	if err != nil {
		return streamcore.Producer{}, err
	}
	return streamcore.Producer{Run: src.run, Live: src.isLive()}, nil
}
