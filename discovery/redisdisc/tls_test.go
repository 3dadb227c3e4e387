package redisdisc_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/redisdisc"
	"github.com/netron-go/netron/internal/testredis"
)

// Discovery over TLS, with the CA of the server's certificate: by
// addresses and by a rediss:// URL. Without that CA, or checked against
// another name, the certificate is refused and nothing is written.
func TestTLS(t *testing.T) {
	srv := testredis.Start(t, testredis.WithTLS())
	prefix := uniquePrefix(t)
	// Heartbeats of 5 s give each round trip 5 s: a TLS handshake on a
	// loaded machine under the race detector may take a good part of the
	// 500 ms a short heartbeat allows. Nothing here waits for a heartbeat.
	opts := []redisdisc.Option{redisdisc.WithPrefix(prefix), redisdisc.WithHeartbeat(5 * time.Second)}
	connect := func(e redisdisc.Endpoint) *redisdisc.Discovery {
		t.Helper()
		d, err := redisdisc.ConnectEndpoint(e, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close() })
		return d
	}
	a := connect(redisdisc.Endpoint{Addrs: []string{srv.Addr()}, TLS: true, CAFile: srv.CAFile()})
	register(t, a, "n1")
	b := connect(redisdisc.Endpoint{URL: "rediss://" + srv.Addr(), CAFile: srv.CAFile()})
	waitListed(t, b, "n1")
	c := connect(redisdisc.Endpoint{URL: "rediss://localhost:" + strings.Split(srv.Addr(), ":")[1], CAFile: srv.CAFile()})
	waitListed(t, c, "n1") // checked by the host dialled: localhost is in the certificate

	for name, e := range map[string]redisdisc.Endpoint{
		"no CA":      {Addrs: []string{srv.Addr()}, TLS: true},
		"wrong name": {Addrs: []string{srv.Addr()}, TLS: true, CAFile: srv.CAFile(), ServerName: "redis.example.com"},
	} {
		d := connect(e)
		err := d.Register(ctxT(t), discovery.NodeInfo{ID: "n2"})
		if !errors.Is(err, discovery.ErrUnavailable) || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("%s: Register: %v, want ErrUnavailable for the certificate", name, err)
		}
	}
	if got := listed(t, b); len(got) != 1 {
		t.Fatalf("after the refusals: %v", got)
	}
}

// Endpoint.Options checks what it can before any connection.
func TestEndpointOptions(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, e := range map[string]redisdisc.Endpoint{
		"nothing":               {},
		"cluster database":      {Addrs: []string{"a:7000", "b:7000"}, DB: 2},
		"one seed database":     {Addrs: []string{"a:7000"}, Cluster: true, DB: 1},
		"sentinel cluster":      {Addrs: []string{"s:26379"}, MasterName: "m", Cluster: true},
		"missing CA file":       {Addrs: []string{"a:6379"}, CAFile: filepath.Join(dir, "none.pem")},
		"CA file without PEM":   {Addrs: []string{"a:6379"}, CAFile: notPEM},
		"certificate, no key":   {Addrs: []string{"a:6379"}, CertFile: notPEM},
		"bad client key pair":   {Addrs: []string{"a:6379"}, CertFile: notPEM, KeyFile: notPEM},
		"URL cluster database":  {URL: "redis://a:7000/2?addr=b:7000"},
		"URL with a bad scheme": {URL: "http://a"},
	} {
		if _, err := e.Options(); !errors.Is(err, discovery.ErrInvalidOption) {
			t.Errorf("%s: %v, want ErrInvalidOption", name, err)
		}
	}
	for name, e := range map[string]redisdisc.Endpoint{
		"one server, database 3": {Addrs: []string{"a:6379"}, DB: 3},
		"sentinel, database 3":   {Addrs: []string{"s1:26379", "s2:26379"}, MasterName: "m", DB: 3},
		"TLS":                    {Addrs: []string{"a:6379"}, TLS: true, ServerName: "redis.internal"},
	} {
		o, err := e.Options()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if e.TLS && (o.TLSConfig == nil || o.TLSConfig.ServerName != "redis.internal") {
			t.Errorf("%s: TLS config %+v", name, o.TLSConfig)
		}
	}
}

// Keys of the layout before hash tags under the prefix: a warning at
// start, naming them.
func TestOldLayoutWarning(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	prefix := uniquePrefix(t)
	if err := client.HSet(ctxT(t), prefix+":nodes", "old", "{}").Err(); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	newDisc(t, client, prefix, redisdisc.WithLogger(logs.logger()))
	eventually(t, settle, "the warning", func() string {
		if !strings.Contains(logs.String(), "keys of the earlier key layout exist") || !strings.Contains(logs.String(), prefix+":nodes") {
			return logs.String()
		}
		return ""
	})
	var quiet logBuffer
	d := newDisc(t, client, uniquePrefix(t), redisdisc.WithLogger(quiet.logger()))
	register(t, d, "n1")
	waitBeats(t, 1, d) // after the first snapshot and its checks
	if strings.Contains(quiet.String(), "earlier key layout") {
		t.Fatalf("warning without old keys:\n%s", quiet.String())
	}
}
