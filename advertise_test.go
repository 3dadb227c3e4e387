package netron

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"maps"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

func TestAdvertised(t *testing.T) {
	lo := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9000}
	any4 := &net.TCPAddr{IP: net.IPv4zero, Port: 9000}
	host := hostIP(slog.New(slog.DiscardHandler)).String()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	for _, tc := range []struct {
		advertise string
		addr      net.Addr
		tls       bool
		want      string
	}{
		{"", lo, false, "ws://127.0.0.1:9000/"},
		{"", lo, true, "wss://127.0.0.1:9000/"},
		{"", any4, false, "ws://" + host + ":9000/"},
		{"", &net.TCPAddr{IP: net.IPv6unspecified, Port: 9000}, false, "ws://" + host + ":9000/"},
		{"10.0.0.5", any4, false, "ws://10.0.0.5:9000/"},
		{"node-a.internal", any4, true, "wss://node-a.internal:9000/"},
		{"10.0.0.5:443", any4, false, "ws://10.0.0.5:443/"},
		{"[fd00::5]:9001", any4, false, "ws://[fd00::5]:9001/"},
		{"fd00::5", any4, false, "ws://[fd00::5]:9000/"},
		{"wss://gw.example.com/netron", any4, false, "wss://gw.example.com/netron"},
		{"ws://10.0.0.5:9000", any4, false, "ws://10.0.0.5:9000/"},
	} {
		got, err := advertised(tc.advertise, tc.addr, tc.tls, slog.New(slog.DiscardHandler))
		if err != nil || got != tc.want {
			t.Errorf("advertised(%q, %v, %v) = %q, %v; want %q", tc.advertise, tc.addr, tc.tls, got, err, tc.want)
		}
	}
	for _, bad := range []string{"http://x:1/", "ws://", "10.0.0.5:0", "10.0.0.5:http", "a b", "user@host", ":9000"} {
		if got, err := advertised(bad, any4, false, slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("advertised(%q) = %q, want an error", bad, got)
		}
	}
}

// The default announced for a node bound to every interface is never a
// loopback address when the host has another one.
func TestHostIPIsNotLoopback(t *testing.T) {
	ip := hostIP(slog.New(slog.DiscardHandler))
	ifs, _ := net.InterfaceAddrs()
	other := false
	for _, a := range ifs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			other = true
		}
	}
	if other && ip.IsLoopback() {
		t.Fatalf("hostIP() = %v although the host has other addresses %v", ip, ifs)
	}
}

// chooseHostIP over made-up interface lists: the default route's interface
// wins whatever its name; without one, real interfaces beat container and
// VM bridges, IPv4 beats IPv6, running beats no carrier, the lower index
// breaks ties; loopback, link-local and down interfaces never count.
func TestChooseHostIP(t *testing.T) {
	up := net.FlagUp | net.FlagRunning
	lo := hostIface{name: "lo", index: 1, flags: up | net.FlagLoopback, addrs: ips("127.0.0.1", "::1")}
	docker := hostIface{name: "docker0", index: 2, flags: up, addrs: ips("172.17.0.1", "fe80::42:1")}
	bridge := hostIface{name: "br-5e2a", index: 3, flags: up, addrs: ips("172.18.0.1")}
	eth := hostIface{name: "eth0", index: 4, flags: up, addrs: ips("fe80::1", "10.0.0.5", "2001:db8::5")}
	wlan := hostIface{name: "wlan0", index: 5, flags: up, addrs: ips("192.168.1.7")}
	v6only := hostIface{name: "eth1", index: 6, flags: up, addrs: ips("fe80::2", "2001:db8::6")}
	veth := hostIface{name: "ntv1a", index: 40, flags: up, addrs: ips("10.213.1.1")}
	dummy := hostIface{name: "eth9", index: 2, flags: up, addrs: ips("10.99.0.1")}
	down := hostIface{name: "eth2", index: 7, flags: net.FlagBroadcast, addrs: ips("10.1.1.1")}
	nocarrier := hostIface{name: "eth3", index: 8, flags: net.FlagUp, addrs: ips("10.2.2.2")}
	for _, tc := range []struct {
		name     string
		ifs      []hostIface
		defaults map[string]uint32
		want     string
	}{
		{"docker0 has a lower index than eth0", []hostIface{lo, docker, bridge, eth}, nil, "10.0.0.5"},
		{"the default route decides", []hostIface{lo, docker, eth, wlan}, map[string]uint32{"wlan0": 600}, "192.168.1.7"},
		{"the lowest metric of several default routes", []hostIface{lo, eth, wlan}, map[string]uint32{"wlan0": 600, "eth0": 100}, "10.0.0.5"},
		{"a veth with the default route beats a lower index", []hostIface{lo, dummy, veth}, map[string]uint32{"ntv1a": 0}, "10.213.1.1"},
		{"without a default route, the lower index", []hostIface{lo, dummy, veth}, nil, "10.99.0.1"},
		{"IPv4 before IPv6", []hostIface{lo, v6only, wlan}, nil, "192.168.1.7"},
		{"a global IPv6 address, not link-local", []hostIface{lo, v6only}, nil, "2001:db8::6"},
		{"IPv6 default route", []hostIface{lo, wlan, v6only}, map[string]uint32{"eth1": 1024}, "2001:db8::6"},
		{"a bridge when nothing else", []hostIface{lo, docker}, nil, "172.17.0.1"},
		{"down interfaces never", []hostIface{lo, down}, map[string]uint32{"eth2": 0}, "127.0.0.1"},
		{"no carrier ranks lower", []hostIface{lo, nocarrier, wlan}, nil, "192.168.1.7"},
		{"no carrier rather than loopback", []hostIface{lo, nocarrier}, nil, "10.2.2.2"},
		{"only loopback", []hostIface{lo}, nil, "127.0.0.1"},
		{"nothing", nil, nil, "127.0.0.1"},
	} {
		got, cands := chooseHostIP(tc.ifs, tc.defaults)
		if got.String() != tc.want {
			t.Errorf("%s: chose %v from %v, want %s", tc.name, got, cands, tc.want)
		}
		if len(cands) > 0 && !cands[0].ip.Equal(got) {
			t.Errorf("%s: candidates %v do not start with the choice %v", tc.name, cands, got)
		}
	}
}

func ips(ss ...string) []net.IP {
	out := make([]net.IP, len(ss))
	for i, s := range ss {
		out[i] = net.ParseIP(s)
	}
	return out
}

// The kernel's route tables as Linux prints them: only default routes
// that are up and not rejecting count, each interface with its lowest
// metric; malformed lines are skipped.
func TestParseRoutes(t *testing.T) {
	v4 := `Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
eth0	00000000	0102A8C0	0003	0	0	100	00000000	0	0	0
eth0	0002A8C0	00000000	0001	0	0	100	00FFFFFF	0	0	0
docker0	000011AC	00000000	0001	0	0	0	0000FFFF	0	0	0
wlan0	00000000	0101A8C0	0003	0	0	600	00000000	0	0	0
wlan0	00000000	0101A8C0	0003	0	0	50	00000000	0	0	0
down0	00000000	0101A8C0	0002	0	0	1	00000000	0	0	0
rej0	00000000	00000000	0201	0	0	1	00000000	0	0	0
short	00000000
bad	00000000	0101A8C0	zz	0	0	1	00000000	0	0	0
`
	v6 := `00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 eth1
20010db8000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 eth1
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 00000001 00000001 00000000 00000201 rej6
garbage
`
	got := map[string]uint32{}
	parseRoutesV4(strings.NewReader(v4), got)
	parseRoutesV6(strings.NewReader(v6), got)
	want := map[string]uint32{"eth0": 100, "wlan0": 50, "eth1": 1024}
	if !maps.Equal(got, want) {
		t.Fatalf("default routes %v, want %v", got, want)
	}
}

func TestConfigValidatesAdvertiseAndRedis(t *testing.T) {
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{Advertise: "ftp://x/"}, "advertise"},
		{Config{Discovery: DiscoveryConfig{Redis: RedisConfig{URL: "http://x"}}}, "discovery.redis.url"},
		{Config{Discovery: DiscoveryConfig{Redis: RedisConfig{URL: "redis://x?bogus=1"}}}, "discovery.redis.url"},
		{Config{Discovery: DiscoveryConfig{Redis: RedisConfig{URL: "redis://x", Host: "y"}}}, "discovery.redis.url"},
		{Config{Discovery: DiscoveryConfig{Redis: RedisConfig{Host: "y", Addrs: "a:1,b:2"}}}, "discovery.redis.addrs"},
		{Config{Discovery: DiscoveryConfig{Redis: RedisConfig{MasterName: "m"}}}, "discovery.redis.masterName"},
		{Config{Discovery: DiscoveryConfig{Redis: RedisConfig{MasterName: "m", Addrs: "s:26379", Cluster: true}}}, "discovery.redis.cluster"},
		{Config{Discovery: DiscoveryConfig{Redis: RedisConfig{Addrs: "a:7000,b:7000", DB: 2}}}, "discovery.redis.addrs"},
		{Config{Discovery: DiscoveryConfig{Redis: RedisConfig{Addrs: "a:7000", Cluster: true, DB: 1}}}, "discovery.redis.addrs"},
		{Config{Discovery: DiscoveryConfig{Redis: RedisConfig{Host: "h", TLSCertFile: "c.pem"}}}, "discovery.redis"},
		{Config{Discovery: DiscoveryConfig{Redis: RedisConfig{Host: "h", TLS: true, TLSCAFile: "/nonexistent/ca.pem"}}}, "discovery.redis"},
		{Config{Discovery: DiscoveryConfig{Redis: RedisConfig{URL: "rediss://h", TLSCAFile: "/nonexistent/ca.pem"}}}, "discovery.redis.url"},
	} {
		err := tc.cfg.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field+":") {
			t.Errorf("%+v: %v, want an error naming %s", tc.cfg, err, tc.field)
		}
	}
	ok := []RedisConfig{
		{Host: "h"},
		{URL: "redis://:pw@h:6380/2"},
		{Addrs: "a:7000, b:7000,c:7000"},
		{Addrs: "s1:26379,s2:26379", MasterName: "m", SentinelPassword: "x"},
		{Addrs: "seed:7000", Cluster: true},
		{Addrs: "s1:26379,s2:26379", MasterName: "m", DB: 2},
		{Host: "h", TLS: true, TLSServerName: "redis.internal"},
	}
	for _, r := range ok {
		c := Config{Discovery: DiscoveryConfig{Enabled: true, Redis: r}}
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
		o, err := r.Endpoint().Options()
		if err != nil || len(o.Addrs) == 0 {
			t.Errorf("%+v: options %+v %v", r, o, err)
		}
	}
	if o, _ := (RedisConfig{Addrs: "a:7000, b:7000,c:7000"}).Endpoint().Options(); len(o.Addrs) != 3 || o.Addrs[1] != "b:7000" {
		t.Errorf("addrs split: %v", o.Addrs)
	}
}

// hostIP logs the address it chose (and the candidates, when there are
// any but loopback).
func TestHostIPLogsItsChoice(t *testing.T) {
	var logs bytes.Buffer
	ip := hostIP(slog.New(slog.NewTextHandler(&logs, nil)))
	if !strings.Contains(logs.String(), "chosen="+ip.String()) {
		t.Fatalf("hostIP chose %v and logged:\n%s", ip, logs.String())
	}
	if !ip.IsLoopback() && !strings.Contains(logs.String(), "candidates=") {
		t.Fatalf("no candidates logged:\n%s", logs.String())
	}
}

// selfSigned returns a certificate for localhost and 127.0.0.1, signed by
// its own key.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// A node with TLS announces wss://. When the address it announces is a
// bare IP it warns that peers check the certificate against that IP; not
// when advertise names the host the certificate is for.
func TestTLSWithBareIPWarns(t *testing.T) {
	cert := selfSigned(t)
	for _, tc := range []struct {
		advertise string
		url       string
		warn      bool
	}{
		{"", "wss://127.0.0.1:", true},
		{"localhost", "wss://localhost:", false},
	} {
		var logs bytes.Buffer
		n, err := New(Config{ID: "tls", Host: "127.0.0.1", Server: true, Advertise: tc.advertise,
			TLS: &tls.Config{Certificates: []tls.Certificate{cert}}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		url := n.URL()
		_ = n.Close()
		if !strings.HasPrefix(url, tc.url) {
			t.Errorf("advertise %q: URL %s, want %s…", tc.advertise, url, tc.url)
		}
		if got := strings.Contains(logs.String(), "TLS is on and the advertised address is an IP address"); got != tc.warn {
			t.Errorf("advertise %q: warned %v, want %v:\n%s", tc.advertise, got, tc.warn, logs.String())
		}
	}
}
