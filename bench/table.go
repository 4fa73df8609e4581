package main

import (
	"fmt"
	"io"
	"strings"
)

// writeTable prints the results as plain-text tables: the answers of the
// node, next to the baseline's when measured, then the deliveries.
func writeTable(w io.Writer, r *report) error {
	s := r.Settings
	fmt.Fprintf(w, "\nLoad: %d clients, %g messages/s for %gs (%d sends), %d users (%.0f%% offline), drain %gs\n",
		s.Clients, s.Rate, s.DurationSeconds, r.Offered, s.Users, s.Offline*100, s.DrainSeconds)
	fmt.Fprintf(w, "Target: %s\n\n", r.Target)
	tw := newTabWriter(w)
	header := "\tnode"
	if r.Baseline != nil {
		header += "\tbaseline\tnode/baseline"
	}
	fmt.Fprintln(tw, header)
	for _, row := range answerRows(r) {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write the table: %w", err)
	}
	fmt.Fprintln(w)
	tw = newTabWriter(w)
	for _, row := range deliveryRows(r) {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write the table: %w", err)
	}
	if e := r.Users.FirstError; e != "" {
		fmt.Fprintf(w, "first user error: %s\n", e)
	}
	for _, warning := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warning)
	}
	return nil
}

// answerRows returns the rows of the answer table: a label, the node's
// value and, with a baseline, the baseline's value and the ratio.
func answerRows(r *report) [][]string {
	n, b := &r.answerFigures, r.Baseline
	row := func(label string, value func(*answerFigures) string, ratio string) []string {
		cells := []string{label, value(n)}
		if b != nil {
			cells = append(cells, value(b), ratio)
		}
		return cells
	}
	count := func(get func(*answerFigures) int64) func(*answerFigures) string {
		return func(f *answerFigures) string { return fmt.Sprint(get(f)) }
	}
	ms := func(get func(*answerFigures) float64) func(*answerFigures) string {
		return func(f *answerFigures) string { return fmt.Sprintf("%.2f", get(f)) }
	}
	var rateRatio, p99Ratio string
	if r.Ratios != nil {
		rateRatio = fmt.Sprintf("%.1f%%", r.Ratios.AcceptedPerSec*100)
		p99Ratio = fmt.Sprintf("%.2fx", r.Ratios.P99)
	}
	return [][]string{
		row("offered", count(func(f *answerFigures) int64 { return f.Offered }), ""),
		row("sent", count(func(f *answerFigures) int64 { return f.Sent }), ""),
		row("accepted", count(func(f *answerFigures) int64 { return f.Accepted }), ""),
		row("accepted/s", func(f *answerFigures) string { return fmt.Sprintf("%.0f", f.AcceptedPerSec) }, rateRatio),
		row("refused", func(f *answerFigures) string { return sortedCounts(f.RefusedByStatus) }, ""),
		row("errors", func(f *answerFigures) string { return sortedCounts(f.ErrorsByKind) }, ""),
		row("answer p50 ms", ms(func(f *answerFigures) float64 { return f.AnswerMs.P50 }), ""),
		row("answer p90 ms", ms(func(f *answerFigures) float64 { return f.AnswerMs.P90 }), ""),
		row("answer p99 ms", ms(func(f *answerFigures) float64 { return f.AnswerMs.P99 }), p99Ratio),
		row("answer p99.9 ms", ms(func(f *answerFigures) float64 { return f.AnswerMs.P999 }), ""),
		row("answer max ms", ms(func(f *answerFigures) float64 { return f.AnswerMs.Max }), ""),
		row("service p50 ms", ms(func(f *answerFigures) float64 { return f.ServiceMs.P50 }), ""),
		row("service p99 ms", ms(func(f *answerFigures) float64 { return f.ServiceMs.P99 }), ""),
		row("send lag p99 ms", ms(func(f *answerFigures) float64 { return f.SendLagMs.P99 }), ""),
		row("server CPU s (cores)", usageCell(func(u *processUsage) string {
			return fmt.Sprintf("%.1f (%.2f)", u.CPUSeconds, u.CPUCores)
		}), ""),
		row("bench CPU s (cores)", func(f *answerFigures) string {
			return fmt.Sprintf("%.1f (%.2f)", f.BenchCPUSeconds, f.BenchCPUSeconds/f.LoadSeconds)
		}, ""),
		row("server peak RSS MiB", usageCell(func(u *processUsage) string {
			return fmt.Sprintf("%.0f", float64(u.PeakRSSBytes)/(1<<20))
		}), ""),
	}
}

func usageCell(format func(*processUsage) string) func(*answerFigures) string {
	return func(f *answerFigures) string {
		if f.Process == nil {
			return "-"
		}
		return format(f.Process)
	}
}

// deliveryRows returns the rows of the delivery table.
func deliveryRows(r *report) [][]string {
	d := r.deliveryFigures
	if !d.DeliveryMeasured {
		return [][]string{{"delivery", "not measured: no mobile users (--users 0)"}}
	}
	u := d.Users
	rows := [][]string{
		{"delivered", fmt.Sprintf("%d of %d accepted (%d to offline users)", d.Delivered, r.Accepted, d.DeliveredOffline)},
		{"delivered without a 202", fmt.Sprint(d.DeliveredUnanswered)},
		{"duplicates", fmt.Sprint(d.Duplicates)},
		{"delivered during the lookup", fmt.Sprint(d.Loss.DeliveredLate)},
		{"dead-lettered", fmt.Sprint(d.DeadLettered)},
		{"lost", lostCell(d.Loss)},
		{"e2e ms p50/p90/p99/p99.9/max", e2eCell(d.E2EMs)},
		{"users connected", fmt.Sprintf("%d of %d (%d offline until the drain)", u.Connected, u.Total, u.Offline)},
		{"users failed/dropped", fmt.Sprintf("%d / %d", u.ConnectFailed, u.Dropped)},
		{"drain s", fmt.Sprintf("%.1f", d.DrainSeconds)},
	}
	if odd := u.Foreign + u.Misrouted + u.BadPayloads + u.AckErrors; odd > 0 {
		rows = append(rows, []string{"foreign/misrouted/bad/ack errors",
			fmt.Sprintf("%d / %d / %d / %d", u.Foreign, u.Misrouted, u.BadPayloads, u.AckErrors)})
	}
	return rows
}

func e2eCell(e percentiles) string {
	if e.Count == 0 {
		return "none measured"
	}
	return fmt.Sprintf("%.2f / %.2f / %.2f / %.2f / %.2f", e.P50, e.P90, e.P99, e.P999, e.Max)
}

func lostCell(l lossCount) string {
	if l.Lost == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (state in the node: %s)", l.Lost, sortedCounts(l.LostByStatus))
}
