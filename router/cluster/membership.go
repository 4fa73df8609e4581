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
	// joinWarnEvery sets how often a failed join attempt logs a warning:
	// the first attempt and every joinWarnEvery-th after it. The others log
	// at debug level.
	joinWarnEvery = 30
)

// Membership tracks the live nodes of the cluster through memberlist's
// gossip and keeps the Ring built from them.
//
// A node that crashes and restarts with the same ID rejoins through its
// seeds. On the same gossip address it refutes the old process's state, so
// its new metadata replaces the old. On a new address the other nodes
// accept it once they have declared the old address dead.
//
// NOTE: memberlist v0.7.0 starts a restarted node at incarnation 1, so a
// failure message about the old process that is still being gossiped can
// drop the restarted node once more. It refutes that message and is added
// back, so OnChange may see it removed and added again.
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
// Start waits for the first join attempt. If that reaches no other node,
// the node runs alone as a cluster of one and retries every JoinRetry. The
// retries stop when a join reaches another node, when another node joins
// this one, or at Leave or Shutdown. If ctx ends before the first attempt
// does, Start shuts the node down and returns ctx's error. Call Shutdown to
// stop the node.
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

// runJoin joins the seeds, retrying every JoinRetry until memberlist lists
// another live node or ctx ends. It closes firstDone after the first
// attempt.
func (m *Membership) runJoin(ctx context.Context, firstDone chan<- struct{}) {
	defer m.wg.Done()
	for attempt := 1; ; attempt++ {
		joined := m.joinOnce(ctx, attempt)
		if attempt == 1 {
			close(firstDone)
		}
		if joined {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(m.cfg.JoinRetry):
		}
	}
}

// joinOnce makes one join attempt and reports whether memberlist now lists
// another live node. A seed list that contains only this node's own
// address reaches no other node, so that attempt counts as failed.
func (m *Membership) joinOnce(ctx context.Context, attempt int) bool {
	if m.list.NumMembers() > 1 {
		m.log.Info("joined cluster", zap.Int("attempt", attempt), zap.String("via", "incoming join"))
		return true
	}
	reached, err := m.joinSeeds(ctx)
	if err == nil && m.list.NumMembers() > 1 {
		m.log.Info("joined cluster", zap.Int("attempt", attempt), zap.Int("seeds_reached", reached))
		return true
	}
	if ctx.Err() != nil {
		return false
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

// joinSeeds joins the seeds one at a time, so that ctx ends the attempt
// between seeds. memberlist bounds each seed by its TCPTimeout, 10s in
// memberlist.DefaultLANConfig. It returns how many seeds it reached and, if
// it reached none, the error of each seed.
func (m *Membership) joinSeeds(ctx context.Context) (int, error) {
	reached := 0
	var errs []error
	for _, seed := range m.cfg.Seeds {
		if ctx.Err() != nil {
			break
		}
		if _, err := m.list.Join([]string{seed}); err != nil {
			errs = append(errs, err)
			continue
		}
		reached++
	}
	if reached > 0 {
		return reached, nil
	}
	return 0, errors.Join(errs...)
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

// Leave broadcasts that this node is leaving the cluster and waits up to
// timeout, or 5s if timeout is zero or less, for that message to go out.
// The other nodes then drop it from their rings without waiting for failure
// detection, and the local ring drops it too. Leave stops join retries but
// not gossip, so call Shutdown after it. Later calls return the first call's result. After Shutdown, Leave
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
// progress, for a running OnChange call and for a join attempt in progress
// to finish with its current seed, which can take memberlist's TCPTimeout
// (10s) if the seed does not respond. Later calls return the first call's
// result.
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
