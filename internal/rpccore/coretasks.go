package rpccore

import (
	"context"
	"errors"
	"fmt"
	"github.com/netron-go/netron/peer"
	"github.com/netron-go/netron/rpc"
	"net/http"
	"strings"

	"github.com/netron-go/netron/internal/transport"
)

// The core tasks of Titan's Netron that this server answers besides
// query_interface (server.go) and subscribe, unsubscribe and emit (the
// node's events): unref_service (refs.go), invalidate_cache,
// authenticate, and expose_service and unexpose_service, which answer
// Titan's 403 unless AllowRemoteExposure (exposure.go) enabled them.
func (s *Server) handleCoreTasks() {
	s.HandleTask("unref_service", s.unrefService)
	s.HandleTask("invalidate_cache", invalidateCache)
	s.HandleTask("authenticate", s.authenticate)
	s.HandleTask("expose_service", exposureDisabled("expose_service"))
	s.HandleTask("unexpose_service", exposureDisabled("unexpose_service"))
}

// WithAuthenticator gives the authenticate task the node's Authenticator
// (the one its hub checks at the upgrade); without one the task answers
// Titan's 503 "Authentication not configured".
func WithAuthenticator(a peer.Authenticator) ServerOption {
	return serverOptionFunc(func(s *Server) { s.authn = a })
}

// invalidateCache is the task invalidate_cache([pattern | options]): a
// Titan node clears the definitions it cached from the calling peer and
// answers how many it cleared. A Go node keeps no such cache (the
// catalogue of a peer is not one: it follows the peer's events), so it
// answers 0, as Titan nodes do in practice (capture 2 #116, #119). Its
// argument is checked as Titan reads it: a string pattern, or a map.
func invalidateCache(_ context.Context, _ *transport.Conn, args *rpc.Args) (any, error) {
	if args.Len() > 0 {
		var arg any
		if err := args.Next(&arg); err != nil {
			return nil, err
		}
	}
	return 0, nil
}

// exposureDisabled answers expose_service and unexpose_service with the
// 403 of a Titan node without allowRemoteServiceExposure (capture 2 #127,
// #131): a peer cannot publish its services through this node.
func exposureDisabled(task string) ConnTaskFunc {
	return func(_ context.Context, conn *transport.Conn, _ *rpc.Args) (any, error) {
		id := ""
		if conn != nil {
			id = conn.ID()
		}
		return nil, &rpc.Error{Code: 403, Name: "TitanError",
			Message: fmt.Sprintf("Core task '%s' is disabled for remote peers. Set Netron option 'allowRemoteServiceExposure: true' to allow federated peers to publish or withdraw services, and gate with an AuthorizationManager.", task),
			Details: map[string]any{"task": task, "peerId": id}}
	}
}

// authResult is the answer of the authenticate task, with Titan's keys
// in Titan's order.
type authResult struct {
	Success  bool           `msgpack:"success"`
	Context  *authContext   `msgpack:"context,omitempty"`
	Error    string         `msgpack:"error,omitempty"`
	last     bool           // the connection's last allowed failure: close it (anonymous.go)
	identity *peer.Identity // on success
}

type authContext struct {
	UserID      string   `msgpack:"userId"`
	Roles       []string `msgpack:"roles"`
	Permissions []string `msgpack:"permissions"`
}

// credentials are what a Titan client passes to authenticate.
type credentials struct {
	Token    *string `msgpack:"token"`
	Username *string `msgpack:"username"`
	Password *string `msgpack:"password"`
}

// authenticate is the task authenticate(credentials): {token} or
// {username, password}, checked by the node's Authenticator as a
// WebSocket upgrade carrying them would be (the token as a bearer token,
// the username and password as basic authentication). Like Titan it
// answers a map, {success: true, context: {userId, roles, permissions}}
// or {success: false, error}, never an error response; without an
// Authenticator it answers 503 "Authentication not configured" (capture 2
// #123). On success the identity becomes the connection's (SetIdentity,
// before the reply is written: the peer's requests sent after the reply
// see it); a failure leaves it as it was, and the connection is closed
// after its WithAuthFailureLimit-th failure.
func (s *Server) authenticate(_ context.Context, conn *transport.Conn, args *rpc.Args) (any, error) {
	if s.authn == nil {
		return nil, &rpc.Error{Code: 503, Name: "TitanError", Message: "Authentication not configured",
			Details: map[string]any{"hint": "Call netron.configureAuth() to set up authentication"}}
	}
	if conn == nil {
		return s.checkCredentials(args), nil
	}
	tries := authFailuresOf(conn)
	n := tries.Add(1) // an attempt counts as failed until it succeeds
	if n > s.auth.limit() {
		return authResult{Error: "Too many failed authentications", last: true}, nil
	}
	res := s.checkCredentials(args)
	if res.Success {
		tries.Add(-1)
		conn.SetIdentity(res.identity)
	} else {
		res.last = n == s.auth.limit()
	}
	return res, nil
}

// checkCredentials runs the authenticate task's credentials through the
// Authenticator.
func (s *Server) checkCredentials(args *rpc.Args) authResult {
	var c credentials
	if args.Len() == 0 || args.Next(&c) != nil {
		return authResult{Error: "Credentials must be an object"}
	}
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	switch {
	case c.Token != nil && *c.Token != "":
		if strings.TrimSpace(*c.Token) == "" {
			return authResult{Error: "Token cannot be empty"}
		}
		r.Header.Set("Authorization", "Bearer "+*c.Token)
	case c.Username == nil:
		return authResult{Error: "Username must be a string"}
	case *c.Username == "":
		return authResult{Error: "Username cannot be empty"}
	case c.Password == nil:
		return authResult{Error: "Password must be a string"}
	case *c.Password == "":
		return authResult{Error: "Password cannot be empty"}
	default:
		r.SetBasicAuth(*c.Username, *c.Password)
	}
	id, err := s.authn.Authenticate(r)
	if err != nil || id == nil {
		msg := "Authentication failed: no context returned"
		if err != nil {
			msg = strings.TrimPrefix(err.Error(), peer.ErrUnauthenticated.Error()+": ")
			if errors.Is(err, peer.ErrUnauthenticated) && msg == peer.ErrUnauthenticated.Error() {
				msg = "Invalid credentials"
			}
		}
		return authResult{Error: msg}
	}
	return authResult{Success: true, Context: &authContext{UserID: id.Subject, Roles: []string{}, Permissions: []string{}}, identity: id}
}
