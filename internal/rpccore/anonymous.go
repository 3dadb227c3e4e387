package rpccore

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/internal/wire"
	"github.com/netron-go/netron/rpc"
)

// authPolicy is the server's state for anonymous peers and the
// authenticate task.
type authPolicy struct {
	anon        rpc.AnonymousPolicy
	maxFailures int32
}

// WithAnonymous sets what anonymous peers may do (see AnonymousPolicy).
// Without it they may only run the tasks that rpc.AnonymousPolicy always
// allows, and look up and call nothing.
func WithAnonymous(p rpc.AnonymousPolicy) ServerOption {
	return serverOptionFunc(func(s *Server) { s.auth.anon = p })
}

// WithAuthFailureLimit closes a connection with a policy violation
// (WebSocket status 1008) once n of its authenticate tasks have failed,
// right after the reply to the n-th; n ≤ 0 means
// rpc.DefaultAuthFailureLimit.
// Attempts running at the same time count as failed until they succeed,
// so a peer that sends many at once still gets at most n tries per
// connection.
func WithAuthFailureLimit(n int) ServerOption {
	return serverOptionFunc(func(s *Server) { s.auth.maxFailures = int32(n) })
}

func (a *authPolicy) limit() int32 {
	if a.maxFailures <= 0 {
		return rpc.DefaultAuthFailureLimit
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

// refuseAnonymous answers rpc.ErrAuthenticationRequired to what the request p
// of an anonymous connection may not do, reading only its first elements;
// nil lets the request run (where allowed keeps applying the policy).
func (s *Server) refuseAnonymous(conn *transport.Conn, p *wire.Packet) error {
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
	return &rpc.Error{Code: 401, Name: "TitanError", Message: "Authentication required", Details: details}
}

type authFailuresKey struct{}

// authFailuresOf counts conn's failed (and running) authenticate tasks.
func authFailuresOf(conn *transport.Conn) *atomic.Int32 {
	v, _ := conn.LoadOrStoreValue(authFailuresKey{}, new(atomic.Int32))
	return v.(*atomic.Int32)
}

// closeAfterAuth closes conn once the reply to its last allowed failed
// authenticate task is written (serve calls it after every reply).
func (s *Server) closeAfterAuth(conn *transport.Conn, result any) {
	if r, ok := result.(authResult); ok && r.last {
		s.logger.Warn("netron: closing a connection after too many failed authentications", "peer", conn.ID(), "limit", s.auth.limit())
		conn.ClosePolicyAfterWrites(fmt.Sprintf("%d failed authentications", s.auth.limit()))
	}
}
