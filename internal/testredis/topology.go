package testredis

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// lookCLI finds redis-cli ($REDIS_CLI, else PATH), failing the test under
// CI=true and skipping it elsewhere when it is missing.
func lookCLI(t testing.TB) string {
	t.Helper()
	p, err := lookTool("redis-cli", "REDIS_CLI")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("testredis: %v (CI=true: a missing redis-cli is a failure)", err)
		}
		t.Skipf("testredis: %v; install it (apt-get install redis-tools) or set REDIS_CLI", err)
	}
	return p
}

// Cluster is a Redis Cluster of masters without replicas, each a Server,
// created with redis-cli --cluster create.
type Cluster struct {
	Masters []*Server
}

// StartCluster starts masters redis-servers with --cluster-enabled yes,
// joins them into one cluster with every slot assigned, and waits until
// each reports cluster_state:ok. The servers stop when the test ends.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	if masters < 3 {
		t.Fatalf("testredis: a Redis Cluster needs at least 3 masters, not %d", masters)
	}
	cli := lookCLI(t)
	c := &Cluster{}
	for range masters {
		c.Masters = append(c.Masters, Start(t,
			func(c *config) { c.cluster = true },
			WithArgs("--cluster-enabled", "yes", "--cluster-node-timeout", "2000")))
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("testredis: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, m := range c.Masters {
		waitFor(t, time.Minute, fmt.Sprintf("cluster_state:ok on %s", m.Addr()), func() error {
			info, err := command(m.Addr(), "CLUSTER", "INFO")
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("%s", firstLine(info, "cluster_state"))
			}
			return nil
		})
	}
	return c
}

// Addrs returns the masters' addresses, the seeds for a cluster client.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Masters))
	for i, m := range c.Masters {
		out[i] = m.Addr()
	}
	return out
}

// Sentinel is a master, its replica and three sentinels watching them under
// the name MasterName.
type Sentinel struct {
	Master    *Server
	Replica   *Server
	Sentinels []*Server
}

// MasterName is the name the sentinels of StartSentinel monitor.
const MasterName = "netron-master"

// StartSentinel starts a master, a replica of it and three sentinels (quorum
// two, master down after 1 s), and waits until every sentinel knows the
// replica and the other sentinels, so that a failover can happen. Killing
// Master (Server.Kill) then promotes Replica within seconds.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	s := &Sentinel{Master: Start(t)}
	s.Replica = Start(t, WithArgs("--replicaof", "127.0.0.1", strconv.Itoa(s.Master.port)))
	waitFor(t, time.Minute, "the replica in sync", func() error {
		info, err := command(s.Replica.Addr(), "INFO", "replication")
		if err != nil {
			return err
		}
		if !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("%s", firstLine(info, "master_link_status"))
		}
		return nil
	})
	conf := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2\n"+
		"sentinel down-after-milliseconds %[1]s 1000\n"+
		"sentinel failover-timeout %[1]s 10000\n"+
		"sentinel parallel-syncs %[1]s 1\n", MasterName, s.Master.port)
	for range 3 {
		s.Sentinels = append(s.Sentinels, Start(t, func(c *config) { c.sentinel = conf }))
	}
	for _, sen := range s.Sentinels {
		waitFor(t, time.Minute, "sentinel "+sen.Addr()+" to know the replica and the other sentinels", func() error {
			r, err := command(sen.Addr(), "SENTINEL", "REPLICAS", MasterName)
			if err != nil {
				return err
			}
			o, err := command(sen.Addr(), "SENTINEL", "SENTINELS", MasterName)
			if err != nil {
				return err
			}
			if nr, no := countLines(r, "name"), countLines(o, "name"); nr < 1 || no < 2 {
				return fmt.Errorf("%d replicas, %d other sentinels", nr, no)
			}
			return nil
		})
	}
	return s
}

// SentinelAddrs returns the sentinels' addresses.
func (s *Sentinel) SentinelAddrs() []string {
	out := make([]string, len(s.Sentinels))
	for i, sen := range s.Sentinels {
		out[i] = sen.Addr()
	}
	return out
}

// MasterAddr asks the first sentinel that answers for the current master's
// address.
func (s *Sentinel) MasterAddr() (string, error) {
	var lastErr error
	for _, sen := range s.Sentinels {
		if !sen.Running() {
			continue
		}
		out, err := command(sen.Addr(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MasterName)
		if err != nil {
			lastErr = err
			continue
		}
		f := strings.Fields(out)
		if len(f) != 2 {
			lastErr = fmt.Errorf("unexpected reply %q", out)
			continue
		}
		return net.JoinHostPort(f[0], f[1]), nil
	}
	return "", lastErr
}

// waitFor polls check until it returns nil, failing the test after timeout
// (an upper bound: topologies come up in seconds).
func waitFor(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testredis: %s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// countLines counts the lines of text equal to line: in a flattened
// SENTINEL REPLICAS or SENTINELS reply, "name" starts each entry.
func countLines(text, line string) int {
	n := 0
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			n++
		}
	}
	return n
}

func firstLine(text, prefix string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			return strings.TrimSpace(l)
		}
	}
	return "no " + prefix
}

// command sends one command in RESP and returns its reply flattened to
// text: bulk strings and simple values one per line, arrays recursively.
func command(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write(b.Bytes()); err != nil {
		return "", err
	}
	var out strings.Builder
	if err := readReply(bufio.NewReader(c), &out); err != nil {
		return "", err
	}
	return out.String(), nil
}

func readReply(r *bufio.Reader, out *strings.Builder) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return fmt.Errorf("empty reply line")
	}
	switch line[0] {
	case '+', ':':
		out.WriteString(line[1:] + "\n")
	case '-':
		return fmt.Errorf("%s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return err
		}
		if n < 0 {
			out.WriteString("\n")
			return nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		out.Write(buf[:n])
		out.WriteString("\n")
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return err
		}
		for range n {
			if err := readReply(r, out); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}
