package autoscale

import (
	"context"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Bounds of the retries of "del server", which HAProxy rejects while the
// server still holds connections, idle ones included: 40 attempts 250ms
// apart.
const (
	delServerAttempts = 40
	delServerWait     = 250 * time.Millisecond
)

// addServers adds the node to every backend with that backend's options
// and enables it: HAProxy 2.6 adds a server in maintenance with its checks
// off. On failure it deletes what it added and returns the error.
func (s *Supervisor) addServers(ctx context.Context, p *nodeProcess) error {
	name := p.spec.NodeID
	for _, b := range s.cfg.HAProxy.Backends {
		opts, err := renderTemplate(b.Options, p.spec)
		if err != nil {
			return err
		}
		words := strings.Fields(opts)
		srv := addedServer{backend: b.Name, health: slices.Contains(words, "check"),
			agent: slices.Contains(words, "agent-check")}
		if err := s.haproxy.AddServer(ctx, b.Name, name, p.spec.HTTPAddr(), opts); err != nil {
			return err
		}
		p.servers = append(p.servers, srv)
		if err := s.enableServer(ctx, srv, name); err != nil {
			return err
		}
		s.log.Info("haproxy server added", zap.String("node", name), zap.String("backend", b.Name),
			zap.String("addr", p.spec.HTTPAddr()), zap.String("options", opts))
	}
	return nil
}

func (s *Supervisor) enableServer(ctx context.Context, srv addedServer, name string) error {
	if srv.health {
		if err := s.haproxy.Toggle(ctx, true, "health", srv.backend, name); err != nil {
			return err
		}
	}
	if srv.agent {
		if err := s.haproxy.Toggle(ctx, true, "agent", srv.backend, name); err != nil {
			return err
		}
	}
	return s.haproxy.Toggle(ctx, true, "server", srv.backend, name)
}

// drainServers sets the node's servers to drain, so that HAProxy sends it
// no new connections while established ones finish.
func (s *Supervisor) drainServers(ctx context.Context, p *nodeProcess) {
	for _, srv := range p.servers {
		if err := s.haproxy.SetState(ctx, srv.backend, p.spec.NodeID, "drain"); err != nil {
			s.log.Warn("haproxy drain failed", zap.String("node", p.spec.NodeID),
				zap.String("backend", srv.backend), zap.Error(err))
		}
	}
}

// removeServers deletes the node's servers. The agent check goes off
// first, because the HAProxy 2.6 management guide warns that an agent can
// take a server out of maintenance again. The health check, maintenance
// and the deletion follow. Failures are logged, not returned, because the
// node is gone either way and an operator can delete a server by hand.
func (s *Supervisor) removeServers(ctx context.Context, p *nodeProcess) {
	name := p.spec.NodeID
	for _, srv := range p.servers {
		log := s.log.With(zap.String("node", name), zap.String("backend", srv.backend))
		if srv.agent {
			if err := s.haproxy.Toggle(ctx, false, "agent", srv.backend, name); err != nil {
				log.Warn("haproxy disable agent failed", zap.Error(err))
			}
		}
		if srv.health {
			if err := s.haproxy.Toggle(ctx, false, "health", srv.backend, name); err != nil {
				log.Warn("haproxy disable health failed", zap.Error(err))
			}
		}
		if err := s.haproxy.SetState(ctx, srv.backend, name, "maint"); err != nil {
			log.Warn("haproxy maintenance failed", zap.Error(err))
		}
		if err := s.delServer(ctx, srv.backend, name); err != nil {
			log.Error("haproxy server not deleted; delete it by hand", zap.Error(err))
			continue
		}
		log.Info("haproxy server deleted")
	}
	p.servers = nil
}

// delServer runs "del server", retrying while HAProxy reports that the
// server still has connections.
func (s *Supervisor) delServer(ctx context.Context, backend, name string) error {
	var err error
	for range delServerAttempts {
		err = s.haproxy.DelServer(ctx, backend, name)
		if err == nil || !IsCommandError(err) || !strings.Contains(err.Error(), "connection") {
			return err
		}
		t := time.NewTimer(s.retryWait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
	return err
}
