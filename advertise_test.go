package netron

import (
	"errors"
	"net"
	"strings"
	"testing"
)

func TestAdvertised(t *testing.T) {
	lo := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9000}
	any4 := &net.TCPAddr{IP: net.IPv4zero, Port: 9000}
	host := hostIP().String()
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
		got, err := advertised(tc.advertise, tc.addr, tc.tls)
		if err != nil || got != tc.want {
			t.Errorf("advertised(%q, %v, %v) = %q, %v; want %q", tc.advertise, tc.addr, tc.tls, got, err, tc.want)
		}
	}
	for _, bad := range []string{"http://x:1/", "ws://", "10.0.0.5:0", "10.0.0.5:http", "a b", "user@host", ":9000"} {
		if got, err := advertised(bad, any4, false); err == nil {
			t.Errorf("advertised(%q) = %q, want an error", bad, got)
		}
	}
}

// The default announced for a node bound to every interface is never a
// loopback address when the host has another one.
func TestHostIPIsNotLoopback(t *testing.T) {
	ip := hostIP()
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
