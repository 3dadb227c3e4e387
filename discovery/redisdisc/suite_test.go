package redisdisc_test

import (
	"testing"

	"github.com/netron-go/netron/discovery"
	"github.com/netron-go/netron/discovery/discoverytest"
	"github.com/netron-go/netron/discovery/redisdisc"
	"github.com/netron-go/netron/internal/testredis"
)

// TestSuite runs the shared behaviour suite on a real redis-server; every
// case gets its own key prefix on one server.
func TestSuite(t *testing.T) {
	srv := testredis.Start(t)
	client := newClient(t, srv)
	discoverytest.Run(t, func(t *testing.T, cfg discoverytest.Config) discoverytest.Cluster {
		prefix := uniquePrefix(t)
		return discoverytest.Cluster{
			New: func(t *testing.T) discovery.Discovery {
				return newDisc(t, client, prefix,
					redisdisc.WithHeartbeat(cfg.Heartbeat), redisdisc.WithTTL(cfg.TTL))
			},
		}
	})
}

// TestSuitePassword runs the suite against a password-protected server.
func TestSuitePassword(t *testing.T) {
	srv := testredis.Start(t, testredis.WithPassword("n3tr0n-secret"))
	client := newClient(t, srv)
	discoverytest.Run(t, func(t *testing.T, cfg discoverytest.Config) discoverytest.Cluster {
		prefix := uniquePrefix(t)
		return discoverytest.Cluster{
			New: func(t *testing.T) discovery.Discovery {
				return newDisc(t, client, prefix,
					redisdisc.WithHeartbeat(cfg.Heartbeat), redisdisc.WithTTL(cfg.TTL))
			},
		}
	})
}
