package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/go-echarts/go-echarts/v2/charts"
	"github.com/go-echarts/go-echarts/v2/components"
	"github.com/go-echarts/go-echarts/v2/opts"
)

// histogramEdgesMs are the upper edges of the latency histogram's bars, in
// milliseconds. A last bar counts everything slower.
var histogramEdgesMs = []float64{0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000}

// writeHTMLReport writes an HTML page with charts of the run to path. The
// page loads echarts.min.js from assetsHost, or from go-echarts' public
// assets host when assetsHost is empty.
func writeHTMLReport(path, assetsHost string, r *report) error {
	page := components.NewPage()
	page.SetPageTitle("esh3artech bench")
	if assetsHost != "" {
		page.SetAssetsHost(assetsHost)
	}
	page.AddCharts(latencyOverTime(r), acceptedOverTime(r), latencyHistogram(r))
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create the HTML report: %w", err)
	}
	if err := page.Render(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("write the HTML report %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write the HTML report %s: %w", path, err)
	}
	return nil
}

func newLineChart(title, yName string) *charts.Line {
	c := charts.NewLine()
	c.SetGlobalOptions(
		charts.WithTitleOpts(opts.Title{Title: title}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Bottom: "0"}),
		charts.WithXAxisOpts(opts.XAxis{Name: "second"}),
		charts.WithYAxisOpts(opts.YAxis{Name: yName}),
	)
	return c
}

// latencyOverTime charts the p50 and p99 of the answers per second of
// intended send time, and of the deliveries per second of answer.
func latencyOverTime(r *report) *charts.Line {
	c := newLineChart("Latency per second (answers corrected for coordinated omission)", "ms")
	c.SetXAxis(secondLabels(r.PerSecond))
	pick := func(secs []second, get func(second) float64) []opts.LineData {
		out := make([]opts.LineData, len(secs))
		for i, s := range secs {
			out[i] = opts.LineData{Value: get(s)}
		}
		return out
	}
	c.AddSeries("node answer p50", pick(r.PerSecond, func(s second) float64 { return s.P50Ms }))
	c.AddSeries("node answer p99", pick(r.PerSecond, func(s second) float64 { return s.P99Ms }))
	if r.DeliveryMeasured {
		c.AddSeries("end-to-end p50", pick(r.PerSecond, func(s second) float64 { return s.E2EP50Ms }))
		c.AddSeries("end-to-end p99", pick(r.PerSecond, func(s second) float64 { return s.E2EP99Ms }))
	}
	if b := r.Baseline; b != nil {
		c.AddSeries("baseline answer p50", pick(b.PerSecond, func(s second) float64 { return s.P50Ms }))
		c.AddSeries("baseline answer p99", pick(b.PerSecond, func(s second) float64 { return s.P99Ms }))
	}
	return c
}

// acceptedOverTime charts the accepted sends and the errors per second.
func acceptedOverTime(r *report) *charts.Line {
	c := newLineChart("Accepted messages and errors per second", "messages")
	c.SetXAxis(secondLabels(r.PerSecond))
	series := func(secs []second, get func(second) int64) []opts.LineData {
		out := make([]opts.LineData, len(secs))
		for i, s := range secs {
			out[i] = opts.LineData{Value: get(s)}
		}
		return out
	}
	c.AddSeries("node accepted", series(r.PerSecond, func(s second) int64 { return s.Accepted }))
	c.AddSeries("node errors", series(r.PerSecond, func(s second) int64 { return s.Errors }))
	if b := r.Baseline; b != nil {
		c.AddSeries("baseline accepted", series(b.PerSecond, func(s second) int64 { return s.Accepted }))
	}
	return c
}

// latencyHistogram charts how many answers and deliveries fell into each
// latency bar.
func latencyHistogram(r *report) *charts.Bar {
	c := charts.NewBar()
	c.SetGlobalOptions(
		charts.WithTitleOpts(opts.Title{Title: "Latency histogram"}),
		charts.WithTooltipOpts(opts.Tooltip{Show: opts.Bool(true), Trigger: "axis"}),
		charts.WithLegendOpts(opts.Legend{Show: opts.Bool(true), Bottom: "0"}),
		charts.WithXAxisOpts(opts.XAxis{Name: "ms"}),
		charts.WithYAxisOpts(opts.YAxis{Name: "count"}),
	)
	labels := make([]string, 0, len(histogramEdgesMs)+1)
	for _, edge := range histogramEdgesMs {
		labels = append(labels, "≤"+strconv.FormatFloat(edge, 'g', -1, 64))
	}
	labels = append(labels, ">"+strconv.FormatFloat(histogramEdgesMs[len(histogramEdgesMs)-1], 'g', -1, 64))
	c.SetXAxis(labels)
	c.AddSeries("node answer", histogramBars(r.answerHistogram))
	if r.DeliveryMeasured {
		c.AddSeries("end-to-end", histogramBars(r.e2eHistogram))
	}
	if b := r.Baseline; b != nil {
		c.AddSeries("baseline answer", histogramBars(b.answerHistogram))
	}
	return c
}

// histogramBars counts the values of h, in microseconds, per bar of
// histogramEdgesMs.
func histogramBars(h *hdrhistogram.Histogram) []opts.BarData {
	counts := make([]int64, len(histogramEdgesMs)+1)
	if h != nil {
		for _, bar := range h.Distribution() {
			if bar.Count == 0 {
				continue
			}
			ms := float64(bar.From) / 1000
			i := 0
			for i < len(histogramEdgesMs) && ms > histogramEdgesMs[i] {
				i++
			}
			counts[i] += bar.Count
		}
	}
	out := make([]opts.BarData, len(counts))
	for i, n := range counts {
		out[i] = opts.BarData{Value: n}
	}
	return out
}

func secondLabels(secs []second) []string {
	out := make([]string, len(secs))
	for i, s := range secs {
		out[i] = strconv.Itoa(s.Second)
	}
	return out
}
