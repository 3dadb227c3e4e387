package netron

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/netron-go/netron/discovery"
)

// closeErrBackend is a discovery backend whose close fails with err.
type closeErrBackend struct {
	discovery.Discovery
	err error
}

func (closeErrBackend) Deregister(context.Context, string) error { return nil }
func (b closeErrBackend) CloseContext(context.Context) error     { return b.err }

// A joined error from a backend's close is judged part by part: the
// parts that say the backend is unreachable are logged, the others
// returned; errors.Is finds each in its place.
func TestDiscoveryCloseJudgesEachJoinedError(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name    string
		err     error
		wantErr error // returned; nil: none
		logged  bool
	}{
		{"unavailable only", errors.Join(fmt.Errorf("%w: deregister a", discovery.ErrUnavailable), fmt.Errorf("%w: deregister b", discovery.ErrUnavailable)), nil, true},
		{"mixed", errors.Join(fmt.Errorf("%w: deregister a", discovery.ErrUnavailable), boom), boom, true},
		{"nested", errors.Join(errors.Join(boom), context.DeadlineExceeded), boom, true},
		{"other only", boom, boom, false},
	} {
		var logs bytes.Buffer
		n := &Node{cfg: Config{ID: "n"}, logger: slog.New(slog.NewTextHandler(&logs, nil))}
		nd := &nodeDiscovery{n: n, d: closeErrBackend{err: tc.err}, owned: true, stop: func() {}}
		err := nd.close(context.Background())
		switch {
		case tc.wantErr == nil && err != nil:
			t.Errorf("%s: close = %v, want nil", tc.name, err)
		case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
			t.Errorf("%s: close = %v, want %v", tc.name, err, tc.wantErr)
		case errors.Is(err, discovery.ErrUnavailable):
			t.Errorf("%s: close = %v: an unreachable backend is logged, not returned", tc.name, err)
		}
		if got := strings.Contains(logs.String(), "could not close discovery cleanly"); got != tc.logged {
			t.Errorf("%s: logged %v, want %v:\n%s", tc.name, got, tc.logged, logs.String())
		}
	}
}
