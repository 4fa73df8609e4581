package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// report contains every figure of a run. The node's answer and delivery
// figures are at the top level, and the baseline's, when measured, are
// under "baseline".
type report struct {
	StartedAt time.Time `json:"started_at"`
	Target    string    `json:"target"`
	Settings  settings  `json:"settings"`
	answerFigures
	deliveryFigures
	ServerErrorLogs int            `json:"server_error_logs,omitempty"`
	Baseline        *answerFigures `json:"baseline,omitempty"`
	Ratios          *ratios        `json:"ratios,omitempty"`
	Warnings        []string       `json:"warnings,omitempty"`
}

// settings are the flags that shape the load.
type settings struct {
	Clients         int     `json:"clients"`
	Rate            float64 `json:"rate"`
	DurationSeconds float64 `json:"duration_seconds"`
	TimeoutSeconds  float64 `json:"timeout_seconds"`
	Users           int     `json:"users"`
	Offline         float64 `json:"offline"`
	DrainSeconds    float64 `json:"drain_seconds"`
}

// answerFigures describe what the business clients saw.
type answerFigures struct {
	Offered         int64            `json:"offered"`
	Sent            int64            `json:"sent"`
	Accepted        int64            `json:"accepted"`
	AcceptedPerSec  float64          `json:"accepted_per_sec"`
	Refused         int64            `json:"refused"`
	RefusedByStatus map[string]int64 `json:"refused_by_status"`
	Errors          int64            `json:"errors"`
	ErrorsByKind    map[string]int64 `json:"errors_by_kind"`
	// AnswerMs is measured from each send's intended time (corrected for
	// coordinated omission), ServiceMs from the moment the request was
	// written. SendLagMs is how late requests were written after their
	// intended time.
	AnswerMs    percentiles `json:"answer_ms"`
	ServiceMs   percentiles `json:"service_ms"`
	SendLagMs   percentiles `json:"send_lag_ms"`
	LoadSeconds float64     `json:"load_seconds"`
	// Process is the server's resource use, when the bench started it.
	Process *processUsage `json:"process,omitempty"`
	// BenchCPUSeconds is the bench's own CPU time during the load, which
	// the server did not have.
	BenchCPUSeconds float64  `json:"bench_cpu_seconds"`
	PerSecond       []second `json:"per_second"`

	answerHistogram *hdrhistogram.Histogram
}

// deliveryFigures describe what the mobile users saw.
type deliveryFigures struct {
	DeliveryMeasured    bool        `json:"delivery_measured"`
	Delivered           int64       `json:"delivered"`
	DeliveredOffline    int64       `json:"delivered_offline"`
	DeliveredUnanswered int64       `json:"delivered_unanswered"`
	Duplicates          int64       `json:"duplicates"`
	DeadLettered        int64       `json:"dead_lettered"`
	Lost                int64       `json:"lost"`
	Loss                lossCount   `json:"loss"`
	E2EMs               percentiles `json:"e2e_ms"`
	DrainSeconds        float64     `json:"drain_seconds"`
	Users               userFigures `json:"users"`

	e2eHistogram *hdrhistogram.Histogram
}

// userFigures count the mobile users' connections and odd messages.
type userFigures struct {
	Total           int    `json:"total"`
	Offline         int    `json:"offline"`
	Connected       int64  `json:"connected"`
	ConnectFailed   int64  `json:"connect_failed"`
	Dropped         int64  `json:"dropped"`
	ReconnectFailed int64  `json:"reconnect_failed"`
	FirstError      string `json:"first_error,omitempty"`
	Foreign         int64  `json:"foreign"`
	Misrouted       int64  `json:"misrouted"`
	BadPayloads     int64  `json:"bad_payloads"`
	AckErrors       int64  `json:"ack_errors"`
}

// ratios compare the node with the baseline server.
type ratios struct {
	AcceptedPerSec float64 `json:"accepted_per_sec"` // node / baseline
	P99            float64 `json:"p99"`              // node / baseline
}

func newReport(cfg *config) *report {
	target := "node started by the bench"
	if cfg.target != "" {
		target = cfg.target
	}
	return &report{
		StartedAt: time.Now().UTC(),
		Target:    target,
		Settings: settings{
			Clients: cfg.clients, Rate: cfg.rate, DurationSeconds: cfg.duration.Seconds(),
			TimeoutSeconds: cfg.timeout.Seconds(), Users: cfg.users, Offline: cfg.offline,
			DrainSeconds: cfg.drain.Seconds(),
		},
	}
}

// setNode stores the node phase's figures and, with a baseline, the ratios.
func (r *report) setNode(res *phaseResult) {
	r.answerFigures = res.answers
	r.deliveryFigures = res.delivery
	r.ServerErrorLogs = res.serverErrorLogs
	r.Warnings = append(r.Warnings, res.warnings...)
	if b := r.Baseline; b != nil && b.AcceptedPerSec > 0 && b.AnswerMs.P99 > 0 {
		r.Ratios = &ratios{
			AcceptedPerSec: r.AcceptedPerSec / b.AcceptedPerSec,
			P99:            r.AnswerMs.P99 / b.AnswerMs.P99,
		}
	}
}

// figures summarizes the records of a load. When e2e is not nil, it
// contains each send's end-to-end latency for the timeline.
func (l *loadResult) figures(e2e []time.Duration) answerFigures {
	f := answerFigures{
		Offered:         l.sched.count,
		RefusedByStatus: map[string]int64{},
		ErrorsByKind:    map[string]int64{},
		LoadSeconds:     l.wall.Seconds(),
	}
	r := l.records
	for seq := range l.sched.count {
		switch k := r.kinds[seq]; k {
		case outcomeAccepted:
			f.Accepted++
		case outcomeRefused:
			f.Refused++
			f.RefusedByStatus[strconv.Itoa(int(r.statuses[seq]))]++
		case outcomeStatus:
			f.Errors++
			f.ErrorsByKind["status_"+strconv.Itoa(int(r.statuses[seq]))]++
		default:
			f.Errors++
			f.ErrorsByKind[k.errorName()]++
		}
		if r.kinds[seq] != outcomeUnsent {
			f.Sent++
		}
	}
	f.AcceptedPerSec = float64(f.Accepted) / l.wall.Seconds()
	f.BenchCPUSeconds = l.benchCPUSeconds
	lat := measureAnswers(l.sched, r)
	f.AnswerMs, f.ServiceMs = summarize(lat.corrected), summarize(lat.service)
	f.SendLagMs = summarize(lat.lag)
	f.answerHistogram = lat.corrected
	f.PerSecond = timeline(l.sched, r, e2e)
	return f
}

// writeOutputs prints the table and writes the JSON and HTML files that
// were asked for.
func writeOutputs(cfg *config, r *report, stdout io.Writer) error {
	if err := writeTable(stdout, r); err != nil {
		return err
	}
	if cfg.jsonPath != "" {
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return fmt.Errorf("encode the JSON report: %w", err)
		}
		if err := os.WriteFile(cfg.jsonPath, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write the JSON report: %w", err)
		}
	}
	if cfg.reportPath != "" {
		if err := writeHTMLReport(cfg.reportPath, cfg.assetsHost, r); err != nil {
			return err
		}
	}
	return nil
}

// sortedCounts formats a count map as "k=v k=v" in key order, or "0".
func sortedCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := ""
	for _, k := range keys {
		if out != "" {
			out += " "
		}
		out += fmt.Sprintf("%s=%d", k, m[k])
	}
	if out == "" {
		return "0"
	}
	return out
}

// newTabWriter returns a tabwriter with the table's column layout.
func newTabWriter(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}
