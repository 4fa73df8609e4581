package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

// execute runs the baseline phase when asked, then the node phase, and
// returns the report of both. Without --target it builds the relay first,
// so that a build failure ends the run before any load.
func execute(ctx context.Context, cfg *config, log io.Writer) (*report, error) {
	rep := newReport(cfg)
	var setup *nodeSetup
	if cfg.target == "" {
		fmt.Fprintln(log, "preparing the relay")
		var err error
		if setup, err = newNodeSetup(ctx, cfg.nodeBin); err != nil {
			return nil, err
		}
		defer func() {
			if err := setup.remove(); err != nil {
				fmt.Fprintf(log, "bench: %v\n", err)
			}
		}()
	}
	if cfg.baseline {
		res, err := runBaseline(ctx, cfg, log)
		if err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		rep.Baseline = &res.answers
	}
	res, err := runNode(ctx, cfg, setup, log)
	if err != nil {
		return nil, err
	}
	rep.setNode(res)
	return rep, nil
}

// runBaseline loads a bare net/http server started as a separate process.
func runBaseline(ctx context.Context, cfg *config, log io.Writer) (*phaseResult, error) {
	srv, err := startBaseline()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "baseline server listening on %s\n", srv.addr)
	t, err := resolveTarget(ctx, "http://"+srv.addr, "baseline")
	if err != nil {
		_ = srv.stop()
		return nil, err
	}
	p := &phase{cfg: cfg, name: "baseline", target: t, server: srv, log: log}
	res, err := p.run(ctx)
	stopErr := srv.stop()
	if err != nil {
		return nil, err
	}
	if stopErr != nil {
		res.warnings = append(res.warnings, stopErr.Error())
	}
	return res, nil
}

// runNode loads --target, or else starts the node of setup.
func runNode(ctx context.Context, cfg *config, setup *nodeSetup, log io.Writer) (*phaseResult, error) {
	if setup == nil {
		t, err := resolveTarget(ctx, cfg.target, cfg.apiKey)
		if err != nil {
			return nil, err
		}
		p := &phase{cfg: cfg, name: "node", target: t, jwtSecret: cfg.jwtSecret, users: cfg.users, log: log}
		return p.run(ctx)
	}
	node, err := setup.start(cfg.rate)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "node listening on %s, data in %s\n", node.addr, setup.dir)
	return runStartedNode(ctx, cfg, setup, node, log)
}

func runStartedNode(ctx context.Context, cfg *config, setup *nodeSetup, node *child, log io.Writer) (*phaseResult, error) {
	t, err := resolveTarget(ctx, "http://"+node.addr, setup.apiKey)
	if err != nil {
		_ = node.stop()
		return nil, err
	}
	p := &phase{cfg: cfg, name: "node", target: t, jwtSecret: setup.jwtSecret, users: cfg.users,
		server: node, log: log}
	res, err := p.run(ctx)
	stopErr := node.stop()
	if err != nil {
		return nil, err
	}
	if stopErr != nil {
		res.warnings = append(res.warnings, stopErr.Error())
	}
	res.serverErrorLogs = node.errorLogCount()
	return res, nil
}

// phase is one load of one server: the baseline or the node.
type phase struct {
	cfg       *config
	name      string
	target    *target
	jwtSecret string
	users     int    // 0: no mobile users, delivery is not measured
	server    *child // nil for --target
	log       io.Writer
}

// phaseResult holds what a phase measured.
type phaseResult struct {
	answers         answerFigures
	delivery        deliveryFigures
	warnings        []string
	serverErrorLogs int
}

// run connects the users that are online during the load, opens the
// business connections, runs the schedule, then lets the offline users
// connect, waits for deliveries and classifies what was not delivered.
func (p *phase) run(ctx context.Context) (*phaseResult, error) {
	plan, err := newMessagePlan(p.cfg.sends(), p.users, p.cfg.offline, p.seed())
	if err != nil {
		return nil, err
	}
	m := newMobilePhase(p, plan)
	usersCtx, stopUsers := context.WithCancel(ctx)
	defer func() {
		stopUsers()
		m.wait()
	}()
	m.connectOnline(usersCtx)
	load, err := p.load(ctx, plan)
	if err != nil {
		return nil, err
	}
	res := &phaseResult{}
	var e2e []time.Duration
	if p.users > 0 {
		res.delivery, e2e = m.finish(ctx, usersCtx, load)
	}
	res.answers = load.figures(e2e)
	if p.server != nil {
		p.addUsage(&res.answers, load)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s phase interrupted: %w", p.name, err)
	}
	return res, nil
}

func (p *phase) seed() uint64 {
	if p.cfg.seed != 0 {
		return uint64(p.cfg.seed)
	}
	return uint64(time.Now().UnixNano())
}

// loadResult is the outcome of a load: every send's record and the CPU time
// of the server and of the bench meanwhile.
type loadResult struct {
	sched      schedule
	records    *records
	wall       time.Duration
	cpuSeconds float64
	cpuErr     error
	// benchCPUSeconds is the bench's own CPU time during the load.
	benchCPUSeconds float64
}

// load opens the business connections and runs the schedule over them.
func (p *phase) load(ctx context.Context, plan *messagePlan) (*loadResult, error) {
	sources, err := sourceAddrs(p.target, p.cfg.clients, p.cfg.sources)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(p.log, "%s: opening %d connections to %s\n", p.name, p.cfg.clients, p.target.addr)
	clients, err := dialClients(ctx, p.cfg.clients, p.target, sources, plan, p.cfg.timeout)
	if err != nil {
		return nil, err
	}
	defer closeClients(clients)
	senders := make([]sender, len(clients))
	for i, c := range clients {
		senders[i] = c
	}
	sched := schedule{start: time.Now().Add(50 * time.Millisecond), rate: p.cfg.rate, count: p.cfg.sends()}
	l := &loadRun{sched: sched, clock: wallClock{}, lateLimit: p.cfg.timeout,
		records: newRecords(sched.count), live: &liveCounters{}}
	res := &loadResult{sched: sched, records: l.records}
	cpuBefore, cpuErr := p.serverCPU()
	benchBefore := selfCPUSeconds()
	bar := startProgress(p.progressWriter(), p.name, sched.count, l.live)
	l.run(ctx, senders)
	bar.finish()
	res.wall = time.Since(sched.start)
	res.benchCPUSeconds = selfCPUSeconds() - benchBefore
	cpuAfter, err := p.serverCPU()
	res.cpuSeconds, res.cpuErr = cpuAfter-cpuBefore, firstError(cpuErr, err)
	return res, nil
}

func (p *phase) progressWriter() io.Writer {
	if p.cfg.quiet {
		return nil
	}
	return p.log
}

func (p *phase) serverCPU() (float64, error) {
	if p.server == nil {
		return 0, nil
	}
	return p.server.cpuSeconds()
}

// addUsage sets the server's CPU time during the load and its peak memory.
func (p *phase) addUsage(f *answerFigures, load *loadResult) {
	if load.cpuErr != nil {
		fmt.Fprintf(p.log, "bench: %s CPU time not measured: %v\n", p.name, load.cpuErr)
		return
	}
	usage := &processUsage{CPUSeconds: load.cpuSeconds, CPUCores: load.cpuSeconds / load.wall.Seconds()}
	rss, err := p.server.peakRSS()
	if err != nil {
		fmt.Fprintf(p.log, "bench: %s memory not measured: %v\n", p.name, err)
	}
	usage.PeakRSSBytes = rss
	f.Process = usage
}

func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
