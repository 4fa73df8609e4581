package autoscale

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Options are the parts of a Supervisor that come from its caller rather
// than from the configuration file.
type Options struct {
	// Binary is the relay executable that {{.Binary}} names when
	// launch.binary is empty.
	Binary string
	// CheckNodeConfig validates a node configuration file as the node would
	// load it. New checks the base configuration with it, and every start
	// checks the node's file. Nil skips the check.
	CheckNodeConfig func(path string) error
}

// Supervisor adds and removes nodes by their load. Run and Shutdown must
// be called from one goroutine, Shutdown after Run has returned.
type Supervisor struct {
	cfg     *Config
	log     *zap.Logger
	haproxy *RuntimeAPI
	http    *http.Client
	decider *Decider
	check   func(path string) error
	now     func() time.Time
	// retryWait is the wait between attempts of "del server".
	retryWait time.Duration

	base   []byte   // launch.base_config
	seeds  []string // launch.seeds, or cluster.seeds of the base config
	binary string
	dir    string // launch.dir, absolute

	nodes       []*nodeProcess  // started nodes in HAProxy, in start order
	unreachable map[string]bool // nodes whose last load read failed
}

// New returns a supervisor for cfg. It reads and checks the base node
// configuration.
func New(cfg *Config, log *zap.Logger, opts Options) (*Supervisor, error) {
	s := &Supervisor{
		cfg: cfg, log: log, haproxy: NewRuntimeAPI(cfg.HAProxy.Socket, cfg.HAProxy.Timeout),
		http:    &http.Client{Timeout: cfg.ScrapeTimeout},
		decider: NewDecider(policyFromConfig(cfg)), check: opts.CheckNodeConfig, now: time.Now,
		retryWait: delServerWait,
		binary:    cfg.Launch.Binary, unreachable: map[string]bool{},
	}
	if s.binary == "" {
		s.binary = opts.Binary
	}
	var err error
	if s.dir, err = filepath.Abs(cfg.Launch.Dir); err != nil {
		return nil, fmt.Errorf("autoscale: launch.dir: %w", err)
	}
	if s.base, err = os.ReadFile(cfg.Launch.BaseConfig); err != nil {
		return nil, fmt.Errorf("autoscale: launch.base_config: %w", err)
	}
	s.seeds = cfg.Launch.Seeds
	if len(s.seeds) == 0 {
		if s.seeds, err = baseSeeds(s.base); err != nil {
			return nil, fmt.Errorf("autoscale: %w", err)
		}
	}
	if len(s.seeds) == 0 && len(cfg.Nodes) > 0 {
		return nil, errors.New("autoscale: launch.seeds: missing, and launch.base_config sets no " +
			"cluster.seeds; give the gossip address of at least one node in nodes")
	}
	if err := s.checkBase(); err != nil {
		return nil, err
	}
	return s, nil
}

// checkBase checks the configuration that a started node would get, in a
// temporary folder.
func (s *Supervisor) checkBase() error {
	if s.check == nil {
		return nil
	}
	tmp, err := os.MkdirTemp("", "esh3artech-autoscale-")
	if err != nil {
		return fmt.Errorf("autoscale: check launch.base_config: %w", err)
	}
	defer os.RemoveAll(tmp)
	spec := newSpec(s.cfg.Launch, s.binary, tmp, s.cfg.Launch.NamePrefix+"-1", s.seeds)
	spec.HTTPPort, spec.AgentPort, spec.GossipPort, spec.PeerPort = 1, 2, 3, 4
	if err := writeNodeFiles(s.base, spec); err != nil {
		return fmt.Errorf("autoscale: %w", err)
	}
	if err := s.check(spec.NodeConfig); err != nil {
		return fmt.Errorf("autoscale: launch.base_config %s: %w", s.cfg.Launch.BaseConfig, err)
	}
	return nil
}

// Run reads the loads every interval and acts on the decisions until ctx
// ends. It returns an error only when HAProxy is unusable at the start.
// Nodes that Run started keep running until Shutdown.
func (s *Supervisor) Run(ctx context.Context) error {
	if err := s.checkHAProxy(ctx); err != nil {
		return err
	}
	s.log.Info("autoscale supervisor started", zap.Strings("nodes", s.cfg.Nodes),
		zap.Int("min_nodes", s.cfg.MinNodes), zap.Int("max_nodes", s.cfg.MaxNodes),
		zap.Duration("interval", s.cfg.Interval))
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.tick(ctx)
		}
	}
}

// Shutdown stops every node the supervisor started, newest first, draining
// each as scale-in does. When ctx ends, the nodes still running are killed
// without waiting for their drain.
func (s *Supervisor) Shutdown(ctx context.Context) {
	s.log.Info("autoscale supervisor stopping", zap.Int("started_nodes", len(s.nodes)))
	for len(s.nodes) > 0 {
		s.scaleIn(ctx, s.nodes[len(s.nodes)-1])
	}
	s.log.Info("autoscale supervisor stopped")
}

// checkHAProxy reads every backend's servers and rejects a server named
// like a node the supervisor starts. Such a server is left from an earlier
// run that did not stop cleanly, and its node may still run on the data
// folder that the next node of that name would use.
func (s *Supervisor) checkHAProxy(ctx context.Context) error {
	own := regexp.MustCompile(`^` + regexp.QuoteMeta(s.cfg.Launch.NamePrefix) + `-[0-9]+$`)
	for _, b := range s.cfg.HAProxy.Backends {
		names, err := s.haproxy.ServerNames(ctx, b.Name)
		if err != nil {
			return fmt.Errorf("autoscale: read servers of haproxy backend %s: %w", b.Name, err)
		}
		for _, name := range names {
			if own.MatchString(name) {
				return fmt.Errorf("autoscale: haproxy backend %s has server %s from an earlier run; "+
					"stop that node, then run \"set server %s/%s state maint\" and \"del server %s/%s\"",
					b.Name, name, b.Name, name, b.Name, name)
			}
		}
	}
	return nil
}

// tick runs one interval: it drops nodes that exited, reads the loads,
// decides and acts.
func (s *Supervisor) tick(ctx context.Context) {
	s.reapExited(ctx)
	loads := s.readLoads(ctx)
	sample := Sample{Loads: loads, Nodes: len(s.cfg.Nodes) + len(s.nodes), Removable: len(s.nodes)}
	d := s.decider.Decide(s.now(), sample)
	s.logDecision(d, loads)
	switch d.Action {
	case ScaleOut:
		if err := s.scaleOut(ctx, len(loads)+1); err != nil {
			s.log.Error("scale-out failed", zap.Error(err))
		}
	case ScaleIn:
		s.scaleIn(context.WithoutCancel(ctx), s.pickRemovable(loads))
	default:
		return
	}
	s.decider.Acted(s.now())
}

func (s *Supervisor) logDecision(d Decision, loads []NodeLoad) {
	perNode := make(map[string]float64, len(loads))
	for _, l := range loads {
		perNode[l.Node] = l.Load
	}
	fields := []zap.Field{
		zap.String("action", d.Action.String()), zap.String("reason", d.Reason),
		zap.Float64("average", d.Average), zap.Any("loads", perNode),
		zap.Duration("held_for", d.HeldFor), zap.Duration("window", d.Window), zap.Int("nodes", d.Nodes),
	}
	if d.Action == Hold {
		s.log.Debug("autoscale decision", fields...)
		return
	}
	s.log.Info("autoscale decision", fields...)
}

// readLoads reads every node's load at once. Nodes whose read fails are
// left out, and a node's change between failing and not is logged once.
func (s *Supervisor) readLoads(ctx context.Context) []NodeLoad {
	type target struct{ name, addr string }
	var targets []target
	for _, addr := range s.cfg.Nodes {
		targets = append(targets, target{addr, addr})
	}
	for _, p := range s.nodes {
		targets = append(targets, target{p.spec.NodeID, p.spec.HTTPAddr()})
	}
	results := make([]float64, len(targets))
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			results[i], errs[i] = ReadLoad(ctx, s.http, t.addr)
		})
	}
	wg.Wait()
	var loads []NodeLoad
	for i, t := range targets {
		s.noteReachable(t.name, t.addr, errs[i])
		if errs[i] == nil {
			loads = append(loads, NodeLoad{Node: t.name, Load: results[i]})
		}
	}
	return loads
}

func (s *Supervisor) noteReachable(name, addr string, err error) {
	switch {
	case err != nil && !s.unreachable[name]:
		s.unreachable[name] = true
		s.log.Warn("node load unreadable", zap.String("node", name), zap.String("addr", addr), zap.Error(err))
	case err == nil && s.unreachable[name]:
		delete(s.unreachable, name)
		s.log.Info("node load readable again", zap.String("node", name), zap.String("addr", addr))
	}
}

// pickRemovable returns the started node to stop: one whose load was not
// read, else the least loaded, the newest on a tie.
func (s *Supervisor) pickRemovable(loads []NodeLoad) *nodeProcess {
	load := func(p *nodeProcess) float64 {
		for _, l := range loads {
			if l.Node == p.spec.NodeID {
				return l.Load
			}
		}
		return -1
	}
	best := s.nodes[len(s.nodes)-1]
	for _, p := range slices.Backward(s.nodes) {
		if load(p) < load(best) {
			best = p
		}
	}
	return best
}

// reapExited removes the started nodes that exited without being asked.
func (s *Supervisor) reapExited(ctx context.Context) {
	for _, p := range slices.Clone(s.nodes) {
		if !p.exited() {
			continue
		}
		s.log.Error("node exited unexpectedly", zap.String("node", p.spec.NodeID),
			zap.String("log", p.spec.LogFile), zap.Error(p.exitError()))
		s.removeServers(context.WithoutCancel(ctx), p)
		s.forget(p)
	}
}

func (s *Supervisor) forget(p *nodeProcess) {
	s.nodes = slices.DeleteFunc(s.nodes, func(q *nodeProcess) bool { return q == p })
	delete(s.unreachable, p.spec.NodeID)
}
