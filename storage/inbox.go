package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Ack is an acknowledgement of message ID by a device of Phone.
type Ack struct {
	Phone string
	ID    ID
}

// Acknowledge marks each acknowledged message Delivered at now and removes
// it from its inbox, the retry schedule and the dead-letter index, in one
// batch committed with Sync. The result has one error per ack: nil when the
// message is Delivered (also when it already was), ErrNotFound when the id
// is unknown or the message is addressed to another phone. It also returns
// the messages that this call moved to Delivered.
func (s *Store) Acknowledge(ctx context.Context, acks []Ack, now time.Time) (
	[]error, []*Message, error) {
	if err := s.enter(ctx); err != nil {
		return nil, nil, err
	}
	defer s.exit()
	s.transMu.Lock()
	defer s.transMu.Unlock()
	s.afterCommit = s.afterCommit[:0]
	b := s.db.NewBatch()
	defer b.Close()
	results := make([]error, len(acks))
	pending := map[ID]*Message{}
	for i, a := range acks {
		m := pending[a.ID]
		if m == nil {
			var err error
			if m, err = s.getLocked(a.ID); err != nil && !errors.Is(err, ErrNotFound) {
				return nil, nil, err
			}
		}
		if m == nil || m.Recipient != a.Phone {
			results[i] = ErrNotFound
			continue
		}
		if m.Status == StatusDelivered || m.Status == StatusQueued {
			// A queued message was never sent, so its ack is a client bug;
			// accepting it as a no-op keeps the queue entry intact.
			continue
		}
		if err := s.deliverLocked(b, m, now); err != nil {
			return nil, nil, err
		}
		pending[a.ID] = m
	}
	if len(pending) == 0 {
		return results, nil, nil
	}
	delivered := make([]*Message, 0, len(pending))
	for _, m := range pending {
		delivered = append(delivered, m)
	}
	return results, delivered, s.commitTransition(b, pebble.Sync)
}

func (s *Store) deliverLocked(b *pebble.Batch, m *Message, now time.Time) error {
	if m.Status == StatusPending || m.Status == StatusSent {
		s.onCommit(func() { s.count.inbox.Add(-1); s.count.addPhone(m.Recipient, -1) })
	}
	_ = b.Delete(inboxKey(m.Recipient, m.Priority, m.ID), nil)
	if !m.Due.IsZero() {
		_ = b.Delete(retryKey(m.Due, m.ID), nil)
	}
	if m.MovedToDlqAt != nil {
		_ = b.Delete(dlqKey(*m.MovedToDlqAt, m.ID), nil)
	}
	m.Status = StatusDelivered
	at := now
	m.DeliveredAt = &at
	m.NextRetryAt = nil
	m.Due = time.Time{}
	v, err := encodeMessage(m)
	if err != nil {
		return err
	}
	return b.Set(messageKey(m.ID), v, nil)
}

// InboxCursor marks a position in an inbox; the zero value is its start.
type InboxCursor []byte

// Inbox returns up to limit messages of phone's inbox after cursor, in
// delivery order (higher priority first, then acceptance order), and the
// cursor after the last one.
func (s *Store) Inbox(ctx context.Context, phone string, after InboxCursor, limit int) (
	[]*Message, InboxCursor, error) {
	if err := s.enter(ctx); err != nil {
		return nil, nil, err
	}
	defer s.exit()
	prefix := inboxPrefix(phone)
	lower := prefix
	if len(after) > 0 {
		lower = append(append([]byte(nil), after...), 0)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upperBound(prefix)})
	if err != nil {
		return nil, nil, fmt.Errorf("storage: read inbox: %w", err)
	}
	defer it.Close()
	var out []*Message
	cursor := after
	for it.First(); it.Valid() && len(out) < limit; it.Next() {
		m, err := s.getLocked(idFromSuffix(it.Key()))
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, nil, err
		}
		cursor = append(InboxCursor(nil), it.Key()...)
		if m != nil {
			out = append(out, m)
		}
	}
	return out, cursor, it.Error()
}

// Due returns up to limit messages whose retry schedule entry is due at or
// before now, earliest first, and the time of the next entry after them
// (zero when there is none).
func (s *Store) Due(ctx context.Context, now time.Time, limit int) ([]*Message, time.Time, error) {
	if err := s.enter(ctx); err != nil {
		return nil, time.Time{}, err
	}
	defer s.exit()
	lower := []byte{prefixRetry}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upperBound(lower)})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("storage: read retry schedule: %w", err)
	}
	defer it.Close()
	var out []*Message
	for it.First(); it.Valid(); it.Next() {
		due := keyTime(it.Key())
		if due.After(now) || len(out) >= limit {
			return out, due, it.Error()
		}
		m, err := s.getLocked(idFromSuffix(it.Key()))
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, time.Time{}, err
		}
		if m != nil {
			out = append(out, m)
		}
	}
	return out, time.Time{}, it.Error()
}

func keyTime(k []byte) time.Time {
	var n int64
	for _, c := range k[1:9] {
		n = n<<8 | int64(c)
	}
	return time.Unix(0, n)
}
