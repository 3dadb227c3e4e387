package obs

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	_ "unsafe" // for go:linkname

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Side says which end of a call a metric counts.
type Side int

// The sides of a call.
const (
	Client Side = iota // this node called
	Server             // this node handled
)

func (s Side) String() string {
	if s == Server {
		return "server"
	}
	return "client"
}

// Other is the label value that stands for every name past the bound of a
// label (see Names).
const Other = "other"

// DefaultMaxNames bounds the distinct service and method names (together)
// and event and topic names that label series; later names count as Other.
const DefaultMaxNames = 256

// Names hands out label values from a bounded set: the first max distinct
// names keep their value, later ones become Other. The names a node
// exposes are known and few; the names of peers' services and events come
// from the peers, and are bounded here.
type Names struct {
	mu  sync.Mutex
	set map[string]struct{}
	max int
}

// NewNames returns a set that keeps max names.
func NewNames(max int) *Names { return &Names{set: make(map[string]struct{}), max: max} }

// Of returns the label value of name.
func (n *Names) Of(name string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.set[name]; ok {
		return name
	}
	if len(n.set) >= n.max {
		return Other
	}
	n.set[name] = struct{}{}
	return name
}

// Metrics holds the metric families of one node. It is a
// prometheus.Collector. A nil *Metrics records nothing.
type Metrics struct {
	names *Names

	rpcStarted  *prometheus.CounterVec
	rpcHandled  *prometheus.CounterVec
	rpcDuration *prometheus.HistogramVec
	rpcInFlight *prometheus.GaugeVec
	rpcReqBytes *prometheus.CounterVec
	rpcResBytes *prometheus.CounterVec
	refused     *prometheus.CounterVec

	connOpened    *prometheus.CounterVec
	connClosed    *prometheus.CounterVec
	connsDesc     *prometheus.Desc
	sources       sync.Map // *Source → struct{}
	handshakeFail *prometheus.CounterVec
	authRefused   prometheus.Counter

	streamOpened *prometheus.CounterVec
	streamClosed *prometheus.CounterVec
	streamFailed *prometheus.CounterVec
	chunks       *prometheus.CounterVec
	chunkBytes   *prometheus.CounterVec
	creditStalls prometheus.Counter
	chunkN       [2]prometheus.Counter // stream_chunks_total of out and in, looked up once
	chunkB       [2]prometheus.Counter // stream_bytes_total of out and in

	eventsEmitted   *prometheus.CounterVec
	eventsDelivered *prometheus.CounterVec
	eventsDropped   *prometheus.CounterVec

	busDroppedDesc *prometheus.Desc

	discAnnouncements *prometheus.CounterVec
	discMembersDesc   *prometheus.Desc
	discErrorsDesc    *prometheus.Desc
	discReconnDesc    *prometheus.Desc
	discResyncsDesc   *prometheus.Desc

	all []prometheus.Collector

	calls sync.Map // callKey → *CallMetrics
}

// NewMetrics returns the metric families, with constLabels on every
// series (nil: none) and at most maxNames names per label (0: the
// default).
func NewMetrics(constLabels prometheus.Labels, maxNames int) *Metrics {
	if maxNames <= 0 {
		maxNames = DefaultMaxNames
	}
	m := &Metrics{names: NewNames(maxNames)}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "netron", Name: name, Help: help, ConstLabels: constLabels}, labels)
		m.all = append(m.all, v)
		return v
	}
	one := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "netron", Name: name, Help: help, ConstLabels: constLabels})
		m.all = append(m.all, c)
		return c
	}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "netron", Name: name, Help: help, ConstLabels: constLabels}, labels)
		m.all = append(m.all, v)
		return v
	}
	call := []string{"side", "service", "method"}
	m.rpcStarted = counter("rpc_started_total", "Calls started, by side (client: this node called; server: this node handled), service and method.", call...)
	m.rpcHandled = counter("rpc_handled_total", "Calls finished, by side, service, method and code (ok, an error code such as 404, or canceled, deadline, disconnected, error).", append(call, "code")...)
	m.rpcDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "netron", Name: "rpc_duration_seconds",
		Help:        "Time from the start of a call to its end, by side, service and method.",
		ConstLabels: constLabels, Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}, call)
	m.all = append(m.all, m.rpcDuration)
	m.rpcInFlight = gauge("rpc_in_flight", "Calls running, by side, service and method.", call...)
	m.rpcReqBytes = counter("rpc_request_bytes_total", "Bytes of call requests (the packet), by side, service and method.", call...)
	m.rpcResBytes = counter("rpc_response_bytes_total", "Bytes of call responses (the packet), by side, service and method.", call...)
	m.refused = counter("refused_total", "Requests refused by a limit before they ran, by code (429, 503) and limit (peer, node, memory, stopping).", "code", "limit")

	m.connOpened = counter("connections_opened_total", "Connections established, by direction (inbound: the peer dialled this node; outbound).", "direction")
	m.connClosed = counter("connections_closed_total", "Connections closed, by direction.", "direction")
	m.connsDesc = prometheus.NewDesc("netron_connections", "Peers connected, by direction and peer kind (go, or netron: a plain Netron peer), counted when scraped.", []string{"direction", "kind"}, constLabels)
	m.handshakeFail = counter("handshake_failures_total", "Connections that failed before their handshake completed, by direction (inbound: a peer dialled this node; outbound: this node dialled).", "direction")
	m.handshakeFail.WithLabelValues("inbound") // both series from the start, at 0
	m.handshakeFail.WithLabelValues("outbound")
	m.authRefused = one("auth_refusals_total", "Peers refused by the authenticator.")

	m.streamOpened = counter("streams_opened_total", "Streams opened, by direction (in: this node reads, out: this node writes).", "direction")
	m.streamClosed = counter("streams_closed_total", "Streams that ended normally, by direction.", "direction")
	m.streamFailed = counter("streams_failed_total", "Streams that ended with an error, by direction.", "direction")
	m.chunks = counter("stream_chunks_total", "Stream chunks, by direction.", "direction")
	m.chunkBytes = counter("stream_bytes_total", "Bytes of stream chunks (the packet), by direction.", "direction")
	m.chunkN = [2]prometheus.Counter{m.chunks.WithLabelValues("out"), m.chunks.WithLabelValues("in")}
	m.chunkB = [2]prometheus.Counter{m.chunkBytes.WithLabelValues("out"), m.chunkBytes.WithLabelValues("in")}
	m.creditStalls = one("stream_credit_stalls_total", "Times a stream writer waited for credit from its reader.")

	m.eventsEmitted = counter("events_emitted_total", "Events emitted by this node, by event.", "event")
	m.eventsDelivered = counter("events_delivered_total", "Events put in the queue of a subscription, by subscription (the name or pattern it subscribed to) and to (local: a subscription of this node; peer: one a peer made, whose events this node forwards).", "subscription", "to")
	m.eventsDropped = counter("events_dropped_total", "Events a subscription's queue discarded (its slow-consumer policy), by subscription and to.", "subscription", "to")
	m.busDroppedDesc = prometheus.NewDesc("netron_bus_dropped_total", "Messages the subscriptions of a topic of the node's bus dropped, by topic (the per-subscription topics of events count as netron.events.sub.*), counted when scraped.", []string{"topic"}, constLabels)

	m.discAnnouncements = counter("discovery_announcements_total", "Membership changes this node learned from discovery, by kind (joined, updated, left; missed: changes a resync replaced).", "kind")
	m.discMembersDesc = prometheus.NewDesc("netron_discovery_members", "Other nodes discovery lists, counted when scraped.", nil, constLabels)
	m.discErrorsDesc = prometheus.NewDesc("netron_discovery_redis_errors_total", "Failed Redis operations of the discovery's background loop (redisdisc.Discovery.Errors), counted when scraped.", nil, constLabels)
	m.discReconnDesc = prometheus.NewDesc("netron_discovery_redis_reconnects_total", "Times Redis answered discovery again after failures (redisdisc.Discovery.Reconnects), counted when scraped.", nil, constLabels)
	m.discResyncsDesc = prometheus.NewDesc("netron_discovery_redis_resyncs_total", "Times discovery re-read the whole membership (redisdisc.Discovery.Resyncs), counted when scraped.", nil, constLabels)
	return m
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.all {
		c.Describe(ch)
	}
	ch <- m.connsDesc
	ch <- m.busDroppedDesc
	ch <- m.discMembersDesc
	ch <- m.discErrorsDesc
	ch <- m.discReconnDesc
	ch <- m.discResyncsDesc
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.all {
		c.Collect(ch)
	}
	var (
		n        [2][2]int // [inbound][go]
		drops    = map[string]uint64{}
		disc     DiscoveryStats
		anyDisc  bool
		anyRedis bool
	)
	m.sources.Range(func(k, _ any) bool {
		src := k.(*Source)
		if src.Conns != nil {
			for _, c := range src.Conns() {
				n[b2i(c.Inbound)][b2i(c.Go)]++
			}
		}
		if src.BusDrops != nil {
			for topic, d := range src.BusDrops() {
				if strings.HasPrefix(topic, EventSubTopic) {
					topic = EventSubTopic + "*"
				} else {
					topic = m.Name(topic)
				}
				drops[topic] += d
			}
		}
		if src.Discovery != nil {
			if st, ok := src.Discovery(); ok {
				anyDisc = true
				anyRedis = anyRedis || st.Redis
				disc.Members += st.Members
				disc.Errors += st.Errors
				disc.Reconnects += st.Reconnects
				disc.Resyncs += st.Resyncs
			}
		}
		return true
	})
	for in := range 2 {
		for g := range 2 {
			ch <- prometheus.MustNewConstMetric(m.connsDesc, prometheus.GaugeValue, float64(n[in][g]),
				direction(in == 1, "inbound", "outbound"), direction(g == 1, "go", "netron"))
		}
	}
	for topic, d := range drops {
		ch <- prometheus.MustNewConstMetric(m.busDroppedDesc, prometheus.CounterValue, float64(d), topic)
	}
	if anyDisc {
		ch <- prometheus.MustNewConstMetric(m.discMembersDesc, prometheus.GaugeValue, float64(disc.Members))
	}
	if anyRedis {
		ch <- prometheus.MustNewConstMetric(m.discErrorsDesc, prometheus.CounterValue, float64(disc.Errors))
		ch <- prometheus.MustNewConstMetric(m.discReconnDesc, prometheus.CounterValue, float64(disc.Reconnects))
		ch <- prometheus.MustNewConstMetric(m.discResyncsDesc, prometheus.CounterValue, float64(disc.Resyncs))
	}
}

// EventSubTopic starts the names of the bus topics of event subscriptions,
// one per subscription: their drops count under one topic label.
const EventSubTopic = "netron.events.sub."

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Conn is a connection as the connections gauge counts it.
type Conn struct{ Inbound, Go bool }

// DiscoveryStats is what a node's discovery reports when the metrics are
// scraped. Redis says whether the counters mean anything (a Redis
// backend).
type DiscoveryStats struct {
	Members                     int
	Redis                       bool
	Errors, Reconnects, Resyncs int64
}

// Source is what a node reports when the metrics are scraped: its
// connections, its bus's drops by topic, and its discovery (false: none).
// Any of them may be nil.
type Source struct {
	Conns     func() []Conn
	BusDrops  func() map[string]uint64
	Discovery func() (DiscoveryStats, bool)
}

// AddSource makes the metrics report what src reports until
// RemoveSource. The counters of a removed source leave the sums.
func (m *Metrics) AddSource(src *Source) {
	if m != nil {
		m.sources.Store(src, struct{}{})
	}
}

// RemoveSource stops reporting src.
func (m *Metrics) RemoveSource(src *Source) {
	if m != nil {
		m.sources.Delete(src)
	}
}

// Name returns the label value of a service, method, event or topic name
// (see Names).
func (m *Metrics) Name(name string) string { return m.names.Of(name) }

type callKey struct {
	side            Side
	service, method string
}

// CallMetrics are the series of one side, service and method, looked up
// once and kept: a call then costs no label hashing.
type CallMetrics struct {
	started, reqBytes, resBytes prometheus.Counter
	inFlight                    prometheus.Gauge
	duration                    prometheus.Observer
	ok                          prometheus.Counter // handled with code ok
	labels                      [3]string
	handled                     sync.Map // another code → prometheus.Counter
}

// Call returns the series of calls of service.method on side. Nil when m
// is nil.
func (m *Metrics) Call(side Side, service, method string) *CallMetrics {
	if m == nil {
		return nil
	}
	k := callKey{side, service, method}
	if v, ok := m.calls.Load(k); ok {
		return v.(*CallMetrics)
	}
	// The pair is one name: a node bounds the series it keeps, not
	// services and methods apart.
	svc, meth := service, method
	if m.names.Of(service+"."+method) == Other {
		svc, meth = Other, Other
		if v, ok := m.calls.Load(callKey{side, Other, Other}); ok {
			return v.(*CallMetrics)
		}
		k = callKey{side, Other, Other}
	}
	l := []string{side.String(), svc, meth}
	c := &CallMetrics{
		started:  m.rpcStarted.WithLabelValues(l...),
		reqBytes: m.rpcReqBytes.WithLabelValues(l...),
		resBytes: m.rpcResBytes.WithLabelValues(l...),
		inFlight: m.rpcInFlight.WithLabelValues(l...),
		duration: m.rpcDuration.WithLabelValues(l...),
		ok:       m.rpcHandled.WithLabelValues(l[0], l[1], l[2], "ok"),
		labels:   [3]string{l[0], l[1], l[2]},
	}
	v, _ := m.calls.LoadOrStore(k, c)
	return v.(*CallMetrics)
}

// Start counts a call that starts now, and returns when (see End).
func (c *CallMetrics) Start() int64 {
	c.started.Inc()
	c.inFlight.Inc()
	return nanotime()
}

// End counts the end of a call started at start, with the bytes of its
// request and response and its code (see Code).
func (c *CallMetrics) End(m *Metrics, start int64, reqBytes, resBytes int, code string) {
	c.duration.Observe(float64(nanotime()-start) / 1e9)
	c.inFlight.Dec()
	if reqBytes > 0 {
		c.reqBytes.Add(float64(reqBytes))
	}
	if resBytes > 0 {
		c.resBytes.Add(float64(resBytes))
	}
	if code == "ok" {
		c.ok.Inc()
		return
	}
	if v, ok := c.handled.Load(code); ok {
		v.(prometheus.Counter).Inc()
		return
	}
	h := m.rpcHandled.WithLabelValues(c.labels[0], c.labels[1], c.labels[2], code)
	v, _ := c.handled.LoadOrStore(code, h)
	v.(prometheus.Counter).Inc()
}

// Code is the code label of an error code from rpc.Error: the codes
// Netron uses keep their number, any other becomes "error".
func Code(code int) string {
	switch code {
	case 400, 401, 403, 404, 405, 408, 409, 410, 413, 422, 429, 500, 501, 502, 503, 504:
		return strconv.Itoa(code)
	}
	return "error"
}

// Refused counts a request refused by limit with code.
func (m *Metrics) Refused(code int, limit string) {
	if m != nil {
		m.refused.WithLabelValues(strconv.Itoa(code), limit).Inc()
	}
}

// Direction of a connection or a stream.
func direction(inbound bool, in, out string) string {
	if inbound {
		return in
	}
	return out
}

// ConnOpened counts a connection that completed its handshake: inbound
// when the peer dialled us.
func (m *Metrics) ConnOpened(inbound bool) {
	if m != nil {
		m.connOpened.WithLabelValues(direction(inbound, "inbound", "outbound")).Inc()
	}
}

// ConnClosed counts the end of a connection ConnOpened counted.
func (m *Metrics) ConnClosed(inbound bool) {
	if m != nil {
		m.connClosed.WithLabelValues(direction(inbound, "inbound", "outbound")).Inc()
	}
}

// HandshakeFailed counts a connection that failed its handshake: inbound
// when the peer dialled us.
func (m *Metrics) HandshakeFailed(inbound bool) {
	if m != nil {
		m.handshakeFail.WithLabelValues(direction(inbound, "inbound", "outbound")).Inc()
	}
}

// AuthRefused counts a peer the authenticator refused.
func (m *Metrics) AuthRefused() {
	if m != nil {
		m.authRefused.Inc()
	}
}

// StreamOpened counts a stream: in when this node reads it.
func (m *Metrics) StreamOpened(in bool) {
	if m != nil {
		m.streamOpened.WithLabelValues(direction(in, "in", "out")).Inc()
	}
}

// StreamEnded counts the end of a stream, failed when it ended with an
// error.
func (m *Metrics) StreamEnded(in, failed bool) {
	if m == nil {
		return
	}
	d := direction(in, "in", "out")
	if failed {
		m.streamFailed.WithLabelValues(d).Inc()
		return
	}
	m.streamClosed.WithLabelValues(d).Inc()
}

// Chunk counts a stream chunk of n bytes.
func (m *Metrics) Chunk(in bool, n int) {
	if m == nil {
		return
	}
	i := b2i(in)
	m.chunkN[i].Inc()
	m.chunkB[i].Add(float64(n))
}

// CreditStall counts a writer that waits for credit.
func (m *Metrics) CreditStall() {
	if m != nil {
		m.creditStalls.Inc()
	}
}

// EventEmitted counts an event this node emitted.
func (m *Metrics) EventEmitted(event string) {
	if m != nil {
		m.eventsEmitted.WithLabelValues(m.Name(event)).Inc()
	}
}

// EventSeries are the series of one subscription, looked up once.
type EventSeries struct {
	delivered, dropped prometheus.Counter
}

// Events returns the series of the subscription named sub; peer when a
// peer made it. Nil when m is nil.
func (m *Metrics) Events(sub string, peer bool) *EventSeries {
	if m == nil {
		return nil
	}
	l := []string{m.Name(sub), direction(peer, "peer", "local")}
	return &EventSeries{delivered: m.eventsDelivered.WithLabelValues(l...), dropped: m.eventsDropped.WithLabelValues(l...)}
}

// Delivered counts an event put in the subscription's queue.
func (e *EventSeries) Delivered() {
	if e != nil {
		e.delivered.Inc()
	}
}

// Dropped counts n events the subscription's queue discarded.
func (e *EventSeries) Dropped(n uint64) {
	if e != nil && n > 0 {
		e.dropped.Add(float64(n))
	}
}

// DiscoveryChange counts a membership change of kind (joined, updated,
// left), or n missed ones.
func (m *Metrics) DiscoveryChange(kind string, n int) {
	if m != nil && n > 0 {
		m.discAnnouncements.WithLabelValues(kind).Add(float64(n))
	}
}

// CallTotal is what a node counted of the calls of one service on one
// side, since it started.
type CallTotal struct {
	Side    string
	Service string
	Calls   uint64 // finished
	Errors  uint64 // finished with a code other than ok
	Running int64
}

// CallTotals returns the totals of every service, by side and service.
func (m *Metrics) CallTotals() []CallTotal {
	if m == nil {
		return nil
	}
	byKey := map[[2]string]*CallTotal{}
	var d dto.Metric
	m.calls.Range(func(_, v any) bool {
		c := v.(*CallMetrics)
		k := [2]string{c.labels[0], c.labels[1]}
		t := byKey[k]
		if t == nil {
			t = &CallTotal{Side: k[0], Service: k[1]}
			byKey[k] = t
		}
		if c.inFlight.Write(&d) == nil {
			t.Running += int64(d.GetGauge().GetValue())
		}
		if c.ok.Write(&d) == nil {
			t.Calls += uint64(d.GetCounter().GetValue())
		}
		c.handled.Range(func(code, h any) bool {
			if h.(prometheus.Counter).Write(&d) == nil {
				n := uint64(d.GetCounter().GetValue())
				t.Calls += n
				if code.(string) != "ok" {
					t.Errors += n
				}
			}
			return true
		})
		return true
	})
	out := make([]CallTotal, 0, len(byKey))
	for _, t := range byKey {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b CallTotal) int { return strings.Compare(a.Side+" "+a.Service, b.Side+" "+b.Service) })
	return out
}

// EventTotal is what a node counted of one event.
type EventTotal struct {
	Event   string
	Emitted uint64
}

// EventTotals returns the totals of every event.
func (m *Metrics) EventTotals() []EventTotal {
	if m == nil {
		return nil
	}
	var out []EventTotal
	ch := make(chan prometheus.Metric, 64)
	go func() { m.eventsEmitted.Collect(ch); close(ch) }()
	for pm := range ch {
		var d dto.Metric
		if pm.Write(&d) != nil {
			continue
		}
		for _, l := range d.GetLabel() {
			if l.GetName() == "event" {
				out = append(out, EventTotal{Event: l.GetValue(), Emitted: uint64(d.GetCounter().GetValue())})
			}
		}
	}
	slices.SortFunc(out, func(a, b EventTotal) int { return strings.Compare(a.Event, b.Event) })
	return out
}

// nanotime is the runtime's monotonic clock: one clock read, where
// time.Now makes two (the wall clock too), which showed in the cost of a
// call on machines with slow clocks (docs/benchmarks.md, "Observability").
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64
