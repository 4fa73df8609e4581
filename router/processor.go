package router

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/esh3artech/esh3artech/storage"
)

// stuckRetry is how soon the processor tries again to forward messages
// whose owner could not take them.
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

// Where a drain starts. Queue keys are message ids, which are UUIDv7 and so
// ordered by the time they were made; deleted entries stay behind as
// tombstones until Pebble compacts them, and every scan from the start of
// the queue would step over all of them. A drain therefore starts a margin
// before the time of the newest message it routed, which covers requests
// that took an id and committed it later. A full scan runs at
// fullScanEvery, after a requeue or forward (whose ids can be old), and
// while messages are stuck waiting for an unreachable owner.
const (
	queueScanMargin = 5 * time.Second
	fullScanEvery   = 10 * time.Second
)

// drainStart returns the cursor a drain starts from.
func (r *Router) drainStart(now time.Time) storage.QueueCursor {
	if r.rescan.Swap(false) || now.Sub(r.lastFullScan) >= fullScanEvery || r.lastRouted.IsZero() {
		r.lastFullScan = now
		return nil
	}
	return storage.QueueCursorAt(r.lastRouted.Add(-queueScanMargin))
}

// drainQueue routes every queued message once and reports whether some
// were left in the queue because their owner could not take them.
func (r *Router) drainQueue(ctx context.Context) (stuck bool) {
	cursor := r.drainStart(time.Now())
	defer func() {
		if stuck {
			r.rescan.Store(true)
		}
	}()
	for !r.stopped() {
		n, next, left, err := r.routeBatch(ctx, cursor)
		if err != nil {
			r.log.Error("routing batch failed", zap.Error(err))
			return true // the entries stay queued
		}
		stuck = stuck || left
		cursor = next
		if n < r.cfg.BatchSize {
			return stuck
		}
	}
	return stuck
}

// routeBatch routes one batch of the queue after cursor: messages this node
// owns move into inboxes and go to online recipients, the others go to
// their owners. It returns the batch size, the cursor after it, and whether
// some messages stayed queued.
func (r *Router) routeBatch(ctx context.Context, cursor storage.QueueCursor) (
	int, storage.QueueCursor, bool, error) {
	queued, next, err := r.store.PeekQueueAfter(ctx, cursor, r.cfg.BatchSize)
	if err != nil || len(queued) == 0 {
		return 0, next, false, err
	}
	if t := storage.IDTime(queued[len(queued)-1].ID); t.After(r.lastRouted) {
		r.lastRouted = t
	}
	local, remote := r.splitByOwner(queued)
	if len(local) > 0 {
		moved, err := r.store.MoveToInbox(ctx, local, r.cfg.TTL)
		if err != nil {
			return 0, cursor, true, err
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
	return len(queued), next, left, nil
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
// it answers; only then are they deleted here.
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
