package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// ErrShutdown is returned by Leave after Shutdown.
var ErrShutdown = errors.New("cluster: membership is shut down")

const (
	// defaultLeaveTimeout replaces a Leave timeout of zero or less, which
	// memberlist would take as no limit.
	defaultLeaveTimeout = 5 * time.Second
	// joinWarnEvery is how many failed join attempts pass between warnings;
	// the attempts between them log at debug level.
	joinWarnEvery = 30
)

// Membership tracks the live nodes of the cluster through memberlist's
// gossip and keeps the Ring built from them.
type Membership struct {
	cfg    Config
	log    *zap.Logger
	list   *memberlist.Memberlist
	events *delegate
	ring   atomic.Pointer[Ring]
	gossip string // advertised gossip address of the local node

	ringChanged chan struct{} // one slot: a new ring is stored
	cancelJoin  context.CancelFunc
	stop        chan struct{}
	wg          sync.WaitGroup

	lifecycle sync.Mutex // held by Leave, so Shutdown waits for it
	closed    bool
	left      bool
	leaveErr  error

	shutdownOnce sync.Once
	shutdownErr  error
}

// Start creates the local memberlist node, which carries Self's PeerAddr and
// APIAddr in its metadata, and joins the cluster through cfg.Seeds.
//
// Start waits for the first join attempt. If no seed answers, the node runs
// alone and retries every JoinRetry until a join reaches another node,
// another node joins it, or Leave or Shutdown is called; the clusters then
// merge. If ctx ends before the first attempt does, Start shuts the node
// down and returns ctx's error. Call Shutdown to stop the node.
func Start(ctx context.Context, cfg Config) (*Membership, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("cluster: starting membership: %w", err)
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	meta, err := encodeMeta(cfg.Self)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With(zap.String("node", cfg.Self.ID))
	events := newDelegate(meta, log)
	mc, err := cfg.memberlistConfig(events, memberlistLogger(log))
	if err != nil {
		return nil, err
	}
	list, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("cluster: starting memberlist on %s: %w", cfg.Self.GossipAddr, err)
	}

	joinCtx, cancelJoin := context.WithCancel(context.Background())
	m := &Membership{
		cfg: cfg, log: log, list: list, events: events,
		gossip:      list.LocalNode().Address(),
		ringChanged: make(chan struct{}, 1),
		cancelJoin:  cancelJoin,
		stop:        make(chan struct{}),
	}
	m.rebuildRing()
	m.startLoops()
	if len(cfg.SecretKey) == 0 {
		log.Warn("gossip is not encrypted: set a secret key")
	}
	log.Info("membership started", zap.String("gossip_addr", m.gossip), zap.Strings("seeds", cfg.Seeds))
	if err := m.awaitFirstJoin(ctx, joinCtx); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Membership) startLoops() {
	m.wg.Add(1)
	go m.runRingBuilder()
	if m.cfg.OnChange != nil {
		m.wg.Add(1)
		go m.runNotifier()
	}
}

// awaitFirstJoin starts the join loop and waits for its first attempt. It
// shuts m down if ctx ends first.
func (m *Membership) awaitFirstJoin(ctx, joinCtx context.Context) error {
	if len(m.cfg.Seeds) == 0 {
		return nil
	}
	firstDone := make(chan struct{})
	m.wg.Add(1)
	go m.runJoin(joinCtx, firstDone)
	select {
	case <-firstDone:
		return nil
	case <-ctx.Done():
		_ = m.Shutdown()
		return fmt.Errorf("cluster: starting membership: %w", ctx.Err())
	}
}

// runJoin joins the seeds, retrying every JoinRetry until the node knows
// another live node or ctx ends. It closes firstDone after the first
// attempt.
func (m *Membership) runJoin(ctx context.Context, firstDone chan<- struct{}) {
	defer m.wg.Done()
	retry := time.NewTimer(0)
	defer retry.Stop()
	for attempt := 1; ; attempt++ {
		joined := m.joinOnce(attempt)
		if attempt == 1 {
			close(firstDone)
		}
		if joined {
			return
		}
		retry.Reset(m.cfg.JoinRetry)
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
		}
	}
}

// joinOnce makes one join attempt and reports whether the node now knows
// another live node. A seed list that contains only this node's own
// address reaches no other node, so that attempt counts as failed.
func (m *Membership) joinOnce(attempt int) bool {
	if m.list.NumMembers() > 1 {
		m.log.Info("joined cluster", zap.Int("attempt", attempt), zap.String("via", "incoming join"))
		return true
	}
	reached, err := m.list.Join(m.cfg.Seeds)
	if err == nil && m.list.NumMembers() > 1 {
		m.log.Info("joined cluster", zap.Int("attempt", attempt), zap.Int("seeds_reached", reached))
		return true
	}
	if err == nil {
		err = errors.New("seeds reached no other node")
	}
	level := zap.DebugLevel
	if attempt%joinWarnEvery == 1 {
		level = zap.WarnLevel
	}
	m.log.Log(level, "joining cluster failed, retrying", zap.Int("attempt", attempt),
		zap.Strings("seeds", m.cfg.Seeds), zap.Duration("retry", m.cfg.JoinRetry), zap.Error(err))
	return false
}

// Ring returns the current ring. It does not lock, so it suits per-message
// lookups.
func (m *Membership) Ring() *Ring {
	return m.ring.Load()
}

// Members returns the live members sorted by ID.
func (m *Membership) Members() []Member {
	return m.Ring().Members()
}

// LocalGossipAddr returns the gossip address that other nodes use to reach
// this node, with the port memberlist bound when Self.GossipAddr had port 0.
func (m *Membership) LocalGossipAddr() string {
	return m.gossip
}

// Leave tells the cluster that this node is leaving and waits up to
// timeout, or 5s if timeout is zero or less, for that message to go out.
// The other nodes then drop it from their rings without waiting for failure
// detection. Leave stops join retries but not gossip; call Shutdown after
// it. Later calls return the first call's result. After Shutdown, Leave
// returns ErrShutdown.
func (m *Membership) Leave(timeout time.Duration) error {
	m.lifecycle.Lock()
	defer m.lifecycle.Unlock()
	if m.closed {
		return ErrShutdown
	}
	if m.left {
		return m.leaveErr
	}
	m.left = true
	m.cancelJoin()
	if timeout <= 0 {
		timeout = defaultLeaveTimeout
	}
	if err := m.list.Leave(timeout); err != nil {
		m.leaveErr = fmt.Errorf("cluster: leaving cluster: %w", err)
		m.log.Warn("leaving cluster failed", zap.Duration("timeout", timeout), zap.Error(err))
		return m.leaveErr
	}
	m.log.Info("left cluster")
	return nil
}

// Shutdown stops gossip and the membership's goroutines. Without an earlier
// Leave the other nodes see this node fail. It waits for a Leave in
// progress and for a running OnChange call. Later calls return the first
// call's result.
func (m *Membership) Shutdown() error {
	m.shutdownOnce.Do(func() {
		m.lifecycle.Lock()
		m.closed = true
		m.lifecycle.Unlock()

		m.cancelJoin()
		if err := m.list.Shutdown(); err != nil {
			m.shutdownErr = fmt.Errorf("cluster: stopping memberlist: %w", err)
		}
		close(m.stop)
		m.wg.Wait()
		m.log.Info("membership stopped")
	})
	return m.shutdownErr
}
