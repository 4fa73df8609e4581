package cluster

import (
	"maps"
	"slices"
	"sync"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// delegate receives memberlist's callbacks. memberlist calls the event
// methods while it holds its node lock, so they only update the member
// table and signal changed. A goroutine of Membership builds the ring.
type delegate struct {
	meta []byte // NodeMeta of the local node, fixed at Start
	log  *zap.Logger

	mu      sync.Mutex
	members map[string]Member // live members by ID

	changed chan struct{} // one slot: members changed since the last read
}

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*delegate)(nil)
)

func newDelegate(meta []byte, log *zap.Logger) *delegate {
	return &delegate{
		meta:    meta,
		log:     log,
		members: map[string]Member{},
		changed: make(chan struct{}, 1),
	}
}

// snapshot returns the live members in no particular order.
func (d *delegate) snapshot() []Member {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Collect(maps.Values(d.members))
}

// NotifyJoin records a node that became alive.
func (d *delegate) NotifyJoin(n *memberlist.Node) {
	d.put(n, "member joined")
}

// NotifyUpdate records new metadata or a new address of a live node.
func (d *delegate) NotifyUpdate(n *memberlist.Node) {
	d.put(n, "member updated")
}

// NotifyLeave removes a node that left or was declared dead.
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	d.mu.Lock()
	delete(d.members, n.Name)
	d.mu.Unlock()
	d.log.Info("member removed", zap.String("peer", n.Name), zap.String("gossip_addr", n.Address()))
	d.signal()
}

// put stores the member that n describes. A node whose metadata does not
// decode is left out of the ring, because no request could be routed to it.
func (d *delegate) put(n *memberlist.Node, message string) {
	m, err := memberFromNode(n)
	d.mu.Lock()
	if err != nil {
		delete(d.members, n.Name)
	} else {
		d.members[n.Name] = m
	}
	d.mu.Unlock()
	if err != nil {
		d.log.Warn("member ignored", zap.String("peer", n.Name), zap.Error(err))
	} else {
		d.log.Info(message, zap.String("peer", m.ID), zap.String("gossip_addr", m.GossipAddr),
			zap.String("peer_addr", m.PeerAddr), zap.String("api_addr", m.APIAddr))
	}
	d.signal()
}

func (d *delegate) signal() {
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

// NodeMeta returns the local node's metadata. Start has checked that it
// fits memberlist.MetaMaxSize, the only limit memberlist passes.
func (d *delegate) NodeMeta(limit int) []byte {
	return d.meta
}

// NotifyMsg ignores user messages, because the cluster sends none.
func (d *delegate) NotifyMsg([]byte) {}

// GetBroadcasts returns no user broadcasts.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// LocalState returns no user state for push/pull exchanges.
func (d *delegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState ignores user state from push/pull exchanges.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {}

// runRingBuilder rebuilds the ring after each signal from the delegate
// until stop closes.
func (m *Membership) runRingBuilder() {
	defer m.wg.Done()
	for {
		select {
		case <-m.stop:
			return
		case <-m.events.changed:
			m.rebuildRing()
		}
	}
}

// rebuildRing stores the ring of the current members, unless they equal the
// current ring's members, and wakes the OnChange goroutine.
func (m *Membership) rebuildRing() {
	ring := NewRing(m.events.snapshot(), m.cfg.VirtualNodes)
	if old := m.ring.Load(); old != nil && slices.Equal(old.members, ring.members) {
		return
	}
	m.ring.Store(ring)
	m.log.Info("ring changed", zap.Int("members", ring.Len()), zap.String("version", ring.Version()))
	select {
	case m.ringChanged <- struct{}{}:
	default:
	}
}

// runNotifier passes each new ring to Config.OnChange until stop closes.
// A ring replaced before the call is skipped, so after a slow OnChange the
// next call gets the latest ring instead of a backlog.
func (m *Membership) runNotifier() {
	defer m.wg.Done()
	var last *Ring
	for {
		select {
		case <-m.stop:
			return
		case <-m.ringChanged:
		}
		ring := m.ring.Load()
		if ring == last {
			continue
		}
		last = ring
		m.cfg.OnChange(ring)
	}
}
