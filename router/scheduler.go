package router

import (
	"context"
	"fmt"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/esh3artech/esh3artech/storage"
)

// maxSchedulerSleep bounds the scheduler's sleep so that a schedule change
// it was not woken for is picked up soon.
const maxSchedulerSleep = time.Second

// runScheduler handles due entries of the retry schedule: it resends
// unacknowledged messages with backoff and dead-letters those that ran out
// of attempts or time.
func (r *Router) runScheduler() {
	for !r.stopped() {
		next, err := r.handleDue(context.Background())
		if err != nil {
			r.log.Error("retry scan failed", zap.Error(err))
			next = r.cfg.Now().Add(time.Second)
		}
		wait := maxSchedulerSleep
		if !next.IsZero() {
			wait = min(max(next.Sub(r.cfg.Now()), time.Millisecond), maxSchedulerSleep)
		}
		r.nextDue.Store(r.cfg.Now().Add(wait).UnixNano())
		if !r.sleep(wait, r.wakeScheduler) {
			return
		}
	}
}

// handleDue processes every entry due now and returns the time of the
// next one.
func (r *Router) handleDue(ctx context.Context) (time.Time, error) {
	for !r.stopped() {
		now := r.cfg.Now()
		due, next, err := r.store.Due(ctx, now, r.cfg.BatchSize)
		if err != nil {
			return time.Time{}, err
		}
		if len(due) == 0 {
			return next, nil
		}
		if err := r.handleDueBatch(ctx, due, now); err != nil {
			return time.Time{}, err
		}
	}
	return time.Time{}, nil
}

func (r *Router) handleDueBatch(ctx context.Context, due []*storage.Message, now time.Time) error {
	var expired, exhausted, resent, offline, moving, deferred []storage.ID
	perRecipient := map[string]int{}
	for _, m := range due {
		switch {
		case !r.owns(m.Recipient):
			moving = append(moving, m.ID)
		case perRecipient[m.Recipient] >= r.cfg.PageSize:
			// A stalled device with a large backlog would otherwise get one
			// frame per message at once and overflow its send queue.
			deferred = append(deferred, m.ID)
		case !now.Before(m.CreationTime.Add(r.cfg.TTL)):
			expired = append(expired, m.ID)
		case m.Status == storage.StatusSent && m.Attempts >= r.cfg.MaxAttempts:
			exhausted = append(exhausted, m.ID)
		case r.breaker.State() != gobreaker.StateOpen && r.push(m):
			resent = append(resent, m.ID)
			perRecipient[m.Recipient]++
		default:
			offline = append(offline, m.ID)
		}
	}
	r.deadLetter(ctx, expired, fmt.Sprintf("expired: not acknowledged within the time-to-live of %s", r.cfg.TTL))
	r.deadLetter(ctx, exhausted, fmt.Sprintf("not acknowledged after %d attempts", r.cfg.MaxAttempts))
	if len(resent) > 0 {
		r.log.Debug("messages resent", zap.Int("count", len(resent)))
		r.markSent(ctx, resent)
	}
	if len(moving) > 0 {
		// The rebalancer hands these to their owner; check them again soon.
		signal(r.wakeRebalance)
		if _, err := r.store.Reschedule(ctx, moving, now.Add(stuckRetry)); err != nil {
			return err
		}
	}
	if len(deferred) > 0 {
		// Not an attempt: these go out once the device has caught up.
		if _, err := r.store.Reschedule(ctx, deferred, now.Add(r.cfg.RetryBase)); err != nil {
			return err
		}
	}
	return r.parkOffline(ctx, offline, now)
}

// parkOffline reschedules messages whose recipient has no connection: the
// backlog sends them when it connects, so the next entry is a later check,
// bounded by the message's expiry.
func (r *Router) parkOffline(ctx context.Context, ids []storage.ID, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := r.store.Reschedule(ctx, ids, now.Add(r.cfg.RetryMax))
	return err
}

func (r *Router) deadLetter(ctx context.Context, ids []storage.ID, reason string) {
	if len(ids) == 0 {
		return
	}
	moved, err := r.store.DeadLetter(ctx, ids, reason, r.cfg.Now())
	if err != nil {
		r.log.Error("dead-lettering failed", zap.Int("count", len(ids)), zap.Error(err))
		return
	}
	r.cfg.Metrics.DeadLettered.Add(float64(len(moved)))
	if len(moved) > 0 {
		r.log.Warn("messages dead-lettered", zap.Int("count", len(moved)),
			zap.Stringer("first_msg_id", moved[0].ID), zap.String("reason", reason))
	}
	for _, m := range moved {
		r.log.Debug("message dead-lettered", zap.Stringer("msg_id", m.ID),
			zap.String("client_id", m.CreatorID), zap.String("reason", reason))
	}
}
