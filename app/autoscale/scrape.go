package autoscale

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// loadMetric is the gauge in which a node exports the share of its
// capacity in use.
const loadMetric = "esh3artech_load_ratio"

// maxMetricsBytes bounds the /metrics body read from a node.
const maxMetricsBytes = 8 << 20

// ReadLoad fetches http://addr/metrics and returns the node's
// esh3artech_load_ratio.
func ReadLoad(ctx context.Context, client *http.Client, addr string) (float64, error) {
	url := "http://" + addr + "/metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("read load: %w", err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("read load: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("read load: GET %s: status %s", url, resp.Status)
	}
	return parseLoad(io.LimitReader(resp.Body, maxMetricsBytes))
}

// parseLoad returns the load gauge from Prometheus text in r.
func parseLoad(r io.Reader) (float64, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return 0, fmt.Errorf("read load: parse metrics: %w", err)
	}
	fam, ok := families[loadMetric]
	if !ok || len(fam.GetMetric()) == 0 || fam.GetMetric()[0].GetGauge() == nil {
		return 0, fmt.Errorf("read load: gauge %s not found in the metrics", loadMetric)
	}
	return fam.GetMetric()[0].GetGauge().GetValue(), nil
}
