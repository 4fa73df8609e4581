package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// ErrNotInDLQ is returned when requeuing a message that is not dead-lettered.
var ErrNotInDLQ = errors.New("storage: message is not in the dead-letter queue")

// A message moves through these tables:
//
//	Accept:       m + q                          status Queued
//	MoveToInbox:  q  -> i + r(expiry)            status Pending
//	MarkSent:     r(old) -> r(next retry)        status Sent
//	Acknowledge:  i, r, d removed                status Delivered
//	DeadLetter:   i, r removed, d added          status Failed
//	Requeue:      d removed, q added             status Queued
//
// Each step is one atomic batch, so a record is never deleted before its
// successor is written in the same batch. Steps that a caller responds on
// (Acknowledge, DeadLetter, Requeue, and storing messages another node
// deletes afterwards) are committed with Sync. The others (MoveToInbox,
// MarkSent, Reschedule, and deleting copies another node already holds)
// are committed without waiting for fsync: they reach the write-ahead log
// at once and survive a killed process, and if an operating system crash
// loses one, the message is in its previous state and the step runs again,
// which at worst sends it once more. Steps after Accept run under
// s.transMu, so a step always reads the result of the previous one.

// PeekQueue returns up to limit messages of the durable queue in
// acceptance order, without removing them.
func (s *Store) PeekQueue(ctx context.Context, limit int) ([]*Message, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	lower := []byte{prefixQueue}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upperBound(lower)})
	if err != nil {
		return nil, fmt.Errorf("storage: read queue: %w", err)
	}
	defer it.Close()
	var out []*Message
	for it.First(); it.Valid() && len(out) < limit; it.Next() {
		m, err := s.getLocked(idFromSuffix(it.Key()))
		if errors.Is(err, ErrNotFound) {
			continue // a queue entry whose message is gone is skipped
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, it.Error()
}

// MoveToInbox moves queued messages into their recipients' inboxes as
// Pending, schedules their expiry at creation time plus ttl, and deletes
// their queue entries, in one batch. Messages no longer queued are skipped.
// It returns the moved messages as stored.
func (s *Store) MoveToInbox(ctx context.Context, msgs []*Message, ttl time.Duration) ([]*Message, error) {
	return s.transition(ctx, ids(msgs), pebble.NoSync, func(b *pebble.Batch, m *Message) (bool, error) {
		if m.Status != StatusQueued {
			return false, nil
		}
		m.Status = StatusPending
		m.Due = m.CreationTime.Add(ttl)
		s.onCommit(func() { s.count.queue.Add(-1); s.count.inbox.Add(1) })
		_ = b.Delete(queueKey(m.ID), nil)
		_ = b.Set(inboxKey(m.Recipient, m.Priority, m.ID), nil, nil)
		_ = b.Set(retryKey(m.Due, m.ID), nil, nil)
		return true, nil
	})
}

// MarkSent records a send of each message that is still Pending or Sent:
// status Sent, one more attempt, and the next retry at next(m). It returns
// the updated messages; acknowledged or dead-lettered ones are left out.
func (s *Store) MarkSent(ctx context.Context, msgIDs []ID, now time.Time,
	next func(*Message) time.Time) ([]*Message, error) {
	return s.transition(ctx, msgIDs, pebble.NoSync, func(b *pebble.Batch, m *Message) (bool, error) {
		if m.Status != StatusPending && m.Status != StatusSent {
			return false, nil
		}
		m.Status = StatusSent
		m.Attempts++
		if m.Attempts > 1 {
			m.RetryCount = m.Attempts - 1
			at := now
			m.LastRetryAt = &at
		}
		due := next(m)
		m.NextRetryAt = &due
		s.moveDue(b, m, due)
		return true, nil
	})
}

// Reschedule moves the retry schedule entry of each message still in an
// inbox to due, without counting an attempt.
func (s *Store) Reschedule(ctx context.Context, msgIDs []ID, due time.Time) ([]*Message, error) {
	return s.transition(ctx, msgIDs, pebble.NoSync, func(b *pebble.Batch, m *Message) (bool, error) {
		if m.Status != StatusPending && m.Status != StatusSent {
			return false, nil
		}
		s.moveDue(b, m, due)
		return true, nil
	})
}

func (s *Store) moveDue(b *pebble.Batch, m *Message, due time.Time) {
	_ = b.Delete(retryKey(m.Due, m.ID), nil)
	m.Due = due
	_ = b.Set(retryKey(due, m.ID), nil, nil)
}

// DeadLetter marks each message still in an inbox Failed with reason,
// removes it from its inbox and the retry schedule, and adds it to the
// dead-letter index.
func (s *Store) DeadLetter(ctx context.Context, msgIDs []ID, reason string, now time.Time) ([]*Message, error) {
	return s.transition(ctx, msgIDs, pebble.Sync, func(b *pebble.Batch, m *Message) (bool, error) {
		if m.Status != StatusPending && m.Status != StatusSent {
			return false, nil
		}
		_ = b.Delete(inboxKey(m.Recipient, m.Priority, m.ID), nil)
		_ = b.Delete(retryKey(m.Due, m.ID), nil)
		m.Status = StatusFailed
		m.FailureReason = reason
		at := now
		m.MovedToDlqAt = &at
		m.NextRetryAt = nil
		m.Due = time.Time{}
		_ = b.Set(dlqKey(at, m.ID), nil, nil)
		s.onCommit(func() { s.count.inbox.Add(-1); s.count.addPhone(m.Recipient, -1) })
		return true, nil
	})
}

// Requeue puts a dead-lettered message back into the durable queue with
// its attempts reset. It returns ErrNotFound or ErrNotInDLQ.
func (s *Store) Requeue(ctx context.Context, id ID) (*Message, error) {
	var found, failed bool
	out, err := s.transition(ctx, []ID{id}, pebble.Sync, func(b *pebble.Batch, m *Message) (bool, error) {
		found = true
		if m.Status != StatusFailed {
			return false, nil
		}
		failed = true
		_ = b.Delete(dlqKey(*m.MovedToDlqAt, m.ID), nil)
		m.Status = StatusQueued
		m.Attempts, m.RetryCount = 0, 0
		m.FailureReason = ""
		m.MovedToDlqAt, m.NextRetryAt, m.LastRetryAt = nil, nil, nil
		_ = b.Set(queueKey(m.ID), nil, nil)
		s.onCommit(func() {
			s.count.queue.Add(1)
			s.count.addPhone(m.Recipient, 1)
			s.feed.add(m.ID)
		})
		return true, nil
	})
	switch {
	case err != nil:
		return nil, err
	case !found:
		return nil, ErrNotFound
	case !failed:
		return nil, ErrNotInDLQ
	}
	return out[0], nil
}

// action is the effect of a transition step on a message record.
type action int

const (
	skip   action = iota // leave the message as it is
	update               // write the changed message
	remove               // delete the message record
)

// transition applies step to each message under s.transMu and commits the
// changed ones with Sync in one batch. Unknown ids are skipped.
func (s *Store) transition(ctx context.Context, msgIDs []ID, opts *pebble.WriteOptions,
	step func(*pebble.Batch, *Message) (bool, error)) ([]*Message, error) {
	return s.transitionAction(ctx, msgIDs, opts, func(b *pebble.Batch, m *Message) (action, error) {
		ok, err := step(b, m)
		if ok {
			return update, err
		}
		return skip, err
	})
}

func (s *Store) transitionAction(ctx context.Context, msgIDs []ID, opts *pebble.WriteOptions,
	step func(*pebble.Batch, *Message) (action, error)) ([]*Message, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	s.transMu.Lock()
	defer s.transMu.Unlock()
	s.afterCommit = s.afterCommit[:0]
	b := s.db.NewBatch()
	defer b.Close()
	var changed []*Message
	for _, id := range msgIDs {
		m, err := s.getLocked(id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		act, err := step(b, m)
		if err != nil {
			return nil, err
		}
		switch act {
		case skip:
			continue
		case remove:
			_ = b.Delete(messageKey(m.ID), nil)
			changed = append(changed, m)
			continue
		}
		v, err := encodeMessage(m)
		if err != nil {
			return nil, err
		}
		_ = b.Set(messageKey(m.ID), v, nil)
		changed = append(changed, m)
	}
	if len(changed) == 0 {
		s.afterCommit = s.afterCommit[:0]
		return nil, nil
	}
	return changed, s.commitTransition(b, opts)
}

// onCommit runs f once the current transition's batch is committed. The
// caller must hold s.transMu.
func (s *Store) onCommit(f func()) { s.afterCommit = append(s.afterCommit, f) }

// commitTransition commits b and then runs the onCommit functions. The
// caller must hold s.transMu.
func (s *Store) commitTransition(b *pebble.Batch, opts *pebble.WriteOptions) error {
	fns := s.afterCommit
	s.afterCommit = s.afterCommit[:0]
	if err := s.commitWith(b, opts); err != nil {
		return err
	}
	for _, f := range fns {
		f()
	}
	return nil
}

func ids(msgs []*Message) []ID {
	out := make([]ID, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}
