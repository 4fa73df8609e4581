package router

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/esh3artech/esh3artech/hub"
	"github.com/esh3artech/esh3artech/storage"
)

// RingChanged notifies the router that the cluster's membership changed: it
// re-routes the queue, hands inboxes it no longer owns to their owners,
// moves connections to their users' new owners, and drops connections
// attached by nodes that left.
func (r *Router) RingChanged() {
	nodes := r.placement.Nodes()
	r.ringMu.Lock()
	left := make(map[string]bool)
	for _, n := range r.ringNodes {
		if !slices.Contains(nodes, n) {
			left[n] = true
		}
	}
	r.ringNodes = nodes
	r.ringMu.Unlock()
	// NB: only nodes that were members and left lose their attachments. A
	// node that just joined may get attachments from peers that already
	// see it before its own first ring lists them.
	r.remote.removeNodes(func(node string) bool { return !left[node] })
	r.remote.dropUsers(r.owns)
	r.reattach()
	r.rescan.Store(true)
	r.Notify()
	signal(r.wakeRebalance)
}

// runRebalancer hands over inboxes this node no longer owns whenever the
// ring changes, retrying while an owner cannot take them.
func (r *Router) runRebalancer() {
	for {
		select {
		case <-r.stop:
			return
		case <-r.wakeRebalance:
		}
		for !r.stopped() && !r.handOff(context.Background()) {
			if !r.sleep(stuckRetry, nil) {
				return
			}
		}
	}
}

// handOff moves every inbox message this node does not own to its owner
// and reports whether it finished.
func (r *Router) handOff(ctx context.Context) bool {
	for !r.stopped() {
		msgs, err := r.store.InboxesNotOwned(ctx, r.owns, r.cfg.BatchSize)
		if err != nil {
			r.log.Error("reading inboxes to hand over failed", zap.Error(err))
			return false
		}
		if len(msgs) == 0 {
			return true
		}
		_, byOwner := r.splitByOwner(msgs)
		for node, batch := range byOwner {
			if err := r.handOffTo(ctx, node, batch); err != nil {
				r.log.Warn("inbox handoff failed", zap.String("peer", node),
					zap.Int("count", len(batch)), zap.Error(err))
				return false
			}
		}
	}
	return false
}

// handOffTo sends messages to their new owner, which stores them durably
// before it responds; only then are they deleted here.
func (r *Router) handOffTo(ctx context.Context, node string, msgs []*storage.Message) error {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.PeerTimeout)
	defer cancel()
	if err := r.peers.call(cctx, node, http.MethodPost, peerPathHandoff,
		messagesBody{Messages: msgs}, nil); err != nil {
		return err
	}
	released, err := r.store.Release(ctx, ids(msgs))
	if err != nil {
		return err
	}
	r.log.Info("inbox messages handed over", zap.String("peer", node), zap.Int("count", len(msgs)))
	r.forwardLateAcks(ctx, node, msgs, released)
	return nil
}

// forwardLateAcks passes on to the new owner the acknowledgements that
// reached this node after it sent a message's copy and before it released
// its own, so that the new owner does not send the message again.
func (r *Router) forwardLateAcks(ctx context.Context, node string, sent, released []*storage.Message) {
	gone := make(map[storage.ID]bool, len(released))
	for _, m := range released {
		gone[m.ID] = true
	}
	for _, m := range sent {
		if gone[m.ID] {
			continue
		}
		now, err := r.store.Get(ctx, m.ID)
		if err != nil || now.Status != storage.StatusDelivered {
			continue
		}
		c := hub.ConnInfo{User: m.Recipient}
		if err := r.peers.sendAck(ctx, node, c, m.ID.String(), true); err != nil {
			r.log.Warn("passing on a late acknowledgement failed", zap.String("peer", node),
				zap.Stringer("msg_id", m.ID), zap.Error(err))
		}
	}
}

// restartBacklogs delivers adopted messages to their recipients' live
// connections.
func (r *Router) restartBacklogs(msgs []*storage.Message) {
	var owned []*storage.Message
	for _, m := range msgs {
		if r.owns(m.Recipient) {
			owned = append(owned, m)
		}
	}
	r.deliverLive(context.Background(), owned)
}

// HandOverSettled moves the delivered and dead-lettered messages of this
// node to the owners of their recipients, so that their status stays
// readable after the node leaves the cluster for good. Each batch is
// deleted here only after its owner stored it. It returns how many
// messages it moved.
func (r *Router) HandOverSettled(ctx context.Context) (int, error) {
	var cursor []byte
	moved := 0
	for ctx.Err() == nil {
		msgs, next, err := r.store.Settled(ctx, cursor, r.cfg.BatchSize)
		if err != nil {
			return moved, err
		}
		_, byOwner := r.splitByOwner(msgs)
		for node, batch := range byOwner {
			if err := r.handOffSettledTo(ctx, node, batch); err != nil {
				return moved, err
			}
			moved += len(batch)
		}
		if next == nil {
			return moved, nil
		}
		cursor = next
	}
	return moved, ctx.Err()
}

// handOffSettledTo sends settled messages to node and deletes them here
// once it stored them. An owner whose ring still lists this node refuses
// them, so the call is retried until ctx ends.
func (r *Router) handOffSettledTo(ctx context.Context, node string, batch []*storage.Message) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, r.cfg.PeerTimeout)
		err := r.peers.call(cctx, node, http.MethodPost, peerPathHandoff,
			messagesBody{Messages: batch}, nil)
		cancel()
		if err == nil {
			return r.store.DropSettled(ctx, ids(batch))
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}
