package router

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/esh3artech/esh3artech/storage"
)

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
		for !r.stopped() {
			n, err := r.routeBatch(context.Background())
			if err != nil {
				r.log.Error("routing batch failed", zap.Error(err))
				// The entries stay queued; try again shortly.
				if !r.sleep(time.Second, nil) {
					return
				}
				continue
			}
			if n < r.cfg.BatchSize {
				break
			}
		}
	}
}

// routeBatch moves one batch from the queue into inboxes and delivers it to
// the recipients that are online. It returns the size of the batch.
func (r *Router) routeBatch(ctx context.Context) (int, error) {
	queued, err := r.store.PeekQueue(ctx, r.cfg.BatchSize)
	if err != nil || len(queued) == 0 {
		return 0, err
	}
	moved, err := r.store.MoveToInbox(ctx, queued, r.cfg.TTL)
	if err != nil {
		return 0, err
	}
	r.log.Debug("batch routed", zap.Int("count", len(moved)))
	r.deliverLive(ctx, moved)
	return len(queued), nil
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
	conns := r.hub.Connections(m.Recipient)
	if len(conns) == 0 {
		return false
	}
	payload := mobileMessage(m)
	ok := false
	for _, c := range conns {
		r.acked.sendUnlessAcked(m.ID, func() {
			_, err := r.breaker.Execute(func() (struct{}, error) {
				return struct{}{}, r.hub.SendMessage(c.ID, payload)
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
	for _, m := range marked {
		if m.Attempts == 1 {
			r.cfg.Metrics.Sent.Inc()
		} else {
			r.cfg.Metrics.Retried.Inc()
		}
	}
	signal(r.wakeScheduler)
}
