package stream

import "github.com/netron-go/netron/internal/streamcore"

// Sentinel errors of package stream. A consumer tells a complete stream
// from a broken one by its final error: nil (or io.EOF from Recv) only
// after the producer's end-of-stream; one of these otherwise.
var (
	// ErrClosed: the stream was closed on this side (Reader.Close, or a
	// Writer used after Close).
	ErrClosed = streamcore.ErrClosed
	// ErrCancelled is what a producer sees when its consumer stopped
	// early (broke out of its range, cancelled its context or closed the
	// stream). The reason the consumer gave follows in the message.
	ErrCancelled = streamcore.ErrCancelled
	// ErrRemote matches a *RemoteError: the producer failed and sent its
	// error (STREAM_ERROR).
	ErrRemote = streamcore.ErrRemote
	// ErrClosedByPeer: the producer's side closed the stream before its
	// end (STREAM_CLOSE). Titan sends this when a generator throws; the
	// reason is in the message.
	ErrClosedByPeer = streamcore.ErrClosedByPeer
	// ErrInactive: a finite stream received nothing for the inactivity
	// timeout while its consumer waited.
	ErrInactive = streamcore.ErrInactive
	// ErrIndexGap: a chunk arrived out of order (its streamIndex is not the
	// next one). The transport is ordered, so this is a broken producer.
	ErrIndexGap = streamcore.ErrIndexGap
	// ErrCreditOverflow: the peer broke flow control, sending a chunk
	// without credit or granting more credit than a stream can hold.
	ErrCreditOverflow = streamcore.ErrCreditOverflow
	// ErrChunkTooLarge: a chunk is larger than the configured maximum.
	ErrChunkTooLarge = streamcore.ErrChunkTooLarge
	// ErrBufferOverflow: a peer without flow control sent more than the
	// consumer's buffer holds (Titan's limit is 10,000 chunks).
	ErrBufferOverflow = streamcore.ErrBufferOverflow
	// ErrTooManyStreams: the limit of concurrent streams per peer and
	// direction is reached (wire reason "stream-limit-reached").
	ErrTooManyStreams = streamcore.ErrTooManyStreams
	// ErrNotClaimed: a stream announced in a reply was not opened by the
	// caller within the claim timeout; a producer whose consumer did not
	// grant credit within it gives up with this error, and its consumer
	// then gets a *RemoteError that also matches ErrNotClaimed.
	ErrNotClaimed = streamcore.ErrNotClaimed
	// ErrInvalidReference: a stream reference that cannot be used (bad
	// id, unknown local stream, already opened).
	ErrInvalidReference = streamcore.ErrInvalidReference
	// ErrUnsupported: the peer did not negotiate the stream extension,
	// which passing a stream as an argument (an upload) needs.
	ErrUnsupported = streamcore.ErrUnsupported
	// ErrDecode: a chunk could not be decoded into the reader's type.
	ErrDecode = streamcore.ErrDecode
	// ErrNotStream: a call that should have produced a stream returned
	// something else.
	ErrNotStream = streamcore.ErrNotStream
	// ErrShutdown: the Manager is closed.
	ErrShutdown = streamcore.ErrShutdown
)

// RemoteError is the error a producer ended its stream with. From a peer
// it carries the message of STREAM_ERROR (and wraps ErrNotClaimed for the
// message "not-claimed"); from an in-process producer it also wraps the
// original error. It matches ErrRemote.
type RemoteError struct {
	Message string
	err     error
}

func (e *RemoteError) Error() string { return "stream: producer failed: " + e.Message }

// Is matches ErrRemote.
func (e *RemoteError) Is(target error) bool { return target == ErrRemote }

// Unwrap returns the producer's own error for in-process streams, and
// ErrNotClaimed for a producer that gave up waiting for its consumer.
func (e *RemoteError) Unwrap() error { return e.err }

// Wire reasons of STREAM_CLOSE and of the cancel extension.

// remoteError is streamcore.Typed.RemoteError.
func remoteError(message string, cause error) error {
	return &RemoteError{Message: message, err: cause}
}
