package netron

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/netron-go/netron/internal/obs"
)

// Metrics are the Prometheus metrics of a node: calls by service and
// method on both sides, refusals, connections, streams, events and
// discovery (docs/observability.md lists them). It is a
// prometheus.Collector: register it in a registry of yours and give it to
// the node in Config.Metrics.
//
//	m := netron.NewMetrics(netron.MetricsOptions{})
//	prometheus.MustRegister(m)
//	n, err := netron.New(netron.Config{Metrics: m})
//
// Several nodes may share one Metrics: their series add up. Label values
// are bounded: past MetricsOptions.MaxNames distinct names, further
// service, method, event and topic names count as "other".
type Metrics struct{ m *obs.Metrics }

// MetricsOptions configure NewMetrics.
type MetricsOptions struct {
	// ConstLabels are put on every series, e.g. {"node": "a"}.
	ConstLabels prometheus.Labels
	// MaxNames bounds the distinct names that label series (service and
	// method pairs, events, topics); later ones count as "other". Default
	// 256.
	MaxNames int
}

// NewMetrics returns the metrics of a node, all at zero.
func NewMetrics(opts MetricsOptions) *Metrics {
	return &Metrics{m: obs.NewMetrics(opts.ConstLabels, opts.MaxNames)}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) { m.m.Describe(ch) }

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) { m.m.Collect(ch) }

func (m *Metrics) inner() *obs.Metrics {
	if m == nil {
		return nil
	}
	return m.m
}

// connsNow lists the node's connections for the connections gauge.
func (n *Node) connsNow() []obs.Conn {
	peers := n.Peers()
	out := make([]obs.Conn, 0, len(peers))
	for _, p := range peers {
		out = append(out, obs.Conn{Inbound: p.Accepted(), Go: p.IsGo()})
	}
	return out
}
