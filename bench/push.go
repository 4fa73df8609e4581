package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/prometheus/procfs"
)

// Push mode (--push): how many messages per second the node delivers to
// connected users who acknowledge each one, next to how many it accepts in
// the same run. Every user connects before the load and stays connected.

// pushReport contains every figure of a push run.
type pushReport struct {
	StartedAt time.Time `json:"started_at"`
	Target    string    `json:"target"`
	Settings  settings  `json:"settings"`

	Offered        int64            `json:"offered"`
	Accepted       int64            `json:"accepted"`
	AcceptedPerSec float64          `json:"accepted_per_sec"`
	Refused        int64            `json:"refused"`
	Errors         int64            `json:"errors"`
	ErrorsByKind   map[string]int64 `json:"errors_by_kind"`
	AnswerMs       percentiles      `json:"answer_ms"`
	LoadSeconds    float64          `json:"load_seconds"`

	pushDelivery

	Users           userFigures   `json:"users"`
	Process         *processUsage `json:"process,omitempty"`
	BenchCPUSeconds float64       `json:"bench_cpu_seconds"`
	// LoadAverage1m is the machine's 1-minute load average from
	// /proc/loadavg at the start and at the end of the run.
	LoadAverage1m [2]float64 `json:"load_average_1m"`
	Warnings      []string   `json:"warnings,omitempty"`
}

// pushDelivery are the delivery figures of a push run.
type pushDelivery struct {
	// Acknowledged counts the sends that their user received and
	// acknowledged by the end of the drain.
	Acknowledged int64 `json:"acknowledged"`
	// AcknowledgedPerSec divides Acknowledged by the time from the load's
	// start to the last first delivery among them. The acknowledgement
	// itself completes one round trip later.
	AcknowledgedPerSec float64 `json:"acknowledged_per_sec"`
	// LastDeliverySeconds is that time, from the load's start.
	LastDeliverySeconds float64 `json:"last_delivery_seconds"`
	// AcknowledgedDuringLoad counts the acknowledged sends whose first
	// delivery came before the load ended, and AcknowledgedDuringLoadPerSec
	// divides them by the load's time: the delivery rate while the node was
	// also accepting.
	AcknowledgedDuringLoad       int64   `json:"acknowledged_during_load"`
	AcknowledgedDuringLoadPerSec float64 `json:"acknowledged_during_load_per_sec"`
	// DeliveryRatio is AcknowledgedPerSec / AcceptedPerSec.
	DeliveryRatio float64 `json:"delivery_ratio"`
	// Unacknowledged counts accepted sends not acknowledged by the end of
	// the drain.
	Unacknowledged int64       `json:"unacknowledged"`
	Delivered      int64       `json:"delivered"` // accepted sends received at least once
	Duplicates     int64       `json:"duplicates"`
	E2EMs          percentiles `json:"e2e_ms"`
	DrainSeconds   float64     `json:"drain_seconds"`
}

// acknowledgedCount contains the counts of countAcknowledged.
type acknowledgedCount struct {
	acknowledged   int64         // sends received and acknowledged, accepted or not
	duringLoad     int64         // acknowledged sends first delivered by loadEnd
	unacknowledged int64         // accepted sends not acknowledged
	delivered      int64         // accepted sends received at least once
	lastDelivery   time.Duration // latest first delivery of an acknowledged send, from the schedule's start
}

// countAcknowledged counts the acknowledged sends of sched, those of them
// first delivered by loadEnd (from the schedule's start), and finds the
// latest first delivery among them.
func countAcknowledged(sched schedule, r *records, track *deliveries, loadEnd time.Duration) acknowledgedCount {
	var c acknowledgedCount
	for seq := range sched.count {
		accepted := r.kinds[seq] == outcomeAccepted
		if accepted && track.delivered(seq) {
			c.delivered++
		}
		if !track.acked[seq].Load() {
			if accepted {
				c.unacknowledged++
			}
			continue
		}
		c.acknowledged++
		at := time.Unix(0, track.firstAt[seq].Load()).Sub(sched.start)
		c.lastDelivery = max(c.lastDelivery, at)
		if at <= loadEnd {
			c.duringLoad++
		}
	}
	return c
}

// perSecond returns n / d in events per second, or 0 when d is not
// positive.
func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// runPushMode runs the push mode and writes its results. It returns the
// exit status: 1 when an accepted message was not acknowledged by the end
// of the drain.
func runPushMode(ctx context.Context, cfg *config, stdout, stderr io.Writer) int {
	rep, err := runPush(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return exitSetup
	}
	if err := writePushOutputs(cfg, rep, stdout); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return exitSetup
	}
	if rep.Unacknowledged > 0 {
		return exitLost
	}
	return exitOK
}

// runPush loads --target, or else builds and starts a node and loads it.
func runPush(ctx context.Context, cfg *config, log io.Writer) (*pushReport, error) {
	if cfg.target != "" {
		t, err := resolveTarget(ctx, cfg.target, cfg.apiKey)
		if err != nil {
			return nil, err
		}
		p := &phase{cfg: cfg, name: "node", target: t, jwtSecret: cfg.jwtSecret, users: cfg.users, log: log}
		return pushPhase(ctx, p, cfg.target)
	}

	fmt.Fprintln(log, "preparing the relay")
	setup, err := newNodeSetup(ctx, cfg.nodeBin)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := setup.remove(); err != nil {
			fmt.Fprintf(log, "bench: %v\n", err)
		}
	}()

	node, err := setup.start(cfg.rate)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "node listening on %s, data in %s\n", node.addr, setup.dir)
	t, err := resolveTarget(ctx, "http://"+node.addr, setup.apiKey)
	if err != nil {
		return nil, errors.Join(err, node.stop())
	}
	p := &phase{cfg: cfg, name: "node", target: t, jwtSecret: setup.jwtSecret, users: cfg.users,
		server: node, log: log}
	rep, err := pushPhase(ctx, p, "node started by the bench")
	if stopErr := node.stop(); stopErr != nil {
		if err != nil {
			return nil, errors.Join(err, stopErr)
		}
		rep.Warnings = append(rep.Warnings, stopErr.Error())
	}
	return rep, err
}

// pushPhase connects every user, runs the load, waits up to --drain for
// every accepted message to be acknowledged, and counts.
func pushPhase(ctx context.Context, p *phase, targetName string) (*pushReport, error) {
	cfg := p.cfg
	rep := &pushReport{StartedAt: time.Now().UTC(), Target: targetName, Settings: settings{
		Clients: cfg.clients, Rate: cfg.rate, DurationSeconds: cfg.duration.Seconds(),
		TimeoutSeconds: cfg.timeout.Seconds(), Users: cfg.users, DrainSeconds: cfg.drain.Seconds(),
	}}
	rep.LoadAverage1m[0] = loadAverage1m()

	plan, err := newMessagePlan(cfg.sends(), cfg.users, 0, p.seed())
	if err != nil {
		return nil, err
	}
	track := newDeliveries(plan)
	fl := newFleet(p.target.url(cfg.hubPath), []byte(p.jwtSecret), plan, track)
	usersCtx, stopUsers := context.WithCancel(ctx)
	defer func() {
		stopUsers()
		fl.wait()
	}()

	all := make([]int, cfg.users)
	for i := range all {
		all[i] = i
	}
	fl.connect(usersCtx, all)
	fmt.Fprintf(p.log, "%d of %d users connected\n", fl.connected.Load(), cfg.users)
	if fl.connected.Load() == 0 {
		return nil, fmt.Errorf("no user connected; first error: %s", fl.firstError())
	}

	load, err := p.load(ctx, plan)
	if err != nil {
		return nil, err
	}
	drainStart := time.Now()
	waitAcknowledged(ctx, load, track, cfg.drain)
	rep.DrainSeconds = time.Since(drainStart).Seconds()

	rep.setLoad(p, load, track)
	rep.Users = userFigures{
		Total: cfg.users, Connected: fl.connected.Load(), ConnectFailed: fl.failed.Load(),
		Dropped: fl.dropped.Load(), ReconnectFailed: fl.reconnectFail.Load(), FirstError: fl.firstError(),
		Foreign: track.foreign.Load(), Misrouted: track.misrouted.Load(),
		BadPayloads: track.badPayloads.Load(), AckErrors: track.ackErrors.Load(),
	}
	rep.LoadAverage1m[1] = loadAverage1m()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("push run interrupted: %w", err)
	}
	return rep, nil
}

// setLoad fills the answer and delivery figures from a finished load.
func (r *pushReport) setLoad(p *phase, load *loadResult, track *deliveries) {
	e2e := track.endToEnd(load.sched, load.records)
	f := load.figures(e2e)
	if p.server != nil {
		p.addUsage(&f, load)
	}
	r.Offered, r.Accepted, r.AcceptedPerSec = f.Offered, f.Accepted, f.AcceptedPerSec
	r.Refused, r.Errors, r.ErrorsByKind = f.Refused, f.Errors, f.ErrorsByKind
	r.AnswerMs, r.LoadSeconds = f.AnswerMs, f.LoadSeconds
	r.Process, r.BenchCPUSeconds = f.Process, f.BenchCPUSeconds

	c := countAcknowledged(load.sched, load.records, track, load.wall)
	d := &r.pushDelivery
	d.Acknowledged, d.Unacknowledged, d.Delivered = c.acknowledged, c.unacknowledged, c.delivered
	d.LastDeliverySeconds = c.lastDelivery.Seconds()
	d.AcknowledgedPerSec = perSecond(c.acknowledged, c.lastDelivery)
	d.AcknowledgedDuringLoad = c.duringLoad
	d.AcknowledgedDuringLoadPerSec = perSecond(c.duringLoad, load.wall)
	if r.AcceptedPerSec > 0 {
		d.DeliveryRatio = d.AcknowledgedPerSec / r.AcceptedPerSec
	}
	d.Duplicates = track.duplicates.Load()
	h := newHistogram()
	for _, latency := range e2e {
		if latency >= 0 {
			recordDuration(h, latency)
		}
	}
	d.E2EMs = summarize(h)
}

// waitAcknowledged returns once every accepted send of load was
// acknowledged, drain has passed or ctx is cancelled.
func waitAcknowledged(ctx context.Context, load *loadResult, track *deliveries, drain time.Duration) {
	deadline := time.NewTimer(drain)
	defer deadline.Stop()
	ticker := time.NewTicker(drainPoll)
	defer ticker.Stop()
	var cursor int64 // sends before cursor are acknowledged or were not accepted
	for {
		for cursor < load.sched.count &&
			(load.records.kinds[cursor] != outcomeAccepted || track.acked[cursor].Load()) {
			cursor++
		}
		if cursor == load.sched.count {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-ticker.C:
		}
	}
}

// loadAverage1m returns the machine's 1-minute load average, or -1 when
// /proc/loadavg cannot be read.
func loadAverage1m() float64 {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return -1
	}
	avg, err := fs.LoadAvg()
	if err != nil {
		return -1
	}
	return avg.Load1
}

// writePushOutputs prints the push report and writes it as JSON when
// --json names a file.
func writePushOutputs(cfg *config, r *pushReport, stdout io.Writer) error {
	if err := writePushTable(stdout, r); err != nil {
		return err
	}
	if cfg.jsonPath == "" {
		return nil
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the JSON report: %w", err)
	}
	if err := os.WriteFile(cfg.jsonPath, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write the JSON report: %w", err)
	}
	return nil
}

// writePushTable prints the push report as a plain-text table.
func writePushTable(w io.Writer, r *pushReport) error {
	s := r.Settings
	fmt.Fprintf(w, "\nPush: %d users connected throughout, %d clients, %g messages/s for %gs, drain up to %gs\n",
		s.Users, s.Clients, s.Rate, s.DurationSeconds, s.DrainSeconds)
	fmt.Fprintf(w, "Target: %s\n\n", r.Target)
	usage := "-"
	if p := r.Process; p != nil {
		usage = fmt.Sprintf("%.1f (%.2f), peak RSS %.0f MiB", p.CPUSeconds, p.CPUCores, float64(p.PeakRSSBytes)/(1<<20))
	}

	u := r.Users
	rows := [][2]string{
		{"accepted", fmt.Sprintf("%d of %d offered, %.0f/s over %.1fs", r.Accepted, r.Offered,
			r.AcceptedPerSec, r.LoadSeconds)},
		{"refused / errors", fmt.Sprintf("%d / %s", r.Refused, sortedCounts(r.ErrorsByKind))},
		{"answer ms p50/p99", fmt.Sprintf("%.2f / %.2f", r.AnswerMs.P50, r.AnswerMs.P99)},
		{"acknowledged", fmt.Sprintf("%d, %.0f/s over %.1fs (%.0f%% of accepted/s)", r.Acknowledged,
			r.AcknowledgedPerSec, r.LastDeliverySeconds, r.DeliveryRatio*100)},
		{"acknowledged during the load", fmt.Sprintf("%d, %.0f/s over %.1fs", r.AcknowledgedDuringLoad,
			r.AcknowledgedDuringLoadPerSec, r.LoadSeconds)},
		{"delivered / unacknowledged", fmt.Sprintf("%d / %d of %d accepted", r.Delivered, r.Unacknowledged,
			r.Accepted)},
		{"e2e ms p50/p90/p99/p99.9/max", e2eCell(r.E2EMs)},
		{"duplicates", fmt.Sprint(r.Duplicates)},
		{"drain s", fmt.Sprintf("%.1f", r.DrainSeconds)},
		{"users connected", fmt.Sprintf("%d of %d (%d failed, %d dropped)", u.Connected, u.Total,
			u.ConnectFailed, u.Dropped)},
		{"misrouted/bad/ack errors", fmt.Sprintf("%d / %d / %d", u.Misrouted, u.BadPayloads, u.AckErrors)},
		{"server CPU s (cores)", usage},
		{"bench CPU s", fmt.Sprintf("%.1f", r.BenchCPUSeconds)},
		{"load average 1m start/end", fmt.Sprintf("%.2f / %.2f", r.LoadAverage1m[0], r.LoadAverage1m[1])},
	}

	tw := newTabWriter(w)
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write the table: %w", err)
	}
	if u.FirstError != "" {
		fmt.Fprintf(w, "first user error: %s\n", u.FirstError)
	}
	for _, warning := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warning)
	}
	return nil
}

// validatePush checks the flags that the push mode adds to the load mode's.
func (c *config) validatePush() error {
	switch {
	case c.users < 1:
		return fmt.Errorf("--push needs --users of at least 1, not %d", c.users)
	case c.baseline || c.reportPath != "":
		return errors.New("--push does not run a baseline or write an HTML report; drop --baseline and --report")
	}
	return nil
}
