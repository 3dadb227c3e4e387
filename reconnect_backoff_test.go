package netron

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/netron-go/netron/peer"
)

func TestReconnectBackoffGrowsAndResets(t *testing.T) {
	const ms = time.Millisecond
	pol := ReconnectConfig{BaseDelay: 20 * ms, MaxDelay: 200 * ms, Jitter: -1}.policy()
	b := backoff{pol: pol}
	next := func() time.Duration {
		t.Helper()
		d, ok := b.next()
		if !ok {
			t.Fatal("attempts spent")
		}
		return d
	}
	for i, want := range []time.Duration{20 * ms, 40 * ms, 80 * ms, 160 * ms, 200 * ms, 200 * ms} {
		if d := next(); d != want {
			t.Fatalf("attempt %d: delay %v, want %v", i, d, want)
		}
	}
	// A connection that dropped at once continues the backoff.
	b.lost(5 * ms)
	if d := next(); d != 200*ms {
		t.Fatalf("after a short connection: %v, want the cap", d)
	}
	// A good connection (up for the base delay) resets it.
	b.lost(20 * ms)
	if d := next(); d != 20*ms {
		t.Fatalf("after a good connection: %v, want the base delay", d)
	}

	// No overflow however many attempts.
	b.attempt = 200
	if d := next(); d != 200*ms {
		t.Fatalf("attempt 200: %v", d)
	}
}

func TestReconnectBackoffJitter(t *testing.T) {
	const ms = time.Millisecond
	r := 0.5
	pol := ReconnectConfig{BaseDelay: 100 * ms, MaxDelay: time.Second, Jitter: 0.2}.policy()
	pol.rand = func() float64 { return r }
	if d := pol.delay(0); d != 90*ms { // 100 less 0.2·0.5 of it
		t.Fatalf("jittered delay %v", d)
	}
	r = 0.999999
	if d := pol.delay(10); d <= 800*ms || d > time.Second {
		t.Fatalf("jittered capped delay %v: outside (0.8 s, 1 s]", d)
	}
	r = 0
	if d := pol.delay(3); d != 800*ms {
		t.Fatalf("delay %v", d)
	}
}

func TestReconnectPolicyDefaults(t *testing.T) {
	pol := ReconnectConfig{}.policy()
	if pol.base != time.Second || pol.max != 30*time.Second || pol.maxAttempts != 0 || pol.jitter != 0.2 {
		t.Fatalf("defaults %+v", pol)
	}
	if pol := (ReconnectConfig{BaseDelay: time.Minute}).policy(); pol.max != time.Minute {
		t.Fatalf("a base delay over the default cap: cap %v", pol.max)
	}
	b := backoff{pol: ReconnectConfig{MaxAttempts: 2}.policy()}
	b.next()
	b.next()
	if _, ok := b.next(); ok {
		t.Fatal("a third attempt with MaxAttempts 2")
	}
	b.lost(time.Hour)
	if _, ok := b.next(); !ok {
		t.Fatal("no attempt after a good connection")
	}
}

func TestReconnectConfigValidate(t *testing.T) {
	for field, rc := range map[string]ReconnectConfig{
		"reconnect.baseDelay":   {BaseDelay: -1},
		"reconnect.maxDelay":    {BaseDelay: time.Second, MaxDelay: time.Millisecond},
		"reconnect.maxAttempts": {MaxAttempts: -1},
		"reconnect.jitter":      {Jitter: 1.5},
	} {
		cfg := Config{Reconnect: rc}
		err := cfg.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v", field, err)
		}
	}
}

func TestErrReconnectingMatchesDisconnected(t *testing.T) {
	if !errors.Is(ErrReconnecting, ErrPeerDisconnected) || !errors.Is(ErrReconnecting, peer.ErrDisconnected) {
		t.Fatal("ErrReconnecting does not match ErrPeerDisconnected")
	}
	if errors.Is(ErrPeerDisconnected, ErrReconnecting) {
		t.Fatal("ErrPeerDisconnected matches ErrReconnecting")
	}
}
