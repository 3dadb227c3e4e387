package netron

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
)

// advertised returns the URL peers dial to reach a node bound to addr:
// from advertise ("host", "host:port" or a ws:// or wss:// URL) when it is
// set, else from addr, with an address of this host (see hostIP) in place
// of a wildcard one. The choice is logged on log at Info.
func advertised(advertise string, addr net.Addr, tls bool, log *slog.Logger) (string, error) {
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
			ip = hostIP(log)
		}
		host = ip.String()
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/", nil
}

// hostIP picks the address a node bound to every interface announces,
// from the interfaces of this host and its default routes (see chooseHostIP),
// and logs the candidates and the choice at Info.
func hostIP(log *slog.Logger) net.IP {
	ifs, err := hostInterfaces()
	if err != nil {
		log.Warn("netron: cannot list the network interfaces; advertising 127.0.0.1 (set advertise)", "err", err)
		return net.IPv4(127, 0, 0, 1)
	}
	ip, cands := chooseHostIP(ifs, defaultRoutes())
	list := make([]string, len(cands))
	for i, c := range cands {
		list[i] = c.String()
	}
	if ip.IsLoopback() {
		log.Warn("netron: no address but loopback to advertise; peers on other hosts cannot reach this node (set advertise)", "chosen", ip.String())
	} else {
		log.Info("netron: advertising an address of this host (set advertise to choose another)", "chosen", ip.String(), "candidates", list)
	}
	return ip
}

// hostIface is a network interface as chooseHostIP sees it.
type hostIface struct {
	name  string
	index int
	flags net.Flags
	addrs []net.IP
}

// hostInterfaces lists this host's interfaces with their addresses.
func hostInterfaces() ([]hostIface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]hostIface, 0, len(ifs))
	for _, ifc := range ifs {
		h := hostIface{name: ifc.Name, index: ifc.Index, flags: ifc.Flags}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				h.addrs = append(h.addrs, ipn.IP)
			}
		}
		out = append(out, h)
	}
	return out, nil
}

// ipCandidate is an address chooseHostIP considered, with its rank.
type ipCandidate struct {
	ip    net.IP
	iface string
	index int
	rank  int
	notes []string
}

func (c ipCandidate) String() string {
	s := c.ip.String() + " (" + c.iface
	for _, n := range c.notes {
		s += ", " + n
	}
	return s + ")"
}

// Rank bonuses of chooseHostIP: the default route's interface decides;
// then a real interface beats a virtual bridge, IPv4 beats IPv6, and an
// interface with a carrier beats one without.
const (
	rankDefaultRoute = 8
	rankNotVirtual   = 4
	rankIPv4         = 2
	rankRunning      = 1
)

// virtualPrefixes name the interfaces of container and VM networks
// (bridges, overlays, veth ends) that other hosts cannot reach.
var virtualPrefixes = []string{"docker", "br-", "virbr", "cni", "flannel", "cali", "weave", "vxlan", "kube-", "lxcbr", "lxdbr", "podman", "veth", "vnet", "tun", "tap"}

// isVirtual reports whether an interface name is one of virtualPrefixes.
func isVirtual(name string) bool {
	for _, p := range virtualPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// chooseHostIP picks, from ifs, the address to advertise: an address of an
// interface that is up and not loopback, not loopback or link-local itself
// (for IPv6 a global unicast address, unique local included), ranked by
// the bonuses above: the interface of the default route (defaults: the
// interfaces of the default routes with the lowest metric; others of the
// default routes rank below it) first, whatever its name; then real
// interfaces before virtual bridges (docker0, br-…, virbr0, cni0, …), IPv4
// before IPv6, running before not; ties go to the lower interface index.
// Without a candidate it returns 127.0.0.1. It also returns the candidates,
// best first, for the log.
func chooseHostIP(ifs []hostIface, defaults map[string]uint32) (net.IP, []ipCandidate) {
	best := uint32(0)
	haveBest := false
	for _, m := range defaults {
		if !haveBest || m < best {
			best, haveBest = m, true
		}
	}
	var cands []ipCandidate
	for _, ifc := range ifs {
		if ifc.flags&net.FlagUp == 0 || ifc.flags&net.FlagLoopback != 0 {
			continue
		}
		for _, ip := range ifc.addrs {
			if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() || ip.IsMulticast() ||
				ip.To4() == nil && !ip.IsGlobalUnicast() {
				continue
			}
			c := ipCandidate{ip: ip, iface: ifc.name, index: ifc.index}
			if m, ok := defaults[ifc.name]; ok {
				if m == best {
					c.rank += rankDefaultRoute
					c.notes = append(c.notes, "default route")
				} else {
					c.rank += rankDefaultRoute / 2
					c.notes = append(c.notes, "default route, higher metric")
				}
			}
			if isVirtual(ifc.name) {
				c.notes = append(c.notes, "virtual")
			} else {
				c.rank += rankNotVirtual
			}
			if ip.To4() != nil {
				c.rank += rankIPv4
			}
			if ifc.flags&net.FlagRunning != 0 {
				c.rank += rankRunning
			} else {
				c.notes = append(c.notes, "no carrier")
			}
			cands = append(cands, c)
		}
	}
	slices.SortStableFunc(cands, func(a, b ipCandidate) int {
		if c := cmp.Compare(b.rank, a.rank); c != 0 {
			return c
		}
		return cmp.Compare(a.index, b.index)
	})
	if len(cands) == 0 {
		return net.IPv4(127, 0, 0, 1), nil
	}
	return cands[0].ip, cands
}

// defaultRoutes returns the interfaces of this host's default routes, IPv4
// and IPv6, with their metrics. It reads /proc/net/route and
// /proc/net/ipv6_route, so it finds nothing outside Linux; the choice then
// rests on the other ranks.
func defaultRoutes() map[string]uint32 {
	out := map[string]uint32{}
	for _, f := range []struct {
		path  string
		parse func(io.Reader, map[string]uint32)
	}{{"/proc/net/route", parseRoutesV4}, {"/proc/net/ipv6_route", parseRoutesV6}} {
		r, err := os.Open(f.path)
		if err != nil {
			continue
		}
		f.parse(r, out)
		r.Close()
	}
	return out
}

// Route flags of the kernel's tables.
const (
	rtfUp     = 0x0001
	rtfReject = 0x0200
)

// parseRoutesV4 adds to out the interfaces of the default routes of
// /proc/net/route (columns Iface Destination Gateway Flags RefCnt Use
// Metric Mask …, in hex), each with its lowest metric.
func parseRoutesV4(r io.Reader, out map[string]uint32) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 || f[1] != "00000000" || f[7] != "00000000" {
			continue
		}
		flags, err1 := strconv.ParseUint(f[3], 16, 32)
		metric, err2 := strconv.ParseUint(f[6], 10, 32)
		if err1 != nil || err2 != nil || flags&rtfUp == 0 || flags&rtfReject != 0 {
			continue
		}
		addRoute(out, f[0], uint32(metric))
	}
}

// parseRoutesV6 adds to out the interfaces of the default routes of
// /proc/net/ipv6_route (columns destination, prefix length, source, its
// length, next hop, metric, refcount, use, flags, interface; in hex).
// Unreachable defaults (on lo, rejecting) do not count.
func parseRoutesV6(r io.Reader, out map[string]uint32) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[0] != strings.Repeat("0", 32) || f[1] != "00" || f[9] == "lo" {
			continue
		}
		metric, err1 := strconv.ParseUint(f[5], 16, 32)
		flags, err2 := strconv.ParseUint(f[8], 16, 32)
		if err1 != nil || err2 != nil || flags&rtfUp == 0 || flags&rtfReject != 0 {
			continue
		}
		addRoute(out, f[9], uint32(metric))
	}
}

func addRoute(out map[string]uint32, iface string, metric uint32) {
	if m, ok := out[iface]; !ok || metric < m {
		out[iface] = metric
	}
}
