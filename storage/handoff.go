package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Moving messages between nodes. The receiving node makes the messages
// durable first (AcceptForwarded or Adopt); only then does the sending node
// delete its copy (DeleteForwarded or Release). A crash between the two
// steps leaves a copy on both nodes, which the receiving side skips by id
// when it is sent again.

// QueueCursor marks a position in the durable queue; nil is its start.
type QueueCursor []byte

// PeekQueueAfter returns up to limit queued messages after cursor, in
// acceptance order, and the cursor after the last entry read.
func (s *Store) PeekQueueAfter(ctx context.Context, after QueueCursor, limit int) (
	[]*Message, QueueCursor, error) {
	if err := s.enter(ctx); err != nil {
		return nil, nil, err
	}
	defer s.exit()
	lower := []byte{prefixQueue}
	if len(after) > 0 {
		lower = append(append([]byte(nil), after...), 0)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upperBound([]byte{prefixQueue})})
	if err != nil {
		return nil, nil, fmt.Errorf("storage: read queue: %w", err)
	}
	defer it.Close()
	var out []*Message
	cursor := after
	for it.First(); it.Valid() && len(out) < limit; it.Next() {
		cursor = append(QueueCursor(nil), it.Key()...)
		m, err := s.getLocked(idFromSuffix(it.Key()))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		out = append(out, m)
	}
	return out, cursor, it.Error()
}

// AcceptForwarded stores messages that another node accepted and forwarded
// to this one, their owner, as queued. Messages whose id is already stored
// are skipped, so a repeated forward creates nothing twice. It returns how
// many it stored.
func (s *Store) AcceptForwarded(ctx context.Context, msgs []*Message) (int, error) {
	return s.adopt(ctx, msgs, func(b *pebble.Batch, m *Message) {
		m.Status = StatusQueued
		_ = b.Set(queueKey(m.ID), nil, nil)
		s.onCommit(func() {
			s.count.queue.Add(1)
			s.count.addPhone(m.Recipient, 1)
			s.feed.add(m.ID)
		})
	})
}

// Adopt stores messages that their previous owner hands over, with their
// status: inbox messages with their attempts and retry schedule, and
// delivered or dead-lettered ones as records (dead letters in the
// dead-letter index) for status reads. Messages whose id is already stored
// are skipped. It returns how many it stored.
func (s *Store) Adopt(ctx context.Context, msgs []*Message) (int, error) {
	return s.adopt(ctx, msgs, func(b *pebble.Batch, m *Message) {
		switch m.Status {
		case StatusPending, StatusSent:
			_ = b.Set(inboxKey(m.Recipient, m.Priority, m.ID), nil, nil)
			_ = b.Set(retryKey(m.Due, m.ID), nil, nil)
			s.onCommit(func() { s.count.inbox.Add(1); s.count.addPhone(m.Recipient, 1) })
		case StatusFailed:
			if m.MovedToDlqAt != nil {
				_ = b.Set(dlqKey(*m.MovedToDlqAt, m.ID), nil, nil)
			}
		}
	})
}

// Settled returns up to limit messages after cursor that are delivered or
// dead-lettered, and the cursor after the last record read (nil at the
// end). A node that leaves its cluster hands these over so that their
// status stays readable.
func (s *Store) Settled(ctx context.Context, after []byte, limit int) ([]*Message, []byte, error) {
	if err := s.enter(ctx); err != nil {
		return nil, nil, err
	}
	defer s.exit()
	lower := []byte{prefixMessage}
	if len(after) > 0 {
		lower = append(append([]byte(nil), after...), 0)
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upperBound([]byte{prefixMessage})})
	if err != nil {
		return nil, nil, fmt.Errorf("storage: read messages: %w", err)
	}
	defer it.Close()
	var out []*Message
	var cursor []byte
	for it.First(); it.Valid() && len(out) < limit; it.Next() {
		cursor = append(cursor[:0], it.Key()...)
		m, err := decodeMessage(it.Value())
		if err != nil {
			return nil, nil, err
		}
		if m.Status == StatusDelivered || m.Status == StatusFailed || m.Status == StatusRead {
			out = append(out, m)
		}
	}
	if !it.Valid() {
		cursor = nil
	}
	return out, cursor, it.Error()
}

// DropSettled deletes delivered or dead-lettered messages that another
// node has stored.
func (s *Store) DropSettled(ctx context.Context, msgIDs []ID) error {
	_, err := s.transitionAction(ctx, msgIDs, pebble.NoSync, func(b *pebble.Batch, m *Message) (action, error) {
		switch m.Status {
		case StatusDelivered, StatusRead:
			return remove, nil
		case StatusFailed:
			if m.MovedToDlqAt != nil {
				_ = b.Delete(dlqKey(*m.MovedToDlqAt, m.ID), nil)
			}
			return remove, nil
		}
		return skip, nil
	})
	return err
}

func (s *Store) adopt(ctx context.Context, msgs []*Message, add func(*pebble.Batch, *Message)) (int, error) {
	if err := s.enter(ctx); err != nil {
		return 0, err
	}
	defer s.exit()
	s.transMu.Lock()
	defer s.transMu.Unlock()
	s.afterCommit = s.afterCommit[:0]
	b := s.db.NewBatch()
	defer b.Close()
	n := 0
	for _, m := range msgs {
		_, err := s.getLocked(m.ID)
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrNotFound) {
			return 0, err
		}
		add(b, m)
		v, err := encodeMessage(m)
		if err != nil {
			return 0, err
		}
		_ = b.Set(messageKey(m.ID), v, nil)
		n++
	}
	if n == 0 {
		return 0, nil
	}
	return n, s.commitTransition(b, pebble.Sync)
}

// DeleteForwarded deletes messages that their owner has made durable,
// with their queue entries. Messages no longer queued here are kept.
func (s *Store) DeleteForwarded(ctx context.Context, msgIDs []ID) error {
	_, err := s.transitionAction(ctx, msgIDs, pebble.NoSync, func(b *pebble.Batch, m *Message) (action, error) {
		if m.Status != StatusQueued {
			return skip, nil
		}
		_ = b.Delete(queueKey(m.ID), nil)
		s.onCommit(func() { s.count.queue.Add(-1); s.count.addPhone(m.Recipient, -1) })
		return remove, nil
	})
	return err
}

// Release deletes inbox messages that their new owner has made durable,
// with their inbox and retry entries. Messages that left the inbox
// meanwhile (acknowledged or dead-lettered here) are kept.
//
// It returns the messages it deleted.
func (s *Store) Release(ctx context.Context, msgIDs []ID) ([]*Message, error) {
	return s.transitionAction(ctx, msgIDs, pebble.NoSync, func(b *pebble.Batch, m *Message) (action, error) {
		if m.Status != StatusPending && m.Status != StatusSent {
			return skip, nil
		}
		_ = b.Delete(inboxKey(m.Recipient, m.Priority, m.ID), nil)
		_ = b.Delete(retryKey(m.Due, m.ID), nil)
		s.onCommit(func() { s.count.inbox.Add(-1); s.count.addPhone(m.Recipient, -1) })
		return remove, nil
	})
}

// InboxesNotOwned returns up to limit inbox messages whose recipient owned
// reports false, for handing them to their owners.
func (s *Store) InboxesNotOwned(ctx context.Context, owned func(phone string) bool, limit int) (
	[]*Message, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	lower := []byte{prefixInbox}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upperBound(lower)})
	if err != nil {
		return nil, fmt.Errorf("storage: read inboxes: %w", err)
	}
	defer it.Close()
	var out []*Message
	for it.First(); it.Valid() && len(out) < limit; {
		phone := string(it.Key()[1 : len(it.Key())-1-1-idLen])
		if owned(phone) {
			// Skip this recipient's whole inbox.
			it.SeekGE(upperBound(inboxPrefix(phone)))
			continue
		}
		m, err := s.getLocked(idFromSuffix(it.Key()))
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		if m != nil {
			out = append(out, m)
		}
		it.Next()
	}
	return out, it.Error()
}
