// Package testredis starts real Redis servers for tests: on free loopback
// ports, in temporary directories, without persistence, and stops them when
// the test ends. Start starts one server; StartCluster a Redis Cluster of
// masters (created with redis-cli --cluster create); StartSentinel a master,
// its replica and three sentinels.
//
// redis-server is looked up in $REDIS_SERVER (a path), then in PATH, and
// redis-cli in $REDIS_CLI, then in PATH (Debian's redis-server and
// redis-tools packages; sentinels run as redis-server --sentinel). When one
// is missing the test is skipped with a message saying how to install it,
// except under CI=true, where it fails the test: CI must exercise the Redis
// code paths.
package testredis

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Option configures Start.
type Option func(*config)

type config struct {
	password string
	args     []string
	cluster  bool   // a Redis Cluster node: the bus port (port+10000) must be free too
	sentinel string // a sentinel: its config file
	netns    string // run in this network namespace (ip netns exec), bound to host
	host     string
	tls      bool // TLS only, with a certificate of a CA made for the server
}

// InNetns runs the server in the network namespace ns (with ip netns exec,
// so the test needs the rights to enter it), bound to host, an address of
// that namespace. Readiness is checked with redis-cli run in the namespace
// too; Addr returns host:port.
func InNetns(ns, host string) Option {
	return func(c *config) { c.netns, c.host = ns, host }
}

// WithTLS makes the server speak TLS only (tls-port, no plain port), with a
// certificate for 127.0.0.1 and localhost signed by a CA made for it; the
// CA's certificate is in the file CAFile names. Clients need no
// certificate of their own.
func WithTLS() Option {
	return func(c *config) { c.tls = true }
}

// WithPassword makes the server require AUTH with password (requirepass).
func WithPassword(password string) Option {
	return func(c *config) { c.password = password }
}

// WithArgs adds redis-server command-line arguments, for example
// WithArgs("--maxmemory", "10mb").
func WithArgs(args ...string) Option {
	return func(c *config) { c.args = append(c.args, args...) }
}

// Server is a running (or stopped) redis-server owned by one test.
type Server struct {
	bin  string
	dir  string
	port int
	cfg  config

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	runs int
}

// Start starts a redis-server on a free loopback port and registers its
// Stop with t.Cleanup.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	bin, err := lookPath()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("testredis: %v (CI=true: a missing redis-server is a failure)", err)
		}
		t.Skipf("testredis: %v; install it (apt-get install redis-server) or set REDIS_SERVER to run the Redis tests", err)
	}
	s := &Server{bin: bin, dir: t.TempDir()}
	for _, o := range opts {
		o(&s.cfg)
	}
	if s.cfg.tls {
		if err := writeCerts(s.dir); err != nil {
			t.Fatalf("testredis: certificates: %v", err)
		}
	}
	t.Cleanup(s.Stop)
	var lastErr error
	for range 5 { // the free port can be taken between probe and bind
		s.port, err = freePort(s.cfg.cluster)
		if err != nil {
			t.Fatalf("testredis: %v", err)
		}
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("testredis: %v", lastErr)
	return nil
}

func lookPath() (string, error) { return lookTool("redis-server", "REDIS_SERVER") }

// lookTool finds a Redis program: $env (a path), else name in PATH.
func lookTool(name, env string) (string, error) {
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", env, p, err)
		}
		return p, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found in PATH", name)
	}
	return p, nil
}

// freePort returns a free loopback port; with bus, one whose Redis Cluster
// bus port (port+10000) is free too.
func freePort(bus bool) (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if !bus {
			l.Close()
			return port, nil
		}
		if port+10000 > 65535 {
			l.Close()
			continue
		}
		b, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		l.Close()
		if err != nil {
			continue
		}
		b.Close()
		return port, nil
	}
	return 0, errors.New("no free port with a free cluster bus port")
}

// Addr returns the server's "127.0.0.1:port" address (host:port InNetns).
// It stays the same across Restart.
func (s *Server) Addr() string { return net.JoinHostPort(s.host(), strconv.Itoa(s.port)) }

func (s *Server) host() string {
	if s.cfg.host != "" {
		return s.cfg.host
	}
	return "127.0.0.1"
}

// Password returns the password given WithPassword, or "".
func (s *Server) Password() string { return s.cfg.password }

// LogFile returns the path of the server's log file.
func (s *Server) LogFile() string { return filepath.Join(s.dir, "redis.log") }

// Restart stops the server if it is running and starts it again on the same
// port. The data is lost (there is no persistence), as after a crash of a
// Redis without AOF or RDB.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	var err error
	for range 50 { // the port may linger briefly after the old process exits
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("testredis: restart on port %d: %v", s.port, err)
}

// CAFile returns the path of the PEM certificate of the CA that signed the
// server's certificate (WithTLS), or "".
func (s *Server) CAFile() string {
	if !s.cfg.tls {
		return ""
	}
	return filepath.Join(s.dir, "ca.pem")
}

// Freeze stops the server process (SIGSTOP): it keeps its connections and
// its port, and answers nothing, like a host that hangs or a network that
// drops every packet, until Thaw. Stop and Kill thaw it first.
func (s *Server) Freeze() { s.signal(syscall.SIGSTOP) }

// Thaw lets a frozen server run again (SIGCONT).
func (s *Server) Thaw() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

// Stop stops the server and waits for it to exit. It is idempotent, and the
// server can be started again with Restart.
func (s *Server) Stop() { s.stop(syscall.SIGTERM) }

// Kill kills the server (SIGKILL), as a crash of its host would, and waits
// for it to exit. It can be started again with Restart.
func (s *Server) Kill() { s.stop(syscall.SIGKILL) }

func (s *Server) stop(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	_ = cmd.Process.Signal(syscall.SIGCONT) // a frozen server handles its signal
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		_ = cmd.Process.Kill()
		<-done
	}
}

// Running reports whether the server process is running.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("already running")
	}
	var args []string
	if s.cfg.sentinel != "" {
		conf := filepath.Join(s.dir, "sentinel.conf")
		if _, err := os.Stat(conf); err != nil { // kept across restarts: sentinel rewrites it
			if err := os.WriteFile(conf, []byte(s.cfg.sentinel), 0o600); err != nil {
				return err
			}
		}
		args = append(args, conf, "--sentinel")
	}
	if s.cfg.tls {
		args = append(args, "--port", "0", "--tls-port", strconv.Itoa(s.port),
			"--tls-cert-file", filepath.Join(s.dir, "server.pem"),
			"--tls-key-file", filepath.Join(s.dir, "server-key.pem"),
			"--tls-ca-cert-file", filepath.Join(s.dir, "ca.pem"),
			"--tls-auth-clients", "no")
	} else {
		args = append(args, "--port", strconv.Itoa(s.port))
	}
	args = append(args,
		"--bind", s.host(),
		"--dir", s.dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--logfile", s.LogFile(),
		"--loglevel", "notice",
	)
	if s.cfg.sentinel == "" {
		args = append(args, "--databases", "1")
	}
	if s.cfg.netns != "" {
		// Bound to the namespace's address, reachable only from the
		// namespaces of the test.
		args = append(args, "--protected-mode", "no")
	}
	if s.cfg.password != "" {
		args = append(args, "--requirepass", s.cfg.password)
	}
	args = append(args, s.cfg.args...)
	cmd := exec.Command(s.bin, args...)
	if s.cfg.netns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", s.cfg.netns, s.bin}, args...)...)
	}
	cmd.Dir = s.dir
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.runs++

	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.ping()
		if err == nil {
			s.cmd, s.done = cmd, done
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server exited on port %d: %v\n%s", s.port, err, s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server not ready on port %d: %v\n%s", s.port, err, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping sends (AUTH and) PING in RESP over a fresh connection.
func (s *Server) ping() error {
	if s.cfg.netns != "" {
		return s.pingNetns()
	}
	c, err := s.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	r := bufio.NewReader(c)
	if s.cfg.password != "" {
		if _, err := fmt.Fprintf(c, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(s.cfg.password), s.cfg.password); err != nil {
			return err
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "+OK") {
			return fmt.Errorf("AUTH: %q", strings.TrimSpace(line))
		}
	}
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING: %q", strings.TrimSpace(line))
	}
	return nil
}

// pingNetns runs redis-cli PING inside the server's namespace.
func (s *Server) pingNetns() error {
	cli, err := lookTool("redis-cli", "REDIS_CLI")
	if err != nil {
		return err
	}
	args := []string{"netns", "exec", s.cfg.netns, cli, "-h", s.host(), "-p", strconv.Itoa(s.port)}
	if s.cfg.password != "" {
		args = append(args, "--no-auth-warning", "-a", s.cfg.password)
	}
	out, err := exec.Command("ip", append(args, "PING")...).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "PONG" {
		return fmt.Errorf("redis-cli PING: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(s.LogFile())
	if err != nil {
		return "(no log)"
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
