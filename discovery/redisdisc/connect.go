package redisdisc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Connect is New with a client of its own, for the Redis server at addr
// ("host:port"), authenticating with password unless it is empty, on
// database db. Close closes that client, after everything else has stopped.
func Connect(addr, password string, db int, opts ...Option) (*Discovery, error) {
	if addr == "" {
		return nil, fmt.Errorf("%w: empty redis address", ErrInvalidOption)
	}
	return ConnectUniversal(&redis.UniversalOptions{Addrs: []string{addr}, Password: password, DB: db}, opts...)
}

// ConnectUniversal is New with a client of its own made from o by
// redis.NewUniversalClient: a single server (one address), Sentinel
// (MasterName set; Addrs are the sentinels') or Cluster (several Addrs, the
// seeds, or IsClusterMode). Unless o sets them, the client retries a failed
// command once and a failed dial once (the backend retries on its own, with
// backoff). ContextTimeoutEnabled is always set, so that the deadlines the
// backend gives its round trips hold on a Redis that stops answering.
// Close closes the client, after everything else has stopped. o is not
// modified.
func ConnectUniversal(o *redis.UniversalOptions, opts ...Option) (*Discovery, error) {
	if o == nil || len(o.Addrs) == 0 {
		return nil, fmt.Errorf("%w: no redis address", ErrInvalidOption)
	}
	oc := *o
	if oc.MaxRetries == 0 {
		oc.MaxRetries = 1
	}
	if oc.DialerRetries == 0 {
		oc.DialerRetries = 1
	}
	oc.ContextTimeoutEnabled = true
	c := redis.NewUniversalClient(&oc)
	xr := &xreadCounter{}
	c.AddHook(xr)
	d, err := New(c, opts...)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	d.ownClient, d.xreads = true, xr
	return d, nil
}

// Endpoint says where Redis is, in one of three ways: a URL (see
// ParseURL); Addrs with MasterName, the Sentinels watching that master;
// Addrs alone, one server, or the seeds of a Redis Cluster when there are
// several or Cluster is set. Password (and Username) authenticate with
// Redis, or with the master under Sentinel; SentinelPassword with the
// Sentinels. A Password set with a URL replaces the URL's.
//
// TLS (or a rediss:// URL) encrypts every connection: to the server, to
// every node of a Cluster, to the Sentinels and the master. The server's
// certificate is verified against the system's roots, or the PEM
// certificates of CAFile, and its name against ServerName when set, else
// against the host of each address dialled, so that every node of a
// Cluster and every Sentinel is checked by its own name (a Cluster that
// announces its nodes by IP address needs certificates with those IP
// addresses). CertFile and KeyFile give a client certificate (mutual TLS).
type Endpoint struct {
	URL              string
	Addrs            []string
	MasterName       string
	Cluster          bool
	DB               int
	Username         string
	Password         string
	SentinelPassword string
	TLS              bool
	CAFile           string
	CertFile         string
	KeyFile          string
	ServerName       string
}

// Options returns go-redis's options for e. It reads the files of the TLS
// settings.
func (e Endpoint) Options() (*redis.UniversalOptions, error) {
	var o *redis.UniversalOptions
	if e.URL != "" {
		var err error
		if o, err = ParseURL(e.URL); err != nil {
			return nil, err
		}
		if e.Password != "" {
			o.Password = e.Password
		}
	} else {
		if len(e.Addrs) == 0 {
			return nil, fmt.Errorf("%w: no redis address", ErrInvalidOption)
		}
		if (e.Cluster || e.MasterName == "" && len(e.Addrs) > 1) && e.DB != 0 {
			return nil, fmt.Errorf("%w: redis database %d: a Redis Cluster has only database 0", ErrInvalidOption, e.DB)
		}
		if e.MasterName != "" && e.Cluster {
			return nil, fmt.Errorf("%w: a Sentinel master (master name) is not a Cluster", ErrInvalidOption)
		}
		o = &redis.UniversalOptions{
			Addrs:            slices.Clone(e.Addrs),
			MasterName:       e.MasterName,
			IsClusterMode:    e.Cluster,
			DB:               e.DB,
			Username:         e.Username,
			Password:         e.Password,
			SentinelPassword: e.SentinelPassword,
		}
	}
	if e.TLS || e.CAFile != "" || e.CertFile != "" || e.KeyFile != "" || e.ServerName != "" {
		if o.TLSConfig == nil {
			o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if err := e.configureTLS(o.TLSConfig); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// configureTLS applies e's TLS files and server name to c.
func (e Endpoint) configureTLS(c *tls.Config) error {
	if e.ServerName != "" {
		c.ServerName = e.ServerName
	}
	if e.CAFile != "" {
		pem, err := os.ReadFile(e.CAFile)
		if err != nil {
			return fmt.Errorf("%w: redis TLS CA file: %w", ErrInvalidOption, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%w: redis TLS CA file %s: no PEM certificate", ErrInvalidOption, e.CAFile)
		}
		c.RootCAs = pool
	}
	if (e.CertFile == "") != (e.KeyFile == "") {
		return fmt.Errorf("%w: redis TLS client certificate: give both the certificate and the key file", ErrInvalidOption)
	}
	if e.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(e.CertFile, e.KeyFile)
		if err != nil {
			return fmt.Errorf("%w: redis TLS client certificate: %w", ErrInvalidOption, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return nil
}

// ConnectEndpoint is ConnectUniversal with the options of e.
func ConnectEndpoint(e Endpoint, opts ...Option) (*Discovery, error) {
	o, err := e.Options()
	if err != nil {
		return nil, err
	}
	return ConnectUniversal(o, opts...)
}

// ParseURL reads a Redis URL into the options of ConnectUniversal:
//
//	redis://[[user]:password@]host[:port][/db]                        a single server
//	rediss://…                                                         any of these over TLS
//	redis://[:password@]host:port?addr=host2:port2&addr=…              Redis Cluster: every address is a seed
//	redis://host:port?cluster=true                                     Redis Cluster with one seed
//	redis://[:password@]s1:26379?addr=s2:26379&master_name=mymaster    Sentinel: the addresses are the sentinels'
//
// The port defaults to 6379 and the database to 0 (a Cluster has only 0).
// With Sentinel, the password is the master's; sentinel_password=… sets
// the sentinels' (default: none). Other query parameters are refused.
func ParseURL(rawURL string) (*redis.UniversalOptions, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: redis URL: %v", ErrInvalidOption, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: redis URL %s: %s", ErrInvalidOption, redact(u), fmt.Sprintf(format, args...))
	}
	o := &redis.UniversalOptions{}
	switch u.Scheme {
	case "redis":
	case "rediss":
		// No ServerName: crypto/tls checks each address dialled by its own
		// host, every node of a Cluster and every Sentinel.
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	default:
		return nil, bad("scheme %q is not redis or rediss", u.Scheme)
	}
	if u.Host == "" {
		return nil, bad("no host")
	}
	if u.User != nil {
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
	}
	o.Addrs = append(o.Addrs, withPort(u.Host))
	if p := strings.Trim(u.Path, "/"); p != "" {
		db, err := strconv.Atoi(p)
		if err != nil || db < 0 {
			return nil, bad("database %q is not a number", p)
		}
		o.DB = db
	}
	for k, vs := range u.Query() {
		switch k {
		case "addr":
			for _, v := range vs {
				if v == "" {
					return nil, bad("empty addr")
				}
				o.Addrs = append(o.Addrs, withPort(v))
			}
		case "master_name":
			o.MasterName = vs[len(vs)-1]
		case "sentinel_password":
			o.SentinelPassword = vs[len(vs)-1]
		case "cluster":
			b, err := strconv.ParseBool(vs[len(vs)-1])
			if err != nil {
				return nil, bad("cluster=%q is not a boolean", vs[len(vs)-1])
			}
			o.IsClusterMode = b
		default:
			return nil, bad("unknown parameter %q (addr, master_name, sentinel_password, cluster)", k)
		}
	}
	switch {
	case o.MasterName != "" && o.IsClusterMode:
		return nil, bad("master_name and cluster=true exclude each other")
	case o.MasterName == "" && o.SentinelPassword != "":
		return nil, bad("sentinel_password without master_name")
	case (o.IsClusterMode || o.MasterName == "" && len(o.Addrs) > 1) && o.DB != 0:
		return nil, bad("a Redis Cluster has only database 0")
	}
	return o, nil
}

func withPort(hostport string) string {
	if _, _, err := net.SplitHostPort(hostport); err == nil {
		return hostport
	}
	return net.JoinHostPort(strings.Trim(hostport, "[]"), "6379")
}

// redact returns u without its password, for error messages.
func redact(u *url.URL) string {
	c := *u
	c.RawQuery = ""
	return c.Redacted()
}

// xreadCounter counts the XREADs in flight of a client of this package, so
// that Close can let the stream reader's blocking XREAD return before it
// closes the client under it.
type xreadCounter struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to 0; nil while n is 0
}

func (x *xreadCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (x *xreadCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() != "xread" {
			return next(ctx, cmd)
		}
		x.mu.Lock()
		if x.n == 0 {
			x.zero = make(chan struct{})
		}
		x.n++
		x.mu.Unlock()
		defer func() {
			x.mu.Lock()
			x.n--
			if x.n == 0 {
				close(x.zero)
				x.zero = nil
			}
			x.mu.Unlock()
		}()
		return next(ctx, cmd)
	}
}

func (x *xreadCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// wait waits until no XREAD is in flight, at most d and until ctx ends.
func (x *xreadCounter) wait(ctx context.Context, d time.Duration) {
	x.mu.Lock()
	zero := x.zero
	x.mu.Unlock()
	if zero == nil {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-zero:
	case <-t.C:
	case <-ctx.Done():
	}
}
