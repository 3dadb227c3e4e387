package rpccore

import (
	"context"
	"errors"
	"fmt"
	"github.com/netron-go/netron/rpc"

	"github.com/Masterminds/semver/v3"

	"github.com/netron-go/netron/internal/transport"
)

// rangeFallback resolves a version range on a peer that does not: a Titan
// node's query_interface accepts only "name@x.y.z" exactly or a bare name
// (its highest version), and answers a range with 404. When err is that
// answer to spec, a range, from a plain Netron peer (no Go extensions),
// it asks for the bare name and keeps the answer if its version satisfies
// the range; otherwise it fails with rpc.ErrServiceNotFound naming the
// version the peer has. ok is false when err is not such an answer.
func (c *Client) rangeFallback(ctx context.Context, conn *transport.Conn, spec string, err error) (svc *rpc.Service, ok bool, _ error) {
	var re *rpc.Error
	if !errors.As(err, &re) || !errors.Is(err, rpc.ErrServiceNotFound) || re.Details["serviceName"] != spec || conn.Extensions().Version > 0 {
		return nil, false, nil
	}
	sp, perr := parseSpec(spec)
	if perr != nil || sp.rng == nil {
		return nil, false, nil // a bare name or an exact version: nothing to resolve
	}
	bare, berr := c.QueryInterface(ctx, conn, sp.name)
	if berr != nil {
		return nil, true, err // the service is not there at all: the first answer says so
	}
	v, verr := semver.NewVersion(bare.Version())
	if verr == nil && sp.rng.Check(v) {
		return bare, true, nil
	}
	return nil, true, &rpc.Error{Code: 404, Name: "TitanError",
		Message:   fmt.Sprintf("Service '%s' not found: the peer offers %s (a Titan peer reports only the highest version of a service)", spec, bare.QualifiedName()),
		Details:   map[string]any{"serviceName": spec},
		Available: []string{bare.Version()},
	}
}
