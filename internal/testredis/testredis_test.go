package testredis

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// do sends one inline command and returns the first reply line.
func do(t *testing.T, addr, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "dial: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "%s\r\n", cmd)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "read: " + err.Error()
	}
	return strings.TrimSpace(line)
}

func TestStartRestartStop(t *testing.T) {
	s := Start(t)
	if got := do(t, s.Addr(), "SET k v"); got != "+OK" {
		t.Fatalf("SET = %q", got)
	}
	addr := s.Addr()
	s.Restart(t)
	if s.Addr() != addr {
		t.Fatalf("Restart moved the server from %s to %s", addr, s.Addr())
	}
	if got := do(t, s.Addr(), "EXISTS k"); got != ":0" {
		t.Fatalf("data survived a restart: EXISTS = %q", got)
	}
	s.Stop()
	s.Stop()
	if s.Running() {
		t.Fatal("Running after Stop")
	}
	if got := do(t, s.Addr(), "PING"); !strings.HasPrefix(got, "dial:") {
		t.Fatalf("server still answers after Stop: %q", got)
	}
	s.Restart(t)
	if got := do(t, s.Addr(), "PING"); got != "+PONG" {
		t.Fatalf("PING after Restart of a stopped server = %q", got)
	}
}

func TestPassword(t *testing.T) {
	s := Start(t, WithPassword("s3cret"))
	if s.Password() != "s3cret" {
		t.Fatal("Password()")
	}
	if got := do(t, s.Addr(), "PING"); !strings.HasPrefix(got, "-NOAUTH") {
		t.Fatalf("PING without AUTH = %q, want NOAUTH", got)
	}
}

func TestTwoServers(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Addr() == b.Addr() {
		t.Fatal("two servers on one address")
	}
}

func TestCluster(t *testing.T) {
	c := StartCluster(t, 3)
	if len(c.Addrs()) != 3 {
		t.Fatalf("addrs %v", c.Addrs())
	}
	info, err := command(c.Masters[0].Addr(), "CLUSTER", "INFO")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info, "cluster_known_nodes:3") || !strings.Contains(info, "cluster_slots_assigned:16384") {
		t.Fatalf("CLUSTER INFO:\n%s", info)
	}
}

func TestSentinelFailover(t *testing.T) {
	s := StartSentinel(t)
	addr, err := s.MasterAddr()
	if err != nil || addr != s.Master.Addr() {
		t.Fatalf("master %q, %v; want %s", addr, err, s.Master.Addr())
	}
	s.Master.Kill()
	waitFor(t, time.Minute, "the replica promoted", func() error {
		addr, err := s.MasterAddr()
		if err != nil {
			return err
		}
		if addr != s.Replica.Addr() {
			return fmt.Errorf("master is %s", addr)
		}
		return nil
	})
	if got := do(t, s.Replica.Addr(), "SET k v"); got != "+OK" {
		t.Fatalf("SET on the promoted replica = %q", got)
	}
}

// WithTLS: the server speaks only TLS, with a certificate of its CA.
func TestTLS(t *testing.T) {
	s := Start(t, WithTLS())
	c, err := s.dial()
	if err != nil {
		t.Fatalf("TLS dial with the CA: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "PING\r\n")
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || strings.TrimSpace(line) != "+PONG" {
		t.Fatalf("PING over TLS: %q %v", line, err)
	}
	if got := do(t, s.Addr(), "PING"); got == "+PONG" {
		t.Fatal("the server answered in plain text")
	}
	if s.CAFile() == "" || Start(t).CAFile() != "" {
		t.Fatal("CAFile")
	}
}

// Freeze keeps the connection open and answers nothing until Thaw.
func TestFreeze(t *testing.T) {
	s := Start(t)
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	s.Freeze()
	fmt.Fprintf(c, "PING\r\n")
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("a frozen server answered")
	}
	s.Thaw()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || strings.TrimSpace(line) != "+PONG" {
		t.Fatalf("after Thaw: %q %v", line, err)
	}
	s.Freeze() // Stop, at cleanup, must still work
}
