package router

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the router's Prometheus collectors.
type Metrics struct {
	Sent            prometheus.Counter   // first sends of a message to a device
	Retried         prometheus.Counter   // sends after the first
	Delivered       prometheus.Counter   // acknowledged messages
	DeadLettered    prometheus.Counter   // messages moved to the DLQ
	DeliveryLatency prometheus.Histogram // acceptance to acknowledgement
}

// NewMetrics creates the router's collectors under namespace and registers
// them with reg.
func NewMetrics(namespace string, reg prometheus.Registerer) *Metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	}
	m := &Metrics{
		Sent:         counter("messages_sent_total", "Messages sent to a device for the first time."),
		Retried:      counter("messages_retried_total", "Messages sent again after no acknowledgement."),
		Delivered:    counter("messages_delivered_total", "Messages acknowledged by a device of the recipient."),
		DeadLettered: counter("messages_dead_lettered_total", "Messages moved to the dead-letter queue."),
		DeliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "delivery_latency_seconds",
			Help:    "Time from a message's acceptance to its acknowledgement.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600},
		}),
	}
	reg.MustRegister(m.Sent, m.Retried, m.Delivered, m.DeadLettered, m.DeliveryLatency)
	return m
}

// newDiscardMetrics returns collectors that no registry reads.
func newDiscardMetrics() *Metrics {
	return NewMetrics("discard", prometheus.NewRegistry())
}
