package netron

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// advertised returns the URL peers dial to reach a node bound to addr:
// from advertise ("host", "host:port" or a ws:// or wss:// URL) when it is
// set, else from addr, with a non-loopback address of this host in place
// of a wildcard one (see Config.Advertise).
func advertised(advertise string, addr net.Addr, tls bool) (string, error) {
	bound, ok := addr.(*net.TCPAddr)
	if !ok {
		return "", fmt.Errorf("advertise: not a TCP address: %v", addr)
	}
	scheme := "ws"
	if tls {
		scheme = "wss"
	}
	if strings.Contains(advertise, "://") {
		u, err := url.Parse(advertise)
		if err != nil {
			return "", fmt.Errorf("advertise: %w", err)
		}
		if u.Scheme != "ws" && u.Scheme != "wss" || u.Host == "" {
			return "", fmt.Errorf("advertise: %q is not a ws:// or wss:// URL with a host", advertise)
		}
		if u.Path == "" {
			u.Path = "/"
		}
		return u.String(), nil
	}
	host, port := advertise, strconv.Itoa(bound.Port)
	if advertise != "" {
		if h, p, err := net.SplitHostPort(advertise); err == nil {
			n, perr := strconv.Atoi(p)
			if perr != nil || n <= 0 || n > 65535 {
				return "", fmt.Errorf("advertise: %q: bad port", advertise)
			}
			host, port = h, p
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if host == "" || strings.ContainsAny(host, "/ ?#@") {
			return "", fmt.Errorf("advertise: %q is not a host, host:port or ws:// URL", advertise)
		}
	} else {
		ip := bound.IP
		if ip == nil || ip.IsUnspecified() {
			ip = hostIP()
		}
		host = ip.String()
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/", nil
}

// hostIP picks the address a node bound to every interface announces: the
// first IPv4 address of an interface that is up and not loopback, by
// interface index, preferring interfaces that are running (have a
// carrier); else such a global IPv6 address; else 127.0.0.1.
func hostIP() net.IP {
	ifs, err := net.Interfaces()
	if err != nil {
		return net.IPv4(127, 0, 0, 1)
	}
	var best net.IP
	bestRank := 0
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() || ipn.IP.IsUnspecified() {
				continue
			}
			rank := 1
			if ipn.IP.To4() != nil {
				rank += 2
			}
			if ifc.Flags&net.FlagRunning != 0 {
				rank++
			}
			if rank > bestRank {
				best, bestRank = ipn.IP, rank
			}
		}
	}
	if best == nil {
		return net.IPv4(127, 0, 0, 1)
	}
	return best
}
