package transport

import (
	"net/http"

	"github.com/netron-go/netron/peer"
)

// anonymousIdentity marks, between the upgrade and newConn, a peer that
// WithAnonymous admitted without credentials; its connection gets no
// identity and reports Anonymous.
var anonymousIdentity = &peer.Identity{Method: "anonymous"}

// WithAnonymous makes a hub with an Authenticator admit a peer whose
// upgrade carries no credentials (no Authorization header, no "token"
// query parameter) instead of answering 401: its connection has no
// identity and reports Anonymous until SetIdentity gives it one (the
// authenticate task of internal/rpccore does, for Titan clients that
// cannot send a token with the upgrade). What an anonymous peer may do is
// the server's policy (rpc.AnonymousPolicy, see rpccore.WithAnonymous).
// An upgrade with credentials that the Authenticator rejects is still
// refused with 401: a wrong token is an error, not a request for
// anonymity. Off by default.
func WithAnonymous(on bool) Option {
	return optionFunc(func(c *config) { c.anonymous = on })
}

// hasCredentials reports whether r carries credentials of the kinds the
// Authenticators of package peer read.
func hasCredentials(r *http.Request) bool {
	return r.Header.Get("Authorization") != "" || r.URL.Query().Has("token")
}

// Anonymous reports whether the peer connected without credentials
// (WithAnonymous) and has not been given an identity since.
func (c *Conn) Anonymous() bool { return c.anonymous && c.identity.Load() == nil }

// SetIdentity makes id the connection's identity, as if the peer had
// presented it at the upgrade: Identity, peer.IdentityFrom of its requests'
// contexts and an rpc Authorizer see it from then on, and an anonymous
// connection stops being one (a nil id changes nothing). The rpccore
// authenticate task calls it before it writes its reply, so every request
// the peer sends after that reply sees id; a request running meanwhile
// may see either identity.
func (c *Conn) SetIdentity(id *peer.Identity) {
	if id != nil {
		c.identity.Store(id)
	}
}
