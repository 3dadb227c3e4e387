package rpc

// AnonymousPolicy is what a peer that connected without credentials
// (Config.Auth.AllowAnonymous of package netron) may do until the
// authenticate task gives its connection an identity. Whatever else it
// sends is answered with ErrAuthenticationRequired before any handler
// runs: Titan's 401
// "Authentication required", details {service, method} for a call or
// property and {task} for a task. The Authorizer is not asked for
// anonymous peers (it decides about identities; they have none): this
// policy alone decides.
//
// It may always run the tasks authenticate, abilities (which lists only
// the services it may look up), query_interface of a service it may look
// up, and unref_service (of references it was given).
type AnonymousPolicy struct {
	// Query lists the services it may look up with query_interface: names
	// (every version), qualified names ("name@version"), or "*" for every
	// service. Empty: none.
	Query []string
	// Call lists the services whose methods and properties it may use
	// (CALL, GET, SET), in the same form; it may look them up too.
	Call []string
}

// ErrAuthenticationRequired matches the 401 a peer gets for what its
// connection may not do before it authenticates (AnonymousPolicy).
var ErrAuthenticationRequired = &Error{Code: 401}

// DefaultAuthFailureLimit is how many failed authenticate tasks a
// connection may run before it is closed (Config.Auth.MaxFailures of
// package netron).
const DefaultAuthFailureLimit = 5
