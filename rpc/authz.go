package rpc

import (
	"context"
	"strings"
	"sync"

	"github.com/netron-go/netron/peer"
)

// An Authorizer decides whether the peer whose identity is id may call
// method of service (its qualified name, "name@version"). method is ""
// when the question is whether the peer may see the service at all (the
// query_interface and abilities tasks). A nil identity is a peer that did
// not authenticate (the hub has no authenticator). Calls by the node
// itself (local calls) are not checked, nor are the requests of an
// anonymous peer (Config.Auth.AllowAnonymous of package netron), which
// its AnonymousPolicy decides.
//
// To a refused peer a service or method is indistinguishable from one that
// does not exist: it gets the same 404 error, so it learns nothing of what
// it may not call.
type Authorizer interface {
	Authorize(ctx context.Context, id *peer.Identity, service, method string) bool
}

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(ctx context.Context, id *peer.Identity, service, method string) bool

// Authorize calls f.
func (f AuthorizerFunc) Authorize(ctx context.Context, id *peer.Identity, service, method string) bool {
	return f(ctx, id, service, method)
}

// ACL is an Authorizer of ordered rules; the first rule that matches
// decides, and without a match the default applies (allow, or deny with
// NewACL(true)). It is safe for concurrent use.
//
//	acl := rpc.NewACL(true).                      // default deny
//		Allow("billing", "invoices", "*").        // subject billing: every method of invoices@any
//		Allow("*", "calculator@1.0.0", "add")     // anyone authenticated: calculator@1.0.0.add
type ACL struct {
	mu          sync.RWMutex
	defaultDeny bool
	rules       []aclRule
}

type aclRule struct {
	allow                    bool
	subject, service, method string
}

// NewACL returns an ACL that denies what no rule allows when defaultDeny
// is set, and allows it otherwise.
func NewACL(defaultDeny bool) *ACL { return &ACL{defaultDeny: defaultDeny} }

// Allow adds a rule that lets subject call method of service. subject "*"
// is any authenticated peer; service is a name (every version) or a
// qualified name; method "*" is every method.
func (a *ACL) Allow(subject, service, method string) *ACL {
	return a.add(true, subject, service, method)
}

// Deny adds a rule that refuses subject method of service.
func (a *ACL) Deny(subject, service, method string) *ACL {
	return a.add(false, subject, service, method)
}

func (a *ACL) add(allow bool, subject, service, method string) *ACL {
	a.mu.Lock()
	a.rules = append(a.rules, aclRule{allow: allow, subject: subject, service: service, method: method})
	a.mu.Unlock()
	return a
}

// Authorize applies the rules.
func (a *ACL) Authorize(_ context.Context, id *peer.Identity, service, method string) bool {
	name, _, _ := strings.Cut(service, "@")
	a.mu.RLock()
	defer a.mu.RUnlock()
	for _, r := range a.rules {
		switch {
		case r.subject != "*" && (id == nil || id.Subject != r.subject):
		case r.subject == "*" && id == nil:
		case r.service != "*" && r.service != service && r.service != name:
		case method == "":
			// Visibility: a service is visible when some method may be
			// called; a deny rule hides it only when it covers all methods.
			if r.allow || r.method == "*" {
				return r.allow
			}
		case r.method != "*" && r.method != method:
		default:
			return r.allow
		}
	}
	return !a.defaultDeny
}
