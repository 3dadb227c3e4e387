package transport_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/netron-go/netron/internal/transport"
	"github.com/netron-go/netron/peer"
)

func TestSharedToken(t *testing.T) {
	server := newHub(t, "server", transport.WithAuthenticator(peer.SharedToken("s3cret")))
	url := serve(t, server)
	ctx := context.Background()

	for _, tok := range []string{"", "wrong", "s3cret-but-longer"} {
		var opts []transport.Option
		if tok != "" {
			opts = append(opts, transport.WithToken(tok))
		}
		_, err := newHub(t, "intruder", opts...).Dial(ctx, url)
		if !errors.Is(err, peer.ErrUnauthenticated) {
			t.Fatalf("token %q: %v, want peer.ErrUnauthenticated", tok, err)
		}
	}
	if n := len(server.Conns()); n != 0 {
		t.Fatalf("%d unauthenticated conns", n)
	}
	c, err := newHub(t, "friend", transport.WithToken("s3cret")).Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The server side's connection context carries the identity, so
	// handlers can read it.
	waitConns(t, server, 1)
	sc := server.Conns()[0]
	id, ok := peer.IdentityFrom(sc.Context())
	if !ok || id.Subject != "token" || id.Method != "token" || sc.Identity() != id {
		t.Fatalf("identity %+v %v", id, ok)
	}
}

func TestHMACToken(t *testing.T) {
	key := []byte("0123456789abcdef-key")
	server := newHub(t, "server", transport.WithAuthenticator(peer.HMACToken(key)))
	url := serve(t, server)
	ctx := context.Background()

	good, err := peer.NewHMACToken(key, "billing-service", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expired, _ := peer.NewHMACToken(key, "old", -time.Second)
	forged, _ := peer.NewHMACToken([]byte("another-key-0123456"), "billing-service", time.Hour)
	tampered := strings.Replace(good, good[:4], "eyJz", 1) + "x"
	for name, tok := range map[string]string{"expired": expired, "forged": forged, "tampered": tampered, "garbage": "a.b.c"} {
		if _, err := newHub(t, "x", transport.WithToken(tok)).Dial(ctx, url); !errors.Is(err, peer.ErrUnauthenticated) {
			t.Errorf("%s token: %v", name, err)
		}
	}
	if _, err := newHub(t, "billing", transport.WithToken(good)).Dial(ctx, url); err != nil {
		t.Fatal(err)
	}
	waitConns(t, server, 1)
	id := server.Conns()[0].Identity()
	if id == nil || id.Subject != "billing-service" || id.Method != "hmac" || id.Expires.IsZero() {
		t.Fatalf("identity %+v", id)
	}
	if _, err := peer.VerifyHMACToken(key, good, time.Now().Add(2*time.Hour)); !errors.Is(err, peer.ErrUnauthenticated) {
		t.Fatalf("token valid after expiry: %v", err)
	}
}

// wss:// with mutual TLS: the client certificate is the peer's identity;
// a client without one is refused.
func TestMutualTLS(t *testing.T) {
	ca, caKey := newCA(t)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	serverCert := leaf(t, ca, caKey, "server", true)
	clientCert := leaf(t, ca, caKey, "client-a", false)

	server := newHub(t, "server", transport.WithTLS(&tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}))
	addr, err := server.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "wss://" + addr.String()
	ctx := context.Background()

	withCert := newHub(t, "client-a", transport.WithDialTLS(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS12}))
	c, err := withCert.Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitConns(t, server, 1)
	if id := server.Conns()[0].Identity(); id == nil || id.Subject != "client-a" || id.Method != "tls" {
		t.Fatalf("identity %+v", id)
	}
	noCert := newHub(t, "anon", transport.WithDialTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	if _, err := noCert.Dial(ctx, url); err == nil {
		t.Fatal("a client without a certificate got in")
	}
	untrusting := newHub(t, "anon2")
	if _, err := untrusting.Dial(ctx, url); err == nil {
		t.Fatal("a client that does not trust the server's CA connected")
	}
}

func waitConns(t *testing.T, h *transport.Hub, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(h.Conns()) != n {
		if time.Now().After(deadline) {
			t.Fatalf("hub has %d conns, want %d", len(h.Conns()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func leaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, server bool) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
