package app

import "errors"

// Errors of package app.
var (
	// ErrAlreadyStarted is returned by a second Start, and by Register
	// once the application has started.
	ErrAlreadyStarted = errors.New("app: already started")
	// ErrStopped is returned by Start and Netron after Stop.
	ErrStopped = errors.New("app: stopped")
	// ErrShutdownTimeout is returned by Stop (and Run) when the shutdown
	// did not finish within its context; it wraps the context's error.
	ErrShutdownTimeout = errors.New("app: shutdown timed out")
	// ErrNetronStart is wrapped by the error of a Netron that could not
	// start (for example, its port is taken).
	ErrNetronStart = errors.New("app: netron failed to start")
)
