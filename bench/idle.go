package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"time"
)

// Idle connection mode (--idle N): the node's memory per open, idle
// SignalR WebSocket connection, as an operator reads it from VmRSS. The
// bench forces no garbage collection in the node.
const (
	// idleConnectTimeout bounds the time to open all connections.
	idleConnectTimeout = 10 * time.Minute
	// idleSamplePeriod is how often the hold samples the node's memory and
	// open files.
	idleSamplePeriod = time.Second
	// maxIdleKeepAlive bounds --keep-alive, because the hold lasts 2.5
	// times as long.
	maxIdleKeepAlive = 10 * time.Minute
)

// idleHold returns how long the connections stay open before the memory is
// measured: two keep-alive intervals, so that each side pings at least
// once, and half an interval more. The hub looks for due pings at least
// every quarter interval, so its pings can go out up to that late.
func idleHold(keepAlive time.Duration) time.Duration {
	return 2*keepAlive + keepAlive/2
}

// idleReport contains every figure of an idle connection run. Memory
// figures are in bytes unless their name says KiB.
type idleReport struct {
	StartedAt        time.Time `json:"started_at"`
	Requested        int       `json:"requested"`
	KeepAliveSeconds float64   `json:"keep_alive_seconds"`
	HoldSeconds      float64   `json:"hold_seconds"`
	SettleSeconds    float64   `json:"settle_seconds"`
	SourceAddresses  int       `json:"source_addresses"` // 0: the system chose the source address

	Connected      int64   `json:"connected"`
	ConnectFailed  int64   `json:"connect_failed"`
	ConnectSeconds float64 `json:"connect_seconds"`
	// Dropped counts connections that ended before the bench closed them,
	// checked after the hold and again after the settle.
	Dropped    int64  `json:"dropped"`
	FirstError string `json:"first_error,omitempty"`
	// Open is Connected - Dropped after the hold: the connections that the
	// memory figures divide by.
	Open    int64       `json:"open"`
	Traffic holdTraffic `json:"hold_traffic"`
	// NodeConnections is the node's esh3artech_hub_connections gauge at the
	// end of the hold, -1 when it could not be read.
	NodeConnections int64 `json:"node_connections"`

	// The node's Go runtime gauges, read right after the matching VmRSS.
	RuntimeWithout   nodeRuntime `json:"runtime_without"`
	RuntimeConnected nodeRuntime `json:"runtime_connected"`
	RuntimeHeld      nodeRuntime `json:"runtime_held"`
	RuntimeSettled   nodeRuntime `json:"runtime_settled"`

	RSSWithout   uint64 `json:"rss_without_bytes"`   // after the first settle, before any connection
	RSSConnected uint64 `json:"rss_connected_bytes"` // right after the last connection completed
	RSSHeld      uint64 `json:"rss_held_bytes"`      // at the end of the hold
	RSSHoldMax   uint64 `json:"rss_hold_max_bytes"`  // largest sample during the hold
	RSSSettled   uint64 `json:"rss_settled_bytes"`   // one more settle after the hold
	PeakRSS      uint64 `json:"peak_rss_bytes"`      // VmHWM at the end

	KiBPerConnection        float64 `json:"kib_per_connection"`         // (RSSHeld - RSSWithout) / Open
	SettledKiBPerConnection float64 `json:"settled_kib_per_connection"` // (RSSSettled - RSSWithout) / Open

	NodeOpenFilesBefore int    `json:"node_open_files_before"`
	NodeOpenFilesPeak   int    `json:"node_open_files_peak"` // largest sample from the connect to the end of the hold
	NodeOpenFilesLimit  uint64 `json:"node_open_files_limit"`
	BenchOpenFilesPeak  int    `json:"bench_open_files_peak"`

	// LoadAverage1m is the machine's 1-minute load average from
	// /proc/loadavg at the start and at the end of the run.
	LoadAverage1m [2]float64 `json:"load_average_1m"`
	Warnings      []string   `json:"warnings,omitempty"`
}

// nodeRuntime contains the node's Go runtime gauges at one point of a run,
// -1 where they could not be read.
type nodeRuntime struct {
	HeapInuse  float64 `json:"heap_inuse_bytes"`
	StackInuse float64 `json:"stack_inuse_bytes"`
	Goroutines float64 `json:"goroutines"`
	// GCCycles counts the garbage collections since the node started. The
	// Go runtime starts one when none ran for 2 minutes (forcegcperiod in
	// runtime/proc.go of Go 1.26).
	GCCycles float64 `json:"gc_cycles"`
}

// kibPerConnection returns (with - without) / conns in KiB, negative when
// the resident set shrank, and 0 without connections.
func kibPerConnection(with, without uint64, conns int64) float64 {
	if conns <= 0 {
		return 0
	}
	return (float64(with) - float64(without)) / 1024 / float64(conns)
}

// complete reports whether every requested connection opened, stayed open
// and exchanged keep-alive traffic both ways during the hold.
func (r *idleReport) complete() bool {
	n := int64(r.Requested)
	return r.Connected == n && r.Dropped == 0 && r.Traffic.Receiving == n && r.Traffic.Sending == n
}

// runIdleMode runs the idle connection mode and writes its results. It
// returns the exit status: 1 when a connection failed, dropped or missed a
// keep-alive, as a lost message does in the load mode.
func runIdleMode(ctx context.Context, cfg *config, stdout, stderr io.Writer) int {
	rep, err := runIdle(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return exitSetup
	}
	if err := writeIdleOutputs(cfg, rep, stdout); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return exitSetup
	}
	if !rep.complete() {
		return exitLost
	}
	return exitOK
}

// runIdle builds and starts the node, measures its memory without
// connections, opens and holds the connections, and measures again.
func runIdle(ctx context.Context, cfg *config, log io.Writer) (*idleReport, error) {
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
	node, err := setup.startWithConfig(setup.idleConfig(cfg.keepAlive))
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "node listening on %s, data in %s\n", node.addr, setup.dir)
	m := &idleMeasure{cfg: cfg, setup: setup, node: node, log: log,
		metrics: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	rep, err := m.run(ctx)
	if stopErr := node.stop(); stopErr != nil {
		if err != nil {
			return nil, errors.Join(err, stopErr)
		}
		rep.Warnings = append(rep.Warnings, stopErr.Error())
	}
	return rep, err
}

// idleMeasure is one idle connection run against a started node.
type idleMeasure struct {
	cfg   *config
	setup *nodeSetup
	node  *child
	log   io.Writer
	rep   *idleReport
	fleet *idleFleet
	// metrics reads the node's /metrics on a new connection each time, so
	// that the node holds no extra connection between reads.
	metrics *http.Client
}

func (m *idleMeasure) run(ctx context.Context) (*idleReport, error) {
	cfg := m.cfg
	t, err := resolveTarget(ctx, "http://"+m.node.addr, m.setup.apiKey)
	if err != nil {
		return nil, err
	}
	sources, err := sourceAddrs(t, cfg.idle, cfg.sources)
	if err != nil {
		return nil, err
	}

	m.rep = &idleReport{
		StartedAt: time.Now().UTC(), Requested: cfg.idle, KeepAliveSeconds: cfg.keepAlive.Seconds(),
		HoldSeconds: idleHold(cfg.keepAlive).Seconds(), SettleSeconds: cfg.settle.Seconds(),
		SourceAddresses: len(sources), NodeConnections: -1,
	}
	m.rep.LoadAverage1m[0] = loadAverage1m()

	if m.fleet, err = newIdleFleet(t.url(cfg.hubPath), []byte(m.setup.jwtSecret), cfg.idle, sources,
		cfg.keepAlive); err != nil {
		return nil, err
	}
	defer m.fleet.close()

	if err := m.measureWithout(ctx); err != nil {
		return nil, err
	}
	m.connect(ctx)
	if err := m.hold(ctx); err != nil {
		return nil, err
	}
	if err := m.settle(ctx); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("idle run interrupted: %w", err)
	}
	m.rep.LoadAverage1m[1] = loadAverage1m()
	return m.rep, nil
}

// measureWithout waits --settle and reads the node's memory and open files
// before any connection.
func (m *idleMeasure) measureWithout(ctx context.Context) error {
	fmt.Fprintf(m.log, "settling for %s before measuring the node without connections\n", m.cfg.settle)
	if err := sleepContext(ctx, m.cfg.settle); err != nil {
		return err
	}
	var err error
	if m.rep.RSSWithout, err = m.node.residentSet(); err != nil {
		return err
	}
	m.rep.RuntimeWithout, _ = m.scrape(ctx)
	if m.rep.NodeOpenFilesBefore, err = m.node.openFiles(); err != nil {
		return err
	}
	m.rep.NodeOpenFilesLimit, err = m.node.openFilesLimit()
	return err
}

// connect opens the connections and reads the node's memory right after.
func (m *idleMeasure) connect(ctx context.Context) {
	r := m.rep
	fmt.Fprintf(m.log, "opening %d connections to %s\n", r.Requested, m.fleet.hubURL)
	cctx, cancel := context.WithTimeout(ctx, idleConnectTimeout)
	start := time.Now()
	m.fleet.connect(cctx)
	cancel()
	r.ConnectSeconds = time.Since(start).Seconds()
	r.Connected, r.ConnectFailed = m.fleet.connected(), m.fleet.failed.Load()
	r.FirstError = m.fleet.firstError()
	fmt.Fprintf(m.log, "%d of %d connections open after %.1fs\n", r.Connected, r.Requested, r.ConnectSeconds)
	if r.ConnectFailed > 0 {
		fmt.Fprintf(m.log, "%d connections failed; first error: %s\n", r.ConnectFailed, r.FirstError)
	}
	m.sampleOpenFiles()
	if rss, err := m.node.residentSet(); err == nil {
		r.RSSConnected = rss
	} else {
		r.Warnings = append(r.Warnings, err.Error())
	}
	r.RuntimeConnected, _ = m.scrape(ctx)
}

// hold keeps the connections open for idleHold, sampling the node's memory
// and open files, then takes the figures at the end of the hold.
func (m *idleMeasure) hold(ctx context.Context) error {
	r := m.rep
	hold := idleHold(m.cfg.keepAlive)
	fmt.Fprintf(m.log, "holding the connections for %s (keep-alive %s)\n", hold, m.cfg.keepAlive)
	before := m.fleet.traffic()
	end := time.Now().Add(hold)
	for time.Now().Before(end) {
		if err := sleepContext(ctx, min(idleSamplePeriod, time.Until(end))); err != nil {
			return err
		}
		m.sampleOpenFiles()
		if rss, err := m.node.residentSet(); err == nil {
			r.RSSHoldMax = max(r.RSSHoldMax, rss)
		}
	}
	var err error
	if r.RSSHeld, err = m.node.residentSet(); err != nil {
		return err
	}
	r.RSSHoldMax = max(r.RSSHoldMax, r.RSSHeld)
	r.RuntimeHeld, r.NodeConnections = m.scrape(ctx)
	r.Traffic = countHoldTraffic(before, m.fleet.traffic())
	dropped, firstDrop := m.fleet.dropped()
	r.Dropped, r.Open = dropped, r.Connected-dropped
	if firstDrop != "" && r.FirstError == "" {
		r.FirstError = firstDrop
	}
	r.KiBPerConnection = kibPerConnection(r.RSSHeld, r.RSSWithout, r.Open)
	return nil
}

// scrape reads the node's Go runtime gauges and its hub connection count
// from /metrics, with -1 for what it could not read.
func (m *idleMeasure) scrape(ctx context.Context) (nodeRuntime, int64) {
	rt := nodeRuntime{HeapInuse: -1, StackInuse: -1, Goroutines: -1, GCCycles: -1}
	values, err := readGauges(ctx, m.metrics, "http://"+m.node.addr+"/metrics",
		heapInuseMetric, stackInuseMetric, goroutinesMetric, gcCyclesMetric, hubConnectionsMetric)
	if err != nil {
		m.rep.Warnings = append(m.rep.Warnings, err.Error())
		return rt, -1
	}
	get := func(name string) float64 {
		if v, ok := values[name]; ok {
			return v
		}
		return -1
	}
	rt.HeapInuse, rt.StackInuse, rt.Goroutines = get(heapInuseMetric), get(stackInuseMetric), get(goroutinesMetric)
	rt.GCCycles = get(gcCyclesMetric)
	return rt, int64(get(hubConnectionsMetric))
}

// settle waits --settle more with the connections open, then reads the
// node's memory again and checks for connections that dropped meanwhile.
func (m *idleMeasure) settle(ctx context.Context) error {
	r := m.rep
	fmt.Fprintf(m.log, "settling for %s with the connections open\n", m.cfg.settle)
	if err := sleepContext(ctx, m.cfg.settle); err != nil {
		return err
	}
	var err error
	if r.RSSSettled, err = m.node.residentSet(); err != nil {
		return err
	}
	r.RuntimeSettled, _ = m.scrape(ctx)
	if r.PeakRSS, err = m.node.peakRSS(); err != nil {
		return err
	}
	r.SettledKiBPerConnection = kibPerConnection(r.RSSSettled, r.RSSWithout, r.Open)
	dropped, firstDrop := m.fleet.dropped()
	if dropped > r.Dropped {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d more connections dropped during the settle; "+
			"the settled figure still divides by the %d open after the hold", dropped-r.Dropped, r.Open))
		r.Dropped = dropped
		if r.FirstError == "" {
			r.FirstError = firstDrop
		}
	}
	return nil
}

// sampleOpenFiles records the largest open file counts of the node and of
// the bench.
func (m *idleMeasure) sampleOpenFiles() {
	r := m.rep
	if n, err := m.node.openFiles(); err == nil {
		r.NodeOpenFilesPeak = max(r.NodeOpenFilesPeak, n)
	}
	if n, err := selfOpenFiles(); err == nil {
		r.BenchOpenFilesPeak = max(r.BenchOpenFilesPeak, n)
	}
}

// sleepContext waits d or until ctx is cancelled.
func sleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// writeIdleOutputs prints the idle report and writes it as JSON when
// --json names a file.
func writeIdleOutputs(cfg *config, r *idleReport, stdout io.Writer) error {
	if err := writeIdleTable(stdout, r); err != nil {
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

// writeIdleTable prints the idle report as a plain-text table.
func writeIdleTable(w io.Writer, r *idleReport) error {
	sources := "the system's choice"
	if r.SourceAddresses > 0 {
		sources = fmt.Sprintf("%d loopback addresses", r.SourceAddresses)
	}
	fmt.Fprintf(w, "\nIdle connections: %d requested, keep-alive %gs, hold %gs, settle %gs, source: %s\n\n",
		r.Requested, r.KeepAliveSeconds, r.HoldSeconds, r.SettleSeconds, sources)

	mib := func(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	perConn := func(b uint64) string {
		return fmt.Sprintf("%.1f KiB", kibPerConnection(b, r.RSSWithout, r.Open))
	}
	nodeConns := "not read"
	if r.NodeConnections >= 0 {
		nodeConns = fmt.Sprint(r.NodeConnections)
	}

	rows := [][2]string{
		{"connected", fmt.Sprintf("%d of %d in %.1fs (%d failed)", r.Connected, r.Requested,
			r.ConnectSeconds, r.ConnectFailed)},
		{"open after the hold", fmt.Sprintf("%d (%d dropped)", r.Open, r.Dropped)},
		{"traffic during the hold", fmt.Sprintf("%d connections read, %d wrote; %d bytes read, %d written",
			r.Traffic.Receiving, r.Traffic.Sending, r.Traffic.BytesRead, r.Traffic.BytesWritten)},
		{"node hub connections", nodeConns},
		{"node RSS without connections", mib(r.RSSWithout)},
		{"node RSS after connecting", fmt.Sprintf("%s (%s per connection)", mib(r.RSSConnected), perConn(r.RSSConnected))},
		{"node RSS max during the hold", fmt.Sprintf("%s (%s per connection)", mib(r.RSSHoldMax), perConn(r.RSSHoldMax))},
		{"node RSS after the hold", fmt.Sprintf("%s (%.1f KiB per connection)", mib(r.RSSHeld), r.KiBPerConnection)},
		{"node RSS after the settle", fmt.Sprintf("%s (%.1f KiB per connection)", mib(r.RSSSettled),
			r.SettledKiBPerConnection)},
		{"node peak RSS (VmHWM)", mib(r.PeakRSS)},
		{"node heap in use " + runtimePoints, runtimeCell(r, func(rt nodeRuntime) float64 { return rt.HeapInuse }, "KiB")},
		{"node stacks in use " + runtimePoints, runtimeCell(r, func(rt nodeRuntime) float64 { return rt.StackInuse }, "KiB")},
		{"node goroutines " + runtimePoints, runtimeCell(r, func(rt nodeRuntime) float64 { return rt.Goroutines }, "")},
		{"node GC cycles so far " + runtimePoints, runtimeCell(r, func(rt nodeRuntime) float64 { return rt.GCCycles }, "count")},
		{"node open files", fmt.Sprintf("%d before, %d at peak, limit %d", r.NodeOpenFilesBefore,
			r.NodeOpenFilesPeak, r.NodeOpenFilesLimit)},
		{"bench open files at peak", fmt.Sprint(r.BenchOpenFilesPeak)},
		{"load average 1m start/end", fmt.Sprintf("%.2f / %.2f", r.LoadAverage1m[0], r.LoadAverage1m[1])},
	}

	tw := newTabWriter(w)
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write the table: %w", err)
	}
	if r.FirstError != "" {
		fmt.Fprintf(w, "first connection error: %s\n", r.FirstError)
	}
	for _, warning := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warning)
	}
	return nil
}

// runtimePoints names the four points of a run at which the bench reads the
// node's runtime gauges.
const runtimePoints = "(without / connected / held / settled)"

// runtimeCell formats one runtime gauge at the runtimePoints, and its
// growth per open connection after the hold. unit "KiB" formats bytes as
// MiB and the growth as KiB, and unit "count" leaves the growth out.
func runtimeCell(r *idleReport, get func(nodeRuntime) float64, unit string) string {
	points := []float64{get(r.RuntimeWithout), get(r.RuntimeConnected), get(r.RuntimeHeld), get(r.RuntimeSettled)}
	if slices.Min(points) < 0 || r.Open <= 0 {
		return "not read"
	}
	perConn := (points[2] - points[0]) / float64(r.Open)
	switch unit {
	case "KiB":
		return fmt.Sprintf("%.1f / %.1f / %.1f / %.1f MiB (%.2f KiB per connection after the hold)",
			points[0]/(1<<20), points[1]/(1<<20), points[2]/(1<<20), points[3]/(1<<20), perConn/1024)
	case "count":
		return fmt.Sprintf("%.0f / %.0f / %.0f / %.0f", points[0], points[1], points[2], points[3])
	}
	return fmt.Sprintf("%.0f / %.0f / %.0f / %.0f (%.2f per connection after the hold)",
		points[0], points[1], points[2], points[3], perConn)
}

// validateIdle checks the flags of the idle connection mode.
func (c *config) validateIdle() error {
	switch {
	case c.target != "":
		return errors.New("--idle measures a node that the bench starts, so it cannot be used with --target")
	case c.push:
		return errors.New("--idle and --push are separate modes; give one of them")
	case c.baseline || c.reportPath != "":
		return errors.New("--idle does not run a baseline or write an HTML report; drop --baseline and --report")
	case c.keepAlive <= 0 || c.keepAlive > maxIdleKeepAlive:
		return fmt.Errorf("--keep-alive %s must be above zero and at most %s", c.keepAlive, maxIdleKeepAlive)
	case c.settle < 0:
		return fmt.Errorf("--settle %s must not be negative", c.settle)
	case c.sources < 0:
		return fmt.Errorf("--sources %d must not be negative", c.sources)
	}
	return checkFileLimit(0, c.idle)
}
