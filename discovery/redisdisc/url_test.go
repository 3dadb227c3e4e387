package redisdisc_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/redisdisc"
)

func TestParseURL(t *testing.T) {
	o, err := redisdisc.ParseURL("redis://user:pw@h1:7000/3")
	if err != nil || !slices.Equal(o.Addrs, []string{"h1:7000"}) || o.Username != "user" || o.Password != "pw" || o.DB != 3 || o.TLSConfig != nil {
		t.Fatalf("single: %+v %v", o, err)
	}
	o, err = redisdisc.ParseURL("rediss://h1")
	// No ServerName: each address dialled is checked by its own host.
	if err != nil || !slices.Equal(o.Addrs, []string{"h1:6379"}) || o.TLSConfig == nil || o.TLSConfig.ServerName != "" {
		t.Fatalf("tls: %+v %v", o, err)
	}
	o, err = redisdisc.ParseURL("redis://:pw@h1:7000?addr=h2:7000&addr=h3")
	if err != nil || !slices.Equal(o.Addrs, []string{"h1:7000", "h2:7000", "h3:6379"}) || o.MasterName != "" {
		t.Fatalf("cluster: %+v %v", o, err)
	}
	o, err = redisdisc.ParseURL("redis://h1:7000?cluster=true")
	if err != nil || !o.IsClusterMode {
		t.Fatalf("cluster with one seed: %+v %v", o, err)
	}
	o, err = redisdisc.ParseURL("redis://:master-pw@s1:26379?addr=s2:26379&master_name=mymaster&sentinel_password=spw")
	if err != nil || o.MasterName != "mymaster" || o.Password != "master-pw" || o.SentinelPassword != "spw" || len(o.Addrs) != 2 {
		t.Fatalf("sentinel: %+v %v", o, err)
	}
	for _, bad := range []string{
		"http://h1", "redis://", "redis://h1/x", "redis://h1?bogus=1", "redis://h1?cluster=maybe",
		"redis://h1?master_name=m&cluster=true", "redis://h1?sentinel_password=x",
		"redis://h1:7000/2?addr=h2:7000", "redis://h1?addr=",
	} {
		if _, err := redisdisc.ParseURL(bad); !errors.Is(err, discovery.ErrInvalidOption) {
			t.Errorf("ParseURL(%q): %v, want ErrInvalidOption", bad, err)
		}
	}
	_, err = redisdisc.ParseURL("redis://:secret@h1?bogus=1")
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("error shows the password: %v", err)
	}
}

// go-redis's lines go to the logger at the level given.
func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	l := redisdisc.NewLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), slog.LevelDebug)
	l.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts", 5)
	if got := buf.String(); !strings.Contains(got, "level=DEBUG") || !strings.Contains(got, `msg="connection pool: failed to dial after 5 attempts"`) ||
		!strings.Contains(got, "component=go-redis") {
		t.Errorf("log: %q", got)
	}
	redisdisc.NewLogger(nil, slog.LevelWarn).Printf(context.Background(), "discarded")
}
