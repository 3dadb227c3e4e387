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

// Closing a backend the node made that cannot reach Redis is logged, not
// returned, also when the error joins one error per node (as redisdisc's
// CloseContext does): errors.Is finds ErrUnavailable in a joined error.
// Any other error is returned.
func TestDiscoveryCloseUnavailableIsLogged(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name    string
		err     error
		wantErr error // returned; nil: none
	}{
		{"one per node", errors.Join(fmt.Errorf("%w: deregister a: %w", discovery.ErrUnavailable, boom), fmt.Errorf("%w: deregister b", discovery.ErrUnavailable)), nil},
		{"deadline", fmt.Errorf("closing: %w", context.DeadlineExceeded), nil},
		{"other", boom, boom},
	} {
		var logs bytes.Buffer
		n := &Node{cfg: Config{ID: "n"}, logger: slog.New(slog.NewTextHandler(&logs, nil))}
		nd := &nodeDiscovery{n: n, d: closeErrBackend{err: tc.err}, owned: true, stop: func() {}}
		err := nd.close(context.Background())
		logged := strings.Contains(logs.String(), "could not close discovery cleanly")
		switch {
		case tc.wantErr == nil && (err != nil || !logged):
			t.Errorf("%s: close = %v, logged %v; want nil, logged", tc.name, err, logged)
		case tc.wantErr != nil && (!errors.Is(err, tc.wantErr) || logged):
			t.Errorf("%s: close = %v, logged %v; want %v, not logged", tc.name, err, logged, tc.wantErr)
		}
	}
}
