// Package identctx holds the context key under which a peer's identity is
// found: package peer reads it (IdentityFrom) and writes it (WithIdentity),
// and the transport stores its connection there, so an identity given to a
// connection after its upgrade (the authenticate task) is what the
// contexts of its later requests report. It imports nothing of the module,
// so both sides can use it.
package identctx

// Key is the context key. Its value has a method Identity returning the
// peer's *peer.Identity (nil when it has none).
type Key struct{}
