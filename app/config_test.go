package app_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netron-go/netron"
	"github.com/netron-go/netron/app"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The seed's configuration, durations in milliseconds.
const seedYAML = `# The seed's shape.
netron:
  id: my-node
  port: 9000
  server: true
  discovery:
    enabled: true
    redis:
      host: redis.example.com
      port: 6379
      password: secret
    interval: 5000 # ms
    ttl: 10000
logger:
  level: debug
shutdownTimeout: 3s
calculator:
  precision: 2
  modes: [fast, exact]
  timeout: 250
`

func TestLoadYAMLSeedShape(t *testing.T) {
	cfg, err := app.Load(writeFile(t, "app.yaml", seedYAML), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := netron.Config{ID: "my-node", Port: 9000, Server: true, Discovery: netron.DiscoveryConfig{
		Enabled:  true,
		Redis:    netron.RedisConfig{Host: "redis.example.com", Port: 6379, Password: "secret"},
		Interval: 5 * time.Second,
		TTL:      10 * time.Second,
	}}
	if cfg.Netron != want {
		t.Errorf("netron =\n%+v\nwant\n%+v", cfg.Netron, want)
	}
	if cfg.Logger.Level != "debug" || cfg.ShutdownTimeout != 3*time.Second {
		t.Errorf("app keys: %+v %v", cfg.Logger, cfg.ShutdownTimeout)
	}
	if got := cfg.Source("netron.discovery.ttl"); !strings.HasSuffix(got, "app.yaml:13") {
		t.Errorf("Source(netron.discovery.ttl) = %q", got)
	}
	var calc struct {
		Precision int
		Modes     []string
		Timeout   time.Duration
	}
	if err := cfg.Section("calculator", &calc); err != nil {
		t.Fatal(err)
	}
	if calc.Precision != 2 || len(calc.Modes) != 2 || calc.Modes[1] != "exact" || calc.Timeout != 250*time.Millisecond {
		t.Errorf("section = %+v", calc)
	}
	if s := cfg.Sections(); len(s) != 1 || s[0] != "calculator" {
		t.Errorf("Sections = %q", s)
	}
}

func TestLoadJSON(t *testing.T) {
	p := writeFile(t, "app.json", `{
	"netron": {
		"id": "json-node",
		"port": 9001,
		"requestTimeout": "2s",
		"keepAliveInterval": 1500,
		"discovery": {"enabled": true, "interval": "1s", "ttl": "3s"}
	}
}`)
	cfg, err := app.Load(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.Netron
	if n.ID != "json-node" || n.Port != 9001 || n.RequestTimeout != 2*time.Second ||
		n.KeepAliveInterval != 1500*time.Millisecond || !n.Discovery.Enabled ||
		n.Discovery.Interval != time.Second || n.Discovery.TTL != 3*time.Second {
		t.Errorf("netron = %+v", n)
	}
	if got := cfg.Source("netron.port"); !strings.HasSuffix(got, "app.json:4") {
		t.Errorf("Source(netron.port) = %q", got)
	}
}

func TestEnvOverridesFile(t *testing.T) {
	p := writeFile(t, "app.yaml", seedYAML)
	cfg, err := app.Load(p, []string{
		"NETRON_PORT=9100",
		"NETRON_ID=from-env",
		"NETRON_DISCOVERY_REDIS_HOST=redis.internal",
		"NETRON_DISCOVERY_REDIS_PASSWORD=a: b # not yaml",
		"NETRON_DISCOVERY_INTERVAL=2s",
		"NETRON_DISCOVERY_TTL=6000",
		"NETRON_REQUEST_TIMEOUT=1500ms",
		"NETRON_MAX_CONCURRENT_REQUESTS=64",
		"NETRON_SERVER=false",
		"NETRON_UNRELATED=ignored",
		"PATH=/bin",
	})
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.Netron
	if n.Port != 9100 || n.ID != "from-env" || n.Server ||
		n.Discovery.Redis.Host != "redis.internal" || n.Discovery.Redis.Password != "a: b # not yaml" ||
		n.Discovery.Redis.Port != 6379 || n.Discovery.Interval != 2*time.Second ||
		n.Discovery.TTL != 6*time.Second || n.RequestTimeout != 1500*time.Millisecond ||
		n.MaxConcurrentRequests != 64 {
		t.Errorf("netron = %+v", n)
	}
	if got := cfg.Source("netron.port"); got != "NETRON_PORT" {
		t.Errorf("Source(netron.port) = %q", got)
	}
	// The environment alone.
	cfg, err = app.Load("", []string{"NETRON_PORT=9200", "NETRON_DISCOVERY_ENABLED=true"})
	if err != nil || cfg.Netron.Port != 9200 || !cfg.Netron.Discovery.Enabled {
		t.Errorf("env only: %+v, %v", cfg, err)
	}
}

func TestBadFieldIsNamed(t *testing.T) {
	for _, tc := range []struct {
		name, file, content string
		env                 []string
		field, source, msg  string
	}{
		{"port range in file", "app.yaml", "netron:\n  id: x\n  port: 70000\n", nil,
			"netron.port", "app.yaml:3", "70000 is not a TCP port"},
		{"port not a number in env", "app.yaml", "netron:\n  port: 9000\n", []string{"NETRON_PORT=abc"},
			"netron.port", "NETRON_PORT", `"abc" is not an integer`},
		{"port range in env", "", "", []string{"NETRON_PORT=-1"},
			"netron.port", "NETRON_PORT", "-1 is not a TCP port"},
		{"unknown key", "app.yaml", "netron:\n  prot: 9000\n", nil,
			"netron.prot", "app.yaml:2", `unknown field (did you mean "port"?)`},
		{"bad duration", "app.yaml", "netron:\n  discovery:\n    interval: 5 parsecs\n", nil,
			"netron.discovery.interval", "app.yaml:3", "is not a duration"},
		{"ttl not above interval", "app.yaml", "netron:\n  discovery:\n    interval: 5000\n    ttl: 5000\n", nil,
			"netron.discovery.ttl", "app.yaml:4", "must be longer than discovery.interval"},
		{"redis port in JSON", "app.json", "{\"netron\": {\"discovery\": {\n\"redis\": {\"port\": \"x\"}}}}", nil,
			"netron.discovery.redis.port", "app.json:2", `"x" is not an integer`},
		{"mapping for a string", "app.yaml", "netron:\n  id: {a: 1}\n", nil,
			"netron.id", "app.yaml:2", "expected a string, found a mapping"},
		{"server not a boolean", "app.yaml", "netron:\n  server: maybe\n", nil,
			"netron.server", "app.yaml:2", "is not a boolean"},
		{"netron not a mapping", "app.yaml", "netron: 9000\n", nil,
			"netron", "app.yaml:1", "expected a mapping"},
		{"logger level", "app.yaml", "logger:\n  level: loud\n", nil,
			"logger.level", "app.yaml:2", `"loud" is not a level`},
		{"negative timeout in env", "", "", []string{"NETRON_REQUEST_TIMEOUT=-5"},
			"netron.requestTimeout", "NETRON_REQUEST_TIMEOUT", "must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = writeFile(t, tc.file, tc.content)
			}
			_, err := app.Load(path, tc.env)
			var ce *app.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Load = %v, want a *ConfigError", err)
			}
			if !errors.Is(err, app.ErrInvalidConfig) {
				t.Error("does not match ErrInvalidConfig")
			}
			if ce.Field != tc.field || !strings.HasSuffix(ce.Source, tc.source) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got field %q source %q:\n  %v\nwant field %q source …%q message …%q", ce.Field, ce.Source, err, tc.field, tc.source, tc.msg)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("the message does not name the field: %v", err)
			}
		})
	}
}

func TestSyntaxErrors(t *testing.T) {
	_, err := app.Load(writeFile(t, "bad.json", "{\n  \"netron\": {\"port\": 9000,}\n}"), nil)
	if !errors.Is(err, app.ErrInvalidConfig) || !strings.Contains(err.Error(), "bad.json: line 2") {
		t.Errorf("JSON: %v", err)
	}
	_, err = app.Load(writeFile(t, "bad.yaml", "netron:\n  port: [9000\n"), nil)
	if !errors.Is(err, app.ErrInvalidConfig) || !strings.Contains(err.Error(), "bad.yaml") {
		t.Errorf("YAML: %v", err)
	}
	_, err = app.Load(filepath.Join(t.TempDir(), "missing.yaml"), nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestFormatSniffing(t *testing.T) {
	cfg, err := app.ParseConfig([]byte(`{"netron": {"port": 9000}}`), "app.conf")
	if err != nil || cfg.Netron.Port != 9000 {
		t.Errorf("JSON without extension: %+v %v", cfg, err)
	}
	cfg, err = app.ParseConfig([]byte("netron: {port: 9001}"), "app.conf")
	if err != nil || cfg.Netron.Port != 9001 {
		t.Errorf("YAML without extension: %+v %v", cfg, err)
	}
	cfg, err = app.ParseConfig(nil, "empty.yaml")
	if err != nil || cfg.Netron != (netron.Config{}) {
		t.Errorf("empty: %+v %v", cfg, err)
	}
}

func TestEnvNames(t *testing.T) {
	for path, want := range map[string]string{
		"netron.id":                    "NETRON_ID",
		"netron.port":                  "NETRON_PORT",
		"netron.discovery.redis.host":  "NETRON_DISCOVERY_REDIS_HOST",
		"netron.requestTimeout":        "NETRON_REQUEST_TIMEOUT",
		"netron.maxConcurrentRequests": "NETRON_MAX_CONCURRENT_REQUESTS",
		"netron.discovery.ttl":         "NETRON_DISCOVERY_TTL",
	} {
		if got := app.EnvName(path); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", path, got, want)
		}
	}
	vars := app.EnvVars()
	found := map[string]bool{}
	for _, v := range vars {
		found[v[0]] = true
	}
	for _, want := range []string{"NETRON_ID", "NETRON_PORT", "NETRON_SERVER", "NETRON_DISCOVERY_ENABLED",
		"NETRON_DISCOVERY_REDIS_HOST", "NETRON_DISCOVERY_REDIS_PORT", "NETRON_DISCOVERY_REDIS_PASSWORD",
		"NETRON_DISCOVERY_INTERVAL", "NETRON_DISCOVERY_TTL"} {
		if !found[want] {
			t.Errorf("EnvVars lacks %s", want)
		}
	}
	if found["NETRON_LOGGER"] {
		t.Error("EnvVars lists the logger")
	}
}

func TestSectionTypes(t *testing.T) {
	cfg, err := app.ParseConfig([]byte(`
mine:
  addr: 10.0.0.1
  key: s3cret
  when: 2024-05-01T10:00:00Z
  limits: {a: 1, b: 2}
  any: [1, two]
  ptr: 5
  unknown: 1
`), "app.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var mine struct {
		Addr   net.IP
		Key    []byte
		When   time.Time
		Limits map[string]int
		Any    any
		Ptr    *int
	}
	err = cfg.Section("mine", &mine)
	if err == nil || err.Error() != "invalid config: mine.unknown (app.yaml:9): unknown field" {
		t.Errorf("unknown key: %v", err)
	}
	if !mine.Addr.Equal(net.IPv4(10, 0, 0, 1)) || string(mine.Key) != "s3cret" || mine.When.Year() != 2024 ||
		mine.Limits["b"] != 2 || mine.Ptr == nil || *mine.Ptr != 5 {
		t.Errorf("decoded %+v", mine)
	}
	if a, ok := mine.Any.([]any); !ok || len(a) != 2 || a[1] != "two" {
		t.Errorf("any = %#v", mine.Any)
	}
	if err := cfg.Section("missing", &mine); err != nil {
		t.Errorf("missing section: %v", err)
	}
	if err := cfg.Section("mine", mine); err == nil {
		t.Error("Section accepted a non-pointer")
	}
}
