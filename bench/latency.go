package main

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/google/uuid"
)

// outcomeKind classifies the answer to one send.
type outcomeKind uint8

const (
	outcomeUnsent     outcomeKind = iota // never sent: the late limit passed first
	outcomeAccepted                      // 202 with a message id
	outcomeRefused                       // 429 or 503: the node asked the client to retry
	outcomeStatus                        // any other HTTP status
	outcomeTimeout                       // no answer within --timeout
	outcomeConnection                    // the connection failed
	outcomeBadAnswer                     // 202 without a readable id
)

// errorName names an outcome kind in the report's error breakdown.
func (k outcomeKind) errorName() string {
	switch k {
	case outcomeUnsent:
		return "unsent"
	case outcomeStatus:
		return "status"
	case outcomeTimeout:
		return "timeout"
	case outcomeConnection:
		return "connection"
	case outcomeBadAnswer:
		return "bad_answer"
	}
	return ""
}

// outcome is the result of one send.
type outcome struct {
	kind   outcomeKind
	status int
	id     uuid.UUID
}

// records stores per send when it was written and answered and what the
// answer was. Each send's entries are written by the one goroutine that
// made it, and read only after the load has stopped.
type records struct {
	sentAt     []time.Duration // since the schedule's start
	answeredAt []time.Duration // since the schedule's start
	kinds      []outcomeKind
	statuses   []int16
	ids        []uuid.UUID
}

func newRecords(n int64) *records {
	return &records{
		sentAt:     make([]time.Duration, n),
		answeredAt: make([]time.Duration, n),
		kinds:      make([]outcomeKind, n),
		statuses:   make([]int16, n),
		ids:        make([]uuid.UUID, n),
	}
}

func (r *records) record(seq int64, sent, answered time.Duration, out outcome) {
	r.sentAt[seq] = sent
	r.answeredAt[seq] = answered
	r.kinds[seq] = out.kind
	r.statuses[seq] = int16(out.status)
	r.ids[seq] = out.id
}

// Histogram bounds, in microseconds: 1 µs to 1 hour at 3 significant digits.
const (
	histogramMin    = 1
	histogramMax    = int64(time.Hour / time.Microsecond)
	histogramDigits = 3
)

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histogramMin, histogramMax, histogramDigits)
}

// recordDuration adds d to h in microseconds, clamped to h's range.
func recordDuration(h *hdrhistogram.Histogram, d time.Duration) {
	us := d.Microseconds()
	us = max(us, histogramMin)
	us = min(us, histogramMax)
	// The value is within the histogram's range, so RecordValue cannot fail.
	_ = h.RecordValue(us)
}

// answerLatency holds the histograms of the answers to accepted sends.
type answerLatency struct {
	// corrected is measured from each send's intended time.
	corrected *hdrhistogram.Histogram
	// service is measured from the moment the request was written.
	service *hdrhistogram.Histogram
	// lag is how late each request was written after its intended time:
	// the wait for a free connection plus the bench's own scheduling delay.
	lag *hdrhistogram.Histogram
}

// measureAnswers builds the latency histograms of every answered send
// (accepted, refused or answered with another status) of sched.
func measureAnswers(sched schedule, r *records) answerLatency {
	a := answerLatency{corrected: newHistogram(), service: newHistogram(), lag: newHistogram()}
	for seq := range sched.count {
		if r.kinds[seq] != outcomeUnsent {
			recordDuration(a.lag, r.sentAt[seq]-sched.offset(seq))
		}
		if !answered(r.kinds[seq]) {
			continue
		}
		recordDuration(a.corrected, r.answeredAt[seq]-sched.offset(seq))
		recordDuration(a.service, r.answeredAt[seq]-r.sentAt[seq])
	}
	return a
}

// answered reports whether the node answered a send with any HTTP status.
func answered(k outcomeKind) bool {
	return k == outcomeAccepted || k == outcomeRefused || k == outcomeStatus
}

// percentiles is the JSON form of a latency distribution, in milliseconds.
type percentiles struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// summarize returns the percentiles of h, whose values are microseconds.
func summarize(h *hdrhistogram.Histogram) percentiles {
	if h.TotalCount() == 0 {
		return percentiles{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return percentiles{
		Count: h.TotalCount(),
		Mean:  h.Mean() / 1000,
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
	}
}

// second is one second of a run, for the charts of latency over time.
type second struct {
	Second   int     `json:"second"`
	Sent     int64   `json:"sent"`
	Accepted int64   `json:"accepted"`
	Errors   int64   `json:"errors"`
	P50Ms    float64 `json:"answer_p50_ms"`
	P99Ms    float64 `json:"answer_p99_ms"`
	E2EP50Ms float64 `json:"e2e_p50_ms,omitempty"`
	E2EP99Ms float64 `json:"e2e_p99_ms,omitempty"`
}

// timeline splits the answers by the second of their intended send time and
// the deliveries by the second of their answer. e2e holds the end-to-end
// latency of each send, negative where none was measured.
func timeline(sched schedule, r *records, e2e []time.Duration) []second {
	n := int(sched.offset(sched.count-1)/time.Second) + 1
	answers := make([]*hdrhistogram.Histogram, n)
	deliveries := make([]*hdrhistogram.Histogram, n)
	out := make([]second, n)
	for i := range n {
		answers[i], deliveries[i] = newHistogram(), newHistogram()
		out[i].Second = i
	}
	for seq := range sched.count {
		s := &out[int(sched.offset(seq)/time.Second)]
		switch k := r.kinds[seq]; {
		case k == outcomeUnsent:
			s.Errors++
			continue
		case k == outcomeAccepted:
			s.Accepted++
		case k != outcomeRefused:
			s.Errors++
		}
		s.Sent++
		if answered(r.kinds[seq]) {
			recordDuration(answers[int(sched.offset(seq)/time.Second)], r.answeredAt[seq]-sched.offset(seq))
		}
		if e2e != nil && e2e[seq] >= 0 {
			i := min(int(r.answeredAt[seq]/time.Second), n-1)
			recordDuration(deliveries[i], e2e[seq])
		}
	}
	for i := range out {
		a, d := summarize(answers[i]), summarize(deliveries[i])
		out[i].P50Ms, out[i].P99Ms = a.P50, a.P99
		out[i].E2EP50Ms, out[i].E2EP99Ms = d.P50, d.P99
	}
	return out
}
