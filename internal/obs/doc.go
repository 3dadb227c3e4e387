// Package obs is what the engines of a node report to when the user asked
// for observability (netron.Config.Metrics, netron.Config.TracerProvider):
// Prometheus metrics (Metrics, a prometheus.Collector), OpenTelemetry spans
// (Tracer) and the W3C trace context carried between Go peers
// (AppendTraceparent, ParseTraceparent).
//
// A nil *Metrics is valid and records nothing; a nil *Observer or Tracer
// is checked by the engine. Either way an engine holds a pointer and pays
// one nil check per event when observability is off. What a node counts
// anyway (its connections, its bus's drops, its discovery's state) is read
// when the metrics are scraped, through a Source. Label values come from
// bounded sets (Names, codes): a peer cannot grow the number of series by
// sending names.
package obs

// Observer is what an engine holds: the metrics and the tracer of its
// node, either of which may be nil. A nil *Observer observes nothing.
type Observer struct {
	Metrics *Metrics
	Tracer  *Tracer
}

// New returns an Observer of m and t, or nil when both are nil.
func New(m *Metrics, t *Tracer) *Observer {
	if m == nil && t == nil {
		return nil
	}
	return &Observer{Metrics: m, Tracer: t}
}
