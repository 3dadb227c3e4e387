package discovery_test

import (
	"errors"
	"testing"

	"github.com/netron-go/netron/discovery"
)

func TestMatchVersion(t *testing.T) {
	for _, tc := range []struct {
		version, rng string
		want         bool
	}{
		{"1.2.3", "1.2.3", true},
		{"1.2.4", "1.2.3", false},
		{"1.2.3", "=1.2.3", true},
		{"1.2.3", "v1.2.3", true},
		{"v1.2.3", "1.2.3", true},
		{"1.9.0", "^1", true},
		{"2.0.0", "^1", false},
		{"0.9.0", "^1", false},
		{"1.2.0", "~1.2", true},
		{"1.2.9", "~1.2", true},
		{"1.3.0", "~1.2", false},
		{"1.0.0", ">=1.0 <2", true},
		{"1.99.1", ">=1.0 <2", true},
		{"2.0.0", ">=1.0 <2", false},
		{"1.5.0", ">=1.0, <2", true},
		{"3.1.0", "^1 || ^3", true},
		{"2.1.0", "^1 || ^3", false},
		{"7.0.0", "", true},
		{"7.0.0", "*", true},
		{"7.0.0", "latest", true},
		{"1.0.0-rc.1", "", true},
		{"1.0.0-rc.1", "^1", false},
		{"1.0.0-rc.2", "^1.0.0-rc.1", true},
		{"1.2", "1.2.0", true},
	} {
		got, err := discovery.MatchVersion(tc.version, tc.rng)
		if err != nil {
			t.Errorf("MatchVersion(%q, %q): %v", tc.version, tc.rng, err)
			continue
		}
		if got != tc.want {
			t.Errorf("MatchVersion(%q, %q) = %v, want %v", tc.version, tc.rng, got, tc.want)
		}
	}
}

func TestMatchVersionErrors(t *testing.T) {
	for _, rng := range []string{"not a range", ">>1", "^", "1.2.3.4.5"} {
		if _, err := discovery.MatchVersion("1.0.0", rng); !errors.Is(err, discovery.ErrInvalidRange) {
			t.Errorf("MatchVersion(1.0.0, %q): err = %v, want ErrInvalidRange", rng, err)
		}
	}
	for _, v := range []string{"", "one", "1.x", "1.0.0-", "1..2"} {
		if _, err := discovery.MatchVersion(v, ""); !errors.Is(err, discovery.ErrInvalidVersion) {
			t.Errorf("MatchVersion(%q, \"\"): err = %v, want ErrInvalidVersion", v, err)
		}
	}
}

func TestValidateNode(t *testing.T) {
	long := make([]byte, discovery.MaxIDLen+1)
	for i := range long {
		long[i] = 'x'
	}
	for _, tc := range []struct {
		name string
		n    discovery.NodeInfo
		want error
	}{
		{"ok", discovery.NodeInfo{ID: "n", Services: []discovery.ServiceInfo{{"a", "1.0.0"}}}, nil},
		{"empty id", discovery.NodeInfo{}, discovery.ErrInvalidNode},
		{"long id", discovery.NodeInfo{ID: string(long)}, discovery.ErrInvalidNode},
		{"bad utf8", discovery.NodeInfo{ID: "\xff"}, discovery.ErrInvalidNode},
		{"empty metadata key", discovery.NodeInfo{ID: "n", Metadata: map[string]string{"": "v"}}, discovery.ErrInvalidNode},
		{"bad version", discovery.NodeInfo{ID: "n", Services: []discovery.ServiceInfo{{"a", "x"}}}, discovery.ErrInvalidVersion},
	} {
		err := discovery.ValidateNode(tc.n)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: ValidateNode = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestEventKindString(t *testing.T) {
	for k, want := range map[discovery.EventKind]string{
		discovery.NodeJoined: "joined", discovery.NodeUpdated: "updated",
		discovery.NodeLeft: "left", 0: "EventKind(0)",
	} {
		if got := k.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(k), got, want)
		}
	}
}
