package app

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/esh3artech/esh3artech/router/cluster"
)

// placement maps recipients to nodes by the cluster's hash ring. It
// implements router.Placement.
type placement struct {
	self    string
	leaving atomic.Bool

	mu      sync.RWMutex
	members *cluster.Ring // every live member
	ring    *cluster.Ring // members that own recipients: without self while leaving
	addrs   map[string]string
	vnodes  int
}

func (p *placement) update(r *cluster.Ring) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.members = r
	p.rebuildLocked()
}

func (p *placement) rebuildLocked() {
	if p.members == nil {
		return
	}
	p.addrs = map[string]string{}
	var owners []cluster.Member
	for _, m := range p.members.Members() {
		p.addrs[m.ID] = m.PeerAddr
		if m.ID == p.self && p.leaving.Load() {
			continue
		}
		owners = append(owners, m)
	}
	p.ring = cluster.NewRing(owners, p.vnodes)
}

// leave stops this node from owning recipients.
func (p *placement) leave() {
	p.leaving.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rebuildLocked()
}

// Owner implements router.Placement. Before the first ring, and when the
// ring is empty, this node owns every recipient.
func (p *placement) Owner(phone string) (string, bool) {
	p.mu.RLock()
	ring := p.ring
	p.mu.RUnlock()
	if ring == nil || ring.Len() == 0 {
		return p.self, !p.leaving.Load()
	}
	id := ring.Owner(phone).ID
	return id, id == p.self
}

// Self implements router.Placement.
func (p *placement) Self() string { return p.self }

// Nodes implements router.Placement.
func (p *placement) Nodes() []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.members == nil {
		return []string{p.self}
	}
	var out []string
	for _, m := range p.members.Members() {
		out = append(out, m.ID)
	}
	return out
}

// PeerAddr implements router.Placement.
func (p *placement) PeerAddr(node string) (string, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	a, ok := p.addrs[node]
	return a, ok && a != ""
}

// memberCount returns how many live members the ring has.
func (p *placement) memberCount() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.members == nil {
		return 0
	}
	return p.members.Len()
}

// clusterState is the part of a node that exists only in a cluster.
type clusterState struct {
	placement  *placement
	membership *cluster.Membership
	peerServer *http.Server
	peerLn     net.Listener
}

// startCluster opens the peer listener, joins the cluster and waits up to
// cluster.join_timeout for the seeds, so that the node does not route
// messages as if it were alone.
func (n *Node) startCluster() error {
	cc := n.cfg.Cluster
	ln, err := net.Listen("tcp", cc.PeerListen)
	if err != nil {
		return fmt.Errorf("app: listen on cluster.peer_listen %s: %w", cc.PeerListen, err)
	}
	n.cluster.peerLn = ln
	n.cluster.peerServer = &http.Server{
		Handler: n.router.PeerHandler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: zap.NewStdLog(n.log.Named("peer")),
	}
	n.goLoop(func() {
		if err := n.cluster.peerServer.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("peer server stopped", zap.Error(err))
		}
	})
	peerAddr := cc.PeerAdvertise
	if peerAddr == "" {
		peerAddr = ln.Addr().String()
	}
	key := sha256.Sum256([]byte(cc.Secret))
	m, err := cluster.Start(context.Background(), cluster.Config{
		Self: cluster.Member{ID: cc.NodeID, PeerAddr: peerAddr, APIAddr: n.Addr(),
			GossipAddr: cc.GossipListen},
		AdvertiseAddr: cc.GossipAdvertise, Seeds: cc.Seeds, SecretKey: key[:],
		VirtualNodes: cc.VirtualNodes, ProbeInterval: cc.ProbeInterval,
		ProbeTimeout: cc.ProbeTimeout, SuspicionMult: cc.SuspicionMult,
		GossipInterval: cc.GossipInterval, PushPullInterval: cc.PushPullInterval,
		Logger: n.log.Named("cluster"),
		OnChange: func(r *cluster.Ring) {
			n.cluster.placement.update(r)
			n.log.Info("cluster ring changed", zap.Int("members", r.Len()),
				zap.String("version", r.Version()))
			n.router.RingChanged()
		},
	})
	if err != nil {
		return fmt.Errorf("app: join cluster: %w", err)
	}
	n.cluster.membership = m
	n.waitForJoin(cc)
	return nil
}

// waitForJoin returns once the ring lists another member, when it has no
// seeds, or after cluster.join_timeout.
func (n *Node) waitForJoin(cc ClusterConfig) {
	if len(cc.Seeds) == 0 {
		return
	}
	deadline := time.Now().Add(cc.JoinTimeout)
	for time.Now().Before(deadline) {
		if n.cluster.placement.memberCount() > 1 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.log.Warn("no seed responded within the join timeout, routing as the only member",
		zap.Duration("join_timeout", cc.JoinTimeout), zap.Strings("seeds", cc.Seeds))
}

// leaveCluster hands this node's recipients to the other members: it
// leaves the ring, then waits up to cluster.drain_timeout for its queue
// and inboxes to move to their new owners.
func (n *Node) leaveCluster(ctx context.Context) {
	if n.cluster.membership == nil {
		return
	}
	n.cluster.placement.leave()
	n.router.RingChanged()
	if err := n.cluster.membership.Leave(time.Second); err != nil {
		n.log.Warn("cluster leave failed", zap.Error(err))
	}
	deadline := time.Now().Add(n.cfg.Cluster.DrainTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if n.store.QueueDepth() == 0 && n.store.InboxTotal() == 0 {
			n.log.Info("inboxes handed over")
			n.handOverSettled(ctx, deadline)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.log.Warn("drain timeout passed before every message was handed over; "+
		"they stay on disk and move when the node returns",
		zap.Int64("queued", n.store.QueueDepth()), zap.Int64("inbox", n.store.InboxTotal()))
}

// stopCluster closes the peer listener and the membership.
func (n *Node) stopCluster(ctx context.Context) error {
	var errs []error
	if n.cluster.peerServer != nil {
		if err := n.cluster.peerServer.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("app: peer server shutdown: %w", err))
		}
	}
	if n.cluster.membership != nil {
		if err := n.cluster.membership.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("app: cluster shutdown: %w", err))
		}
	}
	return errors.Join(errs...)
}

// handOverSettled moves delivered and dead-lettered messages to their
// recipients' owners before the node leaves, so that reading their status
// by id keeps working without this node.
func (n *Node) handOverSettled(ctx context.Context, deadline time.Time) {
	hctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	moved, err := n.router.HandOverSettled(hctx)
	if err != nil {
		n.log.Warn("handing over settled messages stopped; the rest stay in the data folder",
			zap.Int("moved", moved), zap.Error(err))
		return
	}
	n.log.Info("settled messages handed over", zap.Int("count", moved))
}
