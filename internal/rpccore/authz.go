package rpccore

import (
	"context"

	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/rpc"
)

// WithAuthorizer makes the server ask a before every call and lookup.
// Default: every peer may call everything.
func WithAuthorizer(a rpc.Authorizer) ServerOption {
	return serverOptionFunc(func(s *Server) { s.authz = a })
}

// allowed reports whether the request's peer may use service/method.
func (s *Server) allowed(ctx context.Context, conn *transport.Conn, service, method string) bool {
	if conn != nil && conn.Anonymous() {
		return s.auth.anonymousAllowed(service, method)
	}
	if s.authz == nil || conn == nil {
		return true
	}
	return s.authz.Authorize(ctx, conn.Identity(), service, method)
}
