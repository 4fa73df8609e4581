package app

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"go.uber.org/zap"
)

// preferOthersAt is the load above which HAProxy should send new work to
// other nodes: the agent-check weight starts to fall there.
const preferOthersAt = 0.8

// load returns the share of the node's own capacity in use: the largest of
// API requests in progress against limits.max_in_flight, the queue against
// limits.queue_high_water, and hub connections against
// limits.max_connections. It is not the machine's CPU, which other nodes
// on the same machine share. 1 means full; it can exceed 1.
func (n *Node) load() float64 {
	l := n.limits.limits()
	return max(
		float64(n.limits.inFlight.Load())/float64(l.MaxInFlight),
		float64(n.store.QueueDepth())/float64(l.QueueHighWater),
		float64(n.hub.ConnCount())/float64(l.MaxConnections),
	)
}

// agentWeight maps a load to the weight, in percent, that HAProxy's agent
// check applies: full weight up to preferOthersAt, then falling linearly to
// 1% at full load.
func agentWeight(load float64) int {
	if load <= preferOthersAt {
		return 100
	}
	w := 100 * (1 - load) / (1 - preferOthersAt)
	return int(math.Max(1, math.Round(w)))
}

// agentReply returns the agent-check reply: "drain" while shutting down,
// else "up ready" and the weight.
func (n *Node) agentReply() string {
	if n.draining.Load() {
		return "drain\n"
	}
	if len(n.notReadyReasons()) > 0 {
		return "up ready 1%\n"
	}
	return fmt.Sprintf("up ready %d%%\n", agentWeight(n.load()))
}

// servePprof serves the Go profiler on health.pprof_listen until the node
// stops.
func (n *Node) servePprof() error {
	addr := n.cfg.Health.PprofListen
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("app: listen on health.pprof_listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	n.log.Info("profiler listening", zap.String("addr", ln.Addr().String()))
	n.goLoop(func() { _ = srv.Serve(ln) })
	n.goLoop(func() {
		<-n.stop
		_ = srv.Close()
	})
	return nil
}

// serveAgentCheck serves HAProxy's agent checks on ln until it is closed:
// each connection gets one line and is closed.
func (n *Node) serveAgentCheck(ln net.Listener) {
	backoff := time.Duration(0)
	for {
		conn, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of files, for example: back off as net/http does, so the
			// loop neither spins nor floods the log.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			if backoff == time.Second {
				n.log.Warn("agent-check accept failed", zap.Error(err))
			}
			select {
			case <-n.stop:
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = conn.Write([]byte(n.agentReply()))
		_ = conn.Close()
	}
}

// pressureReasons lists the limits the node is past, for readiness.
func (n *Node) pressureReasons() []string {
	var reasons []string
	l := n.limits.limits()
	if q := n.store.QueueDepth(); q >= l.QueueHighWater {
		reasons = append(reasons, fmt.Sprintf("queue: %d messages waiting to be routed, "+
			"at or above the high-water mark of %d", q, l.QueueHighWater))
	}
	if n.store.Stalled() {
		reasons = append(reasons, "storage: Pebble is stalling writes")
	}
	if min := n.cfg.Storage.MinFreeDisk; min > 0 {
		if free, err := n.store.FreeDisk(); err == nil && free < min {
			reasons = append(reasons, fmt.Sprintf("disk: %d bytes free, below the minimum of %d",
				free, min))
		}
	}
	return reasons
}
