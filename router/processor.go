package router

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/esh3artech/esh3artech/storage"
)

// stuckRetry is the delay before the processor tries again to forward
// messages whose owner could not take them.
const stuckRetry = time.Second

// runProcessor drains the durable queue a batch at a time whenever Notify
// signals new entries.
func (r *Router) runProcessor() {
	for {
		select {
		case <-r.stop:
			return
		case <-r.wakeProcessor:
		}
		if r.cfg.BatchWait > 0 && !r.sleep(r.cfg.BatchWait, nil) {
			return
		}
		if stuck := r.drainQueue(context.Background()); stuck {
			// Some entries wait for their owner; wake again later.
			r.goLoop(func() {
				if r.sleep(stuckRetry, nil) {
					r.Notify()
				}
			})
		}
	}
}

// fullScanEvery is how often the processor scans the whole queue rather
// than routing the ids the store fed it. Routed entries stay behind as
// tombstones until Pebble compacts them, and a scan steps over each of
// them, so scans are kept rare. A scan also runs at startup, after a
// requeue or forward, and while messages wait for an unreachable owner.
const fullScanEvery = 10 * time.Second

// drainQueue routes the queued messages once and reports whether some were
// left in the queue because their owner could not take them.
func (r *Router) drainQueue(ctx context.Context) (stuck bool) {
	now := time.Now()
	if r.rescan.Swap(false) || now.Sub(r.lastFullScan) >= fullScanEvery {
		r.lastFullScan = now
		// Every id taken here was committed before the scan starts, so the
		// scan reads it.
		r.store.TakeQueued()
		stuck = r.scanQueue(ctx)
	} else {
		stuck = r.drainFed(ctx)
	}
	if stuck {
		r.rescan.Store(true)
	}
	return stuck
}

// drainFed routes the messages queued since the last drain, by id.
func (r *Router) drainFed(ctx context.Context) (stuck bool) {
	fed := r.store.TakeQueued()
	for len(fed) > 0 && !r.stopped() {
		n := min(len(fed), r.cfg.BatchSize)
		msgs, err := r.store.Queued(ctx, fed[:n])
		fed = fed[n:]
		if err != nil {
			r.log.Error("reading queued messages failed", zap.Error(err))
			return true
		}
		left, err := r.routeMessages(ctx, msgs)
		if err != nil {
			r.log.Error("routing batch failed", zap.Error(err))
			return true
		}
		stuck = stuck || left
	}
	return stuck
}

// scanQueue routes every message in the queue, in batches.
func (r *Router) scanQueue(ctx context.Context) (stuck bool) {
	var cursor storage.QueueCursor
	for !r.stopped() {
		queued, next, err := r.store.PeekQueueAfter(ctx, cursor, r.cfg.BatchSize)
		if err != nil {
			r.log.Error("reading the queue failed", zap.Error(err))
			return true
		}
		left, err := r.routeMessages(ctx, queued)
		if err != nil {
			r.log.Error("routing batch failed", zap.Error(err))
			return true // the entries stay queued
		}
		stuck = stuck || left
		cursor = next
		if len(queued) < r.cfg.BatchSize {
			return stuck
		}
	}
	return stuck
}

// routeMessages routes queued messages: those this node owns move into
// inboxes and go to online recipients, the others go to their owners. It
// reports whether some stayed queued because their owner could not take
// them.
func (r *Router) routeMessages(ctx context.Context, queued []*storage.Message) (bool, error) {
	if len(queued) == 0 {
		return false, nil
	}
	local, remote := r.splitByOwner(queued)
	if len(local) > 0 {
		moved, err := r.store.MoveToInbox(ctx, local, r.cfg.TTL)
		if err != nil {
			return true, err
		}
		r.log.Debug("batch routed", zap.Int("count", len(moved)))
		r.deliverLive(ctx, moved)
	}
	left := false
	for node, msgs := range remote {
		if err := r.forward(ctx, node, msgs); err != nil {
			r.log.Debug("forward failed", zap.String("peer", node), zap.Int("count", len(msgs)),
				zap.Error(err))
			left = true
		}
	}
	return left, nil
}

// splitByOwner separates messages this node owns from those it forwards,
// grouped by owner.
func (r *Router) splitByOwner(msgs []*storage.Message) ([]*storage.Message, map[string][]*storage.Message) {
	var local []*storage.Message
	remote := map[string][]*storage.Message{}
	for _, m := range msgs {
		node, mine := r.placement.Owner(m.Recipient)
		if mine {
			local = append(local, m)
			continue
		}
		remote[node] = append(remote[node], m)
	}
	return local, remote
}

// forward hands messages to their owner, which stores them durably before
// it responds; only then are they deleted here.
func (r *Router) forward(ctx context.Context, node string, msgs []*storage.Message) error {
	cctx, cancel := context.WithTimeout(ctx, r.cfg.PeerTimeout)
	defer cancel()
	if err := r.peers.call(cctx, node, http.MethodPost, peerPathForward,
		messagesBody{Messages: msgs}, nil); err != nil {
		return err
	}
	return r.store.DeleteForwarded(ctx, ids(msgs))
}

func ids(msgs []*storage.Message) []storage.ID {
	out := make([]storage.ID, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// deliverLive sends each message to every live connection of its
// recipient and records the sends. Messages of offline recipients stay
// Pending until their recipient connects.
func (r *Router) deliverLive(ctx context.Context, msgs []*storage.Message) {
	var sent []storage.ID
	for _, m := range msgs {
		if r.push(m) {
			sent = append(sent, m.ID)
		}
	}
	r.markSent(ctx, sent)
}

// push sends m as ReceiveMessage to every connection of its recipient and
// reports whether at least one send was queued.
func (r *Router) push(m *storage.Message) bool {
	conns := r.targets(m.Recipient)
	if len(conns) == 0 {
		return false
	}
	payload := mobileMessage(m)
	ok := false
	for _, c := range conns {
		r.acked.sendUnlessAcked(m.ID, func() {
			_, err := r.breaker.Execute(func() (struct{}, error) {
				return struct{}{}, r.sendMessage(c, payload)
			})
			if err == nil {
				ok = true
				return
			}
			r.log.Debug("send failed", zap.Stringer("msg_id", m.ID),
				zap.String("conn_id", c.ID), zap.Error(err))
		})
	}
	return ok
}

// markSent records sends and schedules each message's next retry.
func (r *Router) markSent(ctx context.Context, sent []storage.ID) {
	if len(sent) == 0 {
		return
	}
	marked, err := r.store.MarkSent(ctx, sent, r.cfg.Now(), func(m *storage.Message) time.Time {
		return r.cfg.Now().Add(r.cfg.backoff(m.Attempts))
	})
	if err != nil {
		// The messages stay Pending with their expiry scheduled; a
		// reconnect or the expiry handles them.
		r.log.Error("recording sends failed", zap.Int("count", len(sent)), zap.Error(err))
		return
	}
	earliest := time.Time{}
	for _, m := range marked {
		if m.Attempts == 1 {
			r.cfg.Metrics.Sent.Inc()
		} else {
			r.cfg.Metrics.Retried.Inc()
		}
		if earliest.IsZero() || m.Due.Before(earliest) {
			earliest = m.Due
		}
	}
	r.scheduleWake(earliest)
}

// scheduleWake wakes the scheduler when due is earlier than the entry it
// sleeps towards. Each scan of the retry schedule steps over the
// tombstones of deleted entries, so it is not woken for every send.
func (r *Router) scheduleWake(due time.Time) {
	if due.IsZero() {
		return
	}
	if next := r.nextDue.Load(); next == 0 || due.UnixNano() < next {
		signal(r.wakeScheduler)
	}
}
