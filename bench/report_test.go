package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sampleReport returns a report of a slow simulated node next to a fast
// simulated baseline.
func sampleReport(t *testing.T) *report {
	t.Helper()
	cfg, err := parseFlags([]string{"--clients", "1", "--rate", "100", "--duration", "100ms", "--baseline"},
		&testWriter{t})
	require.NoError(t, err)
	r := newReport(cfg)
	base := runSlowServer(t, 100, 10, 5*time.Millisecond)
	r.Baseline = &base
	node := runSlowServer(t, 100, 10, 50*time.Millisecond)
	r.setNode(&phaseResult{answers: node, delivery: deliveryFigures{DeliveryMeasured: true, Delivered: 10,
		e2eHistogram: newHistogram()}})
	return r
}

func TestReportRatiosToBaseline(t *testing.T) {
	r := sampleReport(t)

	require.NotNil(t, r.Ratios)
	// The node took 500ms for 10 sends, the baseline 95ms (the last send is
	// due at 90ms and answered 5ms later).
	require.InDelta(t, 0.095/0.5, r.Ratios.AcceptedPerSec, 0.001)
	require.Greater(t, r.Ratios.P99, float64(1))
}

func TestReportTableShowsBaselineAndDelivery(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, writeTable(&out, sampleReport(t)))

	require.Contains(t, out.String(), "node/baseline")
	require.Contains(t, out.String(), "answer p99 ms")
	require.Contains(t, out.String(), "10 of 10 accepted")
}

func TestReportWritesJSONAndHTML(t *testing.T) {
	dir := t.TempDir()
	cfg := &config{jsonPath: filepath.Join(dir, "r.json"), reportPath: filepath.Join(dir, "r.html"),
		assetsHost: "http://127.0.0.1:1/assets/"}
	var out bytes.Buffer

	require.NoError(t, writeOutputs(cfg, sampleReport(t), &out))

	js, err := os.ReadFile(cfg.jsonPath)
	require.NoError(t, err)
	for _, key := range []string{`"accepted"`, `"refused"`, `"errors"`, `"delivered"`, `"duplicates"`,
		`"lost"`, `"answer_ms"`, `"e2e_ms"`, `"p999"`, `"baseline"`, `"ratios"`} {
		require.Contains(t, string(js), key)
	}
	html, err := os.ReadFile(cfg.reportPath)
	require.NoError(t, err)
	require.Contains(t, string(html), "http://127.0.0.1:1/assets/echarts.min.js")
	require.Contains(t, string(html), "Latency per second")
	require.Contains(t, string(html), "Latency histogram")
}

func TestHistogramBarsCountEveryValue(t *testing.T) {
	h := newHistogram()
	for _, d := range []time.Duration{50 * time.Microsecond, time.Millisecond, 3 * time.Millisecond, 20 * time.Second} {
		recordDuration(h, d)
	}

	bars := histogramBars(h)

	require.Len(t, bars, len(histogramEdgesMs)+1)
	require.Equal(t, int64(1), bars[0].Value, "≤0.1ms")
	require.Equal(t, int64(1), bars[3].Value, "≤1ms")
	require.Equal(t, int64(1), bars[5].Value, "≤5ms")
	require.Equal(t, int64(1), bars[len(bars)-1].Value, ">10000ms")
}
