package streamcore

import (
	"errors"
	"fmt"
)

// Sentinel errors of package stream. A consumer tells a complete stream
// from a broken one by its final error: nil (or io.EOF from Recv) only
// after the producer's end-of-stream; one of these otherwise.
var (
	// ErrClosed: the stream was closed on this side (Reader.Close, or a
	// Writer used after Close).
	ErrClosed = errors.New("stream: closed")
	// ErrCancelled is what a producer sees when its consumer stopped
	// early (broke out of its range, cancelled its context or closed the
	// stream). The reason the consumer gave follows in the message.
	ErrCancelled = errors.New("stream: cancelled by the consumer")
	// ErrRemote matches a *RemoteError: the producer failed and sent its
	// error (STREAM_ERROR).
	ErrRemote = errors.New("stream: producer failed")
	// ErrClosedByPeer: the producer's side closed the stream before its
	// end (STREAM_CLOSE). Titan sends this when a generator throws; the
	// reason is in the message.
	ErrClosedByPeer = errors.New("stream: closed by the peer before its end")
	// ErrInactive: a finite stream received nothing for the inactivity
	// timeout while its consumer waited.
	ErrInactive = errors.New("stream: inactive")
	// ErrIndexGap: a chunk arrived out of order (its streamIndex is not the
	// next one). The transport is ordered, so this is a broken producer.
	ErrIndexGap = errors.New("stream: chunk out of order")
	// ErrCreditOverflow: the peer broke flow control, sending a chunk
	// without credit or granting more credit than a stream can hold.
	ErrCreditOverflow = errors.New("stream: credit overflow")
	// ErrChunkTooLarge: a chunk is larger than the configured maximum.
	ErrChunkTooLarge = errors.New("stream: chunk too large")
	// ErrBufferOverflow: a peer without flow control sent more than the
	// consumer's buffer holds (Titan's limit is 10,000 chunks).
	ErrBufferOverflow = errors.New("stream: buffer overflow")
	// ErrTooManyStreams: the limit of concurrent streams per peer and
	// direction is reached (wire reason "stream-limit-reached").
	ErrTooManyStreams = errors.New("stream: too many streams")
	// ErrNotClaimed: a stream announced in a reply was not opened by the
	// caller within the claim timeout; a producer whose consumer did not
	// grant credit within it gives up with this error, and its consumer
	// then gets a *RemoteError that also matches ErrNotClaimed.
	ErrNotClaimed = errors.New("stream: not opened in time")
	// ErrInvalidReference: a stream reference that cannot be used (bad
	// id, unknown local stream, already opened).
	ErrInvalidReference = errors.New("stream: invalid stream reference")
	// ErrUnsupported: the peer did not negotiate the stream extension,
	// which passing a stream as an argument (an upload) needs.
	ErrUnsupported = errors.New("stream: not supported by the peer")
	// ErrDecode: a chunk could not be decoded into the reader's type.
	ErrDecode = errors.New("stream: undecodable chunk")
	// ErrNotStream: a call that should have produced a stream returned
	// something else.
	ErrNotStream = errors.New("stream: result is not a stream")
	// ErrShutdown: the Manager is closed.
	ErrShutdown = errors.New("stream: manager closed")
)

// Wire reasons of STREAM_CLOSE and of the cancel extension.
const (
	ReasonConsumerCancel = "consumer-cancel"
	ReasonStreamLimit    = "stream-limit-reached"
	ReasonNotClaimed     = "not-claimed"
	ReasonInactive       = "inactive"
	ReasonProtocol       = "protocol-error"
	ReasonOverflow       = "buffer-overflow"
)

// remoteError turns the message of a STREAM_ERROR into an error. A
// producer that gave up because its consumer did not open the stream in
// time sends the reason "not-claimed": that error also matches
// ErrNotClaimed.
func remoteError(message string) error {
	var cause error
	if message == ReasonNotClaimed {
		cause = ErrNotClaimed
	}
	return RemoteError(message, cause)
}

// closedByPeer turns the reason of a STREAM_CLOSE into an error.
func closedByPeer(reason string) error {
	if reason == ReasonStreamLimit {
		return fmt.Errorf("%w: %w (%s)", ErrClosedByPeer, ErrTooManyStreams, reason)
	}
	return fmt.Errorf("%w: %s", ErrClosedByPeer, reason)
}

// cancelled is the error a producer sees for a consumer's cancel.
func cancelled(reason string) error {
	if reason == ReasonStreamLimit {
		return fmt.Errorf("%w: %w", ErrCancelled, ErrTooManyStreams)
	}
	if reason == "" {
		reason = ReasonConsumerCancel
	}
	return fmt.Errorf("%w: %s", ErrCancelled, reason)
}
