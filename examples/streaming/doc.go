// Command streaming is the seed's streaming example in Go: a data service
// whose methods produce streams (an iterator, a channel, a *stream.Writer)
// and a client on another node that ranges over them as they arrive; a
// consumer that stops early and so stops the producer; a producer error
// that reaches the consumer after the chunks before it; and an upload, a
// stream passed as a call argument (a Go extension Titan lacks).
//
//	go run ./examples/streaming
package main
