package netron_test

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/netron-go/netron"
)

// A node with metrics and traces (docs/observability.md): the metrics
// are a prometheus.Collector registered like any other.
func ExampleNewMetrics() {
	tp := sdktrace.NewTracerProvider() // any OpenTelemetry TracerProvider
	defer tp.Shutdown(context.Background())
	m := netron.NewMetrics(netron.MetricsOptions{})
	prometheus.MustRegister(m) // or a registry of yours
	n, err := netron.New(netron.Config{ID: "a", Metrics: m, TracerProvider: tp})
	if err != nil {
		panic(err)
	}
	defer prometheus.Unregister(m)
	defer n.Close()
	if err := n.Emit(context.Background(), "greeting", "hi"); err != nil {
		panic(err)
	}
	families, _ := prometheus.DefaultGatherer.Gather()
	for _, f := range families {
		if f.GetName() == "netron_events_emitted_total" {
			fmt.Println(f.GetName(), f.GetMetric()[0].GetCounter().GetValue())
		}
	}
	// Output: netron_events_emitted_total 1
}
