// Command events is the seed's event handling example in Go: a
// NetworkMonitor module that gets the Netron as a constructor argument and
// listens to its lifecycle events (peer:connected, peer:disconnected,
// service:exposed), and events that cross nodes: an orders node emits
// order:created and order:shipped, and the monitor subscribes to them with
// the pattern "order:*".
//
//	go run ./examples/events
package main
