package rpc

// ExposeOption configures a service as it is exposed (Node.Expose).
type ExposeOption func(*exposeOptions)

type exposeOptions struct {
	idempotent []string
}

// Idempotent marks methods of the service as idempotent: running one
// twice has the effect of running it once (a read, a put of a value, a
// delete by key). A caller that balances over several instances of the
// service (a handle from Node.Service through discovery) runs a call of
// such a method again on another instance when the call failed in transit
// (its connection closed before the reply came), within the caller's
// deadline; other methods are run again only when the call provably never
// left the caller. Methods are named by their wire name ("get") or their
// Go name ("Get"); a name that is not a method of the service fails the
// Expose with ErrInvalidService.
//
// The mark is part of the method's description (MethodDescription's
// Idempotent), which peers fetch: Go callers on other nodes follow it.
// Plain Netron (Titan) peers ignore it.
func Idempotent(methods ...string) ExposeOption {
	return func(o *exposeOptions) { o.idempotent = append(o.idempotent, methods...) }
}

// exposeConfig applies opts (a []ExposeOption) and returns what the
// engine needs of them.
func exposeConfig(opts any) (idempotent []string) {
	var o exposeOptions
	for _, f := range opts.([]ExposeOption) {
		if f != nil {
			f(&o)
		}
	}
	return o.idempotent
}
