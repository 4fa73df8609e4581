package app

import (
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/esh3artech/esh3artech/router"
)

// metricsNamespace prefixes every metric name of the relay.
const metricsNamespace = "esh3artech"

// metrics are the node's Prometheus collectors, in a registry of its own so
// that several nodes can run in one process.
type metrics struct {
	registry *prometheus.Registry
	accepted prometheus.Counter
	refused  *prometheus.CounterVec
	answer   *prometheus.HistogramVec
	router   *router.Metrics
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		registry: reg,
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "messages_accepted_total",
			Help: "Messages stored and answered with an id.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "messages_refused_total",
			Help: "Requests refused by backpressure, by reason.",
		}, []string{"reason"}),
		answer: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "api_answer_seconds",
			Help:    "Time to answer an API request, by route and status.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "status"}),
	}
	for _, reason := range []string{"rate_limit", "in_flight", "queue_full", "write_stall", "inbox_full", "storage"} {
		m.refused.WithLabelValues(reason)
	}
	reg.MustRegister(m.accepted, m.refused, m.answer,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.router = router.NewMetrics(metricsNamespace, reg)
	return m
}

// observe records the response time of every API request.
func (m *metrics) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		m.answer.WithLabelValues(route, strconv.Itoa(c.Response().Status)).
			Observe(time.Since(start).Seconds())
		return err
	}
}

func (m *metrics) handler() echo.HandlerFunc {
	h := promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
	return echo.WrapHandler(h)
}

// registerNodeGauges adds the gauges read from the node's components at
// scrape time.
func (n *Node) registerNodeGauges() {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: name, Help: help,
		}, f)
	}
	n.metrics.registry.MustRegister(
		gauge("queue_depth", "Messages accepted and not yet routed.",
			func() float64 { return float64(n.store.QueueDepth()) }),
		gauge("inbox_pending", "Messages in inboxes, not yet acknowledged.",
			func() float64 { return float64(n.store.InboxTotal()) }),
		gauge("hub_connections", "Live SignalR connections.",
			func() float64 { return float64(n.hub.ConnCount()) }),
		gauge("api_in_flight", "API requests in progress.",
			func() float64 { return float64(n.limits.inFlight.Load()) }),
		gauge("load_ratio", "Share of the node's capacity in use (0 to 1 and above); "+
			"see the operator docs.", func() float64 { return n.load() }),
		gauge("circuit_breaker_open", "1 while the local delivery circuit breaker is open.",
			func() float64 { return boolFloat(n.router.BreakerOpen()) }),
		&storeCollector{n: n},
	)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// storeCollector exports Pebble's figures that matter to operators.
type storeCollector struct{ n *Node }

var (
	descStalls = prometheus.NewDesc(metricsNamespace+"_storage_write_stalls_total",
		"Times Pebble delayed writes.", nil, nil)
	descStallTime = prometheus.NewDesc(metricsNamespace+"_storage_write_stall_seconds_total",
		"Time Pebble spent delaying writes.", nil, nil)
	descDisk = prometheus.NewDesc(metricsNamespace+"_storage_disk_usage_bytes",
		"Bytes of Pebble's files.", nil, nil)
	descFsync = prometheus.NewDesc(metricsNamespace+"_storage_wal_fsync_seconds",
		"Latency of Pebble's write-ahead log fsyncs.", nil, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descStalls
	ch <- descStallTime
	ch <- descDisk
	ch <- descFsync
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.n.store.Stats()
	ch <- prometheus.MustNewConstMetric(descStalls, prometheus.CounterValue, float64(st.WriteStalls))
	ch <- prometheus.MustNewConstMetric(descStallTime, prometheus.CounterValue, st.WriteStallTime.Seconds())
	ch <- prometheus.MustNewConstMetric(descDisk, prometheus.GaugeValue, float64(st.DiskUsage))
	if st.WALFsyncLatency == nil {
		return
	}
	// Pebble's histogram counts nanoseconds; export it in seconds.
	var pb dto.Metric
	if err := st.WALFsyncLatency.Write(&pb); err != nil || pb.Histogram == nil {
		return
	}
	buckets := make(map[float64]uint64, len(pb.Histogram.Bucket))
	for _, b := range pb.Histogram.Bucket {
		buckets[b.GetUpperBound()/1e9] = b.GetCumulativeCount()
	}
	ch <- prometheus.MustNewConstHistogram(descFsync, pb.Histogram.GetSampleCount(),
		pb.Histogram.GetSampleSum()/1e9, buckets)
}
