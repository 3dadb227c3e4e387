package netron_test

import (
	"flag"

	"github.com/netron-go/netron"
)

// benchMetrics turns the metrics on in the nodes of the RPC benchmarks,
// so that one test binary measures both (see docs/benchmarks.md):
//
//	go test -c -o netron.test . && ./netron.test -test.run='^$' -test.bench=RPCSequential -netron.metrics
var benchMetrics = flag.Bool("netron.metrics", false, "benchmarks: give the nodes metrics (netron.Config.Metrics)")

// benchConfig is nodeConfig with the metrics of -netron.metrics.
func benchConfig(id string, server bool) netron.Config {
	cfg := nodeConfig(id, server)
	if *benchMetrics {
		cfg.Metrics = netron.NewMetrics(netron.MetricsOptions{})
	}
	return cfg
}
