package rpc

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/peer"
)

// AnonymousPolicy is what a peer that connected without credentials
// (peer.WithAnonymous) may do until the authenticate task gives its
// connection an identity. Whatever else it sends is answered with
// ErrAuthenticationRequired before any handler runs: Titan's 401
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
// connection may run before it is closed (WithAuthFailureLimit).
const DefaultAuthFailureLimit = 5

// authPolicy is the server's state for anonymous peers and the
// authenticate task.
type authPolicy struct {
	anon        AnonymousPolicy
	maxFailures int32
}

// WithAnonymous sets what anonymous peers may do (see AnonymousPolicy).
// Without it they may only run the tasks that AnonymousPolicy always
// allows, and look up and call nothing.
func WithAnonymous(p AnonymousPolicy) ServerOption {
	return serverOptionFunc(func(s *Server) { s.auth.anon = p })
}

// WithAuthFailureLimit closes a connection with a policy violation
// (WebSocket status 1008) once n of its authenticate tasks have failed,
// right after the reply to the n-th; n ≤ 0 means DefaultAuthFailureLimit.
// Attempts running at the same time count as failed until they succeed,
// so a peer that sends many at once still gets at most n tries per
// connection.
func WithAuthFailureLimit(n int) ServerOption {
	return serverOptionFunc(func(s *Server) { s.auth.maxFailures = int32(n) })
}

func (a *authPolicy) limit() int32 {
	if a.maxFailures <= 0 {
		return DefaultAuthFailureLimit
	}
	return a.maxFailures
}

// listed reports whether qn ("name@version") is in list.
func listed(list []string, qn string) bool {
	name, _, _ := strings.Cut(qn, "@")
	for _, s := range list {
		if s == "*" || s == qn || s == name {
			return true
		}
	}
	return false
}

// anonymousAllowed is allowed for an anonymous peer: method "" asks
// whether it may see the service.
func (a *authPolicy) anonymousAllowed(service, method string) bool {
	return listed(a.anon.Call, service) || (method == "" && listed(a.anon.Query, service))
}

// anonymousTasks are the tasks an anonymous peer may always run.
var anonymousTasks = map[string]bool{"authenticate": true, "abilities": true, "query_interface": true, "unref_service": true}

// refuseAnonymous answers ErrAuthenticationRequired to what the request p
// of an anonymous connection may not do, reading only its first elements;
// nil lets the request run (where allowed keeps applying the policy).
func (s *Server) refuseAnonymous(conn *peer.Conn, p *wire.Packet) error {
	dec := wire.NewDecoder(p.Data)
	defer wire.ReleaseDecoder(dec)
	n, err := dec.DecodeArrayLen()
	if err != nil || n < 1 {
		return nil // malformed: handleData answers 400
	}
	first, err := wire.DecodeString(dec)
	if err != nil {
		return nil
	}
	var second string
	if n > 1 {
		second, _ = wire.DecodeString(dec)
	}
	switch p.Type() {
	case wire.TypeTask:
		if !anonymousTasks[first] {
			return authRequired(map[string]any{"task": first})
		}
		if first == "query_interface" {
			e, err := s.reg.resolve(second)
			if err != nil || !s.auth.anonymousAllowed(e.qn, "") {
				return authRequired(map[string]any{"service": second})
			}
		}
	case wire.TypeCall, wire.TypeGet, wire.TypeSet:
		service := first
		e := s.reg.targetFor(conn, first)
		if e != nil {
			service = e.qn
		}
		if e == nil || !s.auth.anonymousAllowed(e.qn, second) {
			return authRequired(map[string]any{"service": service, "method": second})
		}
	}
	return nil
}

func authRequired(details map[string]any) error {
	return &Error{Code: 401, Name: "TitanError", Message: "Authentication required", Details: details}
}

type authFailuresKey struct{}

// authFailuresOf counts conn's failed (and running) authenticate tasks.
func authFailuresOf(conn *peer.Conn) *atomic.Int32 {
	v, _ := conn.LoadOrStoreValue(authFailuresKey{}, new(atomic.Int32))
	return v.(*atomic.Int32)
}

// closeAfterAuth closes conn once the reply to its last allowed failed
// authenticate task is written (serve calls it after every reply).
func (s *Server) closeAfterAuth(conn *peer.Conn, result any) {
	if r, ok := result.(authResult); ok && r.last {
		s.logger.Warn("netron: closing a connection after too many failed authentications", "peer", conn.ID(), "limit", s.auth.limit())
		conn.ClosePolicy(fmt.Sprintf("%d failed authentications", s.auth.limit()))
	}
}
