package autoscale

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// scaleOut starts a node, waits until it is ready and in a ring of members
// nodes, and adds it to every HAProxy backend. On failure the node is
// stopped and removed again.
func (s *Supervisor) scaleOut(ctx context.Context, members int) error {
	spec, args, err := s.prepare()
	if err != nil {
		return err
	}
	p, err := startProcess(spec, args)
	if err != nil {
		return err
	}
	s.log.Info("node starting", zap.String("node", spec.NodeID), zap.String("addr", spec.HTTPAddr()),
		zap.Int("pid", p.cmd.Process.Pid), zap.Int("members", members), zap.String("log", spec.LogFile))

	if err := s.admit(ctx, p, members); err != nil {
		s.removeServers(context.WithoutCancel(ctx), p)
		p.stop(context.WithoutCancel(ctx), s.cfg.Launch.StopTimeout)
		return fmt.Errorf("node %s stopped again, see %s: %w", spec.NodeID, spec.LogFile, err)
	}
	s.nodes = append(s.nodes, p)
	s.log.Info("node added", zap.String("node", spec.NodeID), zap.String("addr", spec.HTTPAddr()),
		zap.Int("nodes", len(s.cfg.Nodes)+len(s.nodes)))
	return nil
}

// prepare picks the next node's id and ports, writes its configuration,
// checks it and returns the command that starts the node.
func (s *Supervisor) prepare() (NodeSpec, []string, error) {
	spec, err := s.nextSpec()
	if err != nil {
		return NodeSpec{}, nil, err
	}
	args, err := renderCommand(s.cfg.Launch.Command, spec)
	if err != nil {
		return NodeSpec{}, nil, err
	}
	if err := writeNodeFiles(s.base, spec); err != nil {
		return NodeSpec{}, nil, err
	}
	if s.check != nil {
		if err := s.check(spec.NodeConfig); err != nil {
			return NodeSpec{}, nil, fmt.Errorf("node %s: %w", spec.NodeID, err)
		}
	}
	return spec, args, nil
}

// admit waits up to launch.ready_timeout for the node to be ready and in
// the ring, then for launch.settle, then adds it to HAProxy.
func (s *Supervisor) admit(ctx context.Context, p *nodeProcess, members int) error {
	wctx, cancel := context.WithTimeout(ctx, s.cfg.Launch.ReadyTimeout)
	defer cancel()
	if err := p.waitReady(wctx, s.http); err != nil {
		return err
	}
	if err := p.waitRing(wctx, members); err != nil {
		return err
	}
	if settle := s.cfg.Launch.Settle; settle > 0 {
		t := time.NewTimer(settle)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return s.addServers(ctx, p)
}

// scaleIn drains a started node in HAProxy, stops it with SIGTERM, so that
// it leaves the ring and hands its inboxes over, and deletes its servers
// once it has exited. HAProxy commands do not observe ctx, but the wait for
// the exit does: when ctx ends, the node is killed.
func (s *Supervisor) scaleIn(ctx context.Context, p *nodeProcess) {
	id := p.spec.NodeID
	s.log.Info("node removing", zap.String("node", id), zap.String("addr", p.spec.HTTPAddr()))
	hctx := context.WithoutCancel(ctx)
	s.drainServers(hctx, p)
	start := time.Now()
	if !p.stop(ctx, s.cfg.Launch.StopTimeout) {
		s.log.Error("node killed before its drain ended; its undelivered messages stay in its "+
			"data folder until a node with the same id starts again",
			zap.String("node", id), zap.String("dir", p.spec.DataDir),
			zap.Duration("stop_timeout", s.cfg.Launch.StopTimeout))
	}
	s.removeServers(hctx, p)
	s.forget(p)
	s.log.Info("node removed", zap.String("node", id), zap.Duration("took", time.Since(start)),
		zap.String("exit", p.exitError().Error()), zap.Int("nodes", len(s.cfg.Nodes)+len(s.nodes)))
}

// nextSpec returns the spec of the next node: the lowest free number, so
// that a node removed earlier comes back with its id and data folder, and
// anything it left there is handed on.
func (s *Supervisor) nextSpec() (NodeSpec, error) {
	var id string
	for n := 1; ; n++ {
		id = s.cfg.Launch.NamePrefix + "-" + strconv.Itoa(n)
		if !slices.ContainsFunc(s.nodes, func(p *nodeProcess) bool { return p.spec.NodeID == id }) {
			break
		}
	}
	seeds := slices.Clone(s.seeds)
	for _, p := range s.nodes {
		if g := p.spec.GossipAddr(); !slices.Contains(seeds, g) {
			seeds = append(seeds, g)
		}
	}
	spec := newSpec(s.cfg.Launch, s.binary, s.dir, id, seeds)
	var err error
	spec.HTTPPort, spec.AgentPort, spec.GossipPort, spec.PeerPort, err = pickPorts(spec.Host)
	if err != nil {
		return NodeSpec{}, err
	}
	return spec, nil
}
