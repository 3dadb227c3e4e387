package peer

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/netron-go/netron/internal/identctx"
)

// ErrUnauthenticated is returned by an Authenticator that rejects a peer,
// and by Dial when the server rejected our credentials.
var ErrUnauthenticated = errors.New("peer: unauthenticated")

// Identity is who a peer proved to be at the handshake.
type Identity struct {
	// Subject names the peer (the token's subject, or "token" for a shared
	// token).
	Subject string
	// Method is how it authenticated: "token", "hmac", "tls".
	Method string
	// Expires is when the credentials expire (zero: never).
	Expires time.Time
}

// fixedIdentity is what WithIdentity stores under identctx.Key; a
// connection stores itself there (its identity can change once, see the
// authenticate task of rpc).
type fixedIdentity struct{ id *Identity }

func (f fixedIdentity) Identity() *Identity { return f.id }

// WithIdentity returns a copy of ctx that carries id, as the context of a
// peer's requests does: a test calls a handler that reads IdentityFrom
// with it.
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identctx.Key{}, fixedIdentity{id})
}

// IdentityFrom returns the identity of the peer whose request ctx belongs
// to. Handlers of calls get a context derived from their connection's,
// so a service method reads its caller with IdentityFrom(ctx). It is the
// connection's identity when it is asked: the authenticate task can give
// a connection that was admitted anonymously one.
func IdentityFrom(ctx context.Context) (*Identity, bool) {
	src, _ := ctx.Value(identctx.Key{}).(interface{ Identity() *Identity })
	if src == nil {
		return nil, false
	}
	id := src.Identity()
	return id, id != nil
}

// An Authenticator decides at the WebSocket upgrade, before the handshake
// and before any packet, whether a peer may connect. It returns the
// peer's identity, or an error wrapping ErrUnauthenticated.
type Authenticator interface {
	Authenticate(r *http.Request) (*Identity, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(r *http.Request) (*Identity, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(r *http.Request) (*Identity, error) { return f(r) }

// bearer returns the token of a request: the Authorization header
// ("Bearer <token>"), or the query parameter "token" for clients that
// cannot set headers (browsers).
func bearer(r *http.Request) string {
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return r.URL.Query().Get("token")
}

// SharedToken accepts peers that present token, compared in constant time.
func SharedToken(token string) Authenticator {
	want := []byte(token)
	return AuthenticatorFunc(func(r *http.Request) (*Identity, error) {
		got := bearer(r)
		if got == "" {
			return nil, fmt.Errorf("%w: no token", ErrUnauthenticated)
		}
		if len(want) == 0 || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			return nil, fmt.Errorf("%w: wrong token", ErrUnauthenticated)
		}
		return &Identity{Subject: "token", Method: "token"}, nil
	})
}

// hmacClaims is the signed part of an HMAC token.
type hmacClaims struct {
	Sub string `json:"sub"`
	Exp int64  `json:"exp,omitempty"` // Unix seconds
}

// NewHMACToken returns a token for subject, valid for ttl (0: no expiry;
// negative: already expired, for tests),
// signed with key: base64url(JSON claims) "." base64url(HMAC-SHA256).
func NewHMACToken(key []byte, subject string, ttl time.Duration) (string, error) {
	if len(key) < 16 {
		return "", errors.New("peer: HMAC key shorter than 16 bytes")
	}
	c := hmacClaims{Sub: subject}
	if ttl != 0 {
		c.Exp = time.Now().Add(ttl).Unix()
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	p := base64.RawURLEncoding.EncodeToString(payload)
	return p + "." + base64.RawURLEncoding.EncodeToString(sign(key, p)), nil
}

func sign(key []byte, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// HMACToken accepts peers that present a token made by NewHMACToken with
// key and not yet expired; the identity's Subject is the token's subject.
func HMACToken(key []byte) Authenticator {
	return AuthenticatorFunc(func(r *http.Request) (*Identity, error) {
		return VerifyHMACToken(key, bearer(r), time.Now())
	})
}

// VerifyHMACToken checks a token made by NewHMACToken at time now.
func VerifyHMACToken(key []byte, token string, now time.Time) (*Identity, error) {
	if token == "" {
		return nil, fmt.Errorf("%w: no token", ErrUnauthenticated)
	}
	if len(token) > 4096 {
		return nil, fmt.Errorf("%w: token too long", ErrUnauthenticated)
	}
	p, s, ok := strings.Cut(token, ".")
	if !ok {
		return nil, fmt.Errorf("%w: malformed token", ErrUnauthenticated)
	}
	sig, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || !hmac.Equal(sig, sign(key, p)) {
		return nil, fmt.Errorf("%w: bad signature", ErrUnauthenticated)
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed token", ErrUnauthenticated)
	}
	var c hmacClaims
	if err := json.Unmarshal(payload, &c); err != nil || c.Sub == "" {
		return nil, fmt.Errorf("%w: malformed claims", ErrUnauthenticated)
	}
	id := &Identity{Subject: c.Sub, Method: "hmac"}
	if c.Exp != 0 {
		id.Expires = time.Unix(c.Exp, 0)
		if !now.Before(id.Expires) {
			return nil, fmt.Errorf("%w: token expired at %s", ErrUnauthenticated, id.Expires.UTC().Format(time.RFC3339))
		}
	}
	return id, nil
}
