package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// DLQFilter selects dead-lettered messages. Zero fields match everything.
type DLQFilter struct {
	Client string    // creator id
	From   time.Time // moved to the DLQ at or after
	To     time.Time // moved to the DLQ before
}

// DLQCursor marks a position in the dead-letter index; the zero value is
// its start.
type DLQCursor []byte

// ListDLQ returns up to limit dead-lettered messages matching f after
// cursor, oldest first, and the cursor after the last one (nil at the end).
func (s *Store) ListDLQ(ctx context.Context, f DLQFilter, after DLQCursor, limit int) (
	[]*Message, DLQCursor, error) {
	if err := s.enter(ctx); err != nil {
		return nil, nil, err
	}
	defer s.exit()
	lower, upper := []byte{prefixDLQ}, upperBound([]byte{prefixDLQ})
	if !f.From.IsZero() {
		lower = timeIDKey(prefixDLQ, f.From, ID{})
	}
	if len(after) > 0 {
		lower = append(append([]byte(nil), after...), 0)
	}
	if !f.To.IsZero() {
		upper = timeIDKey(prefixDLQ, f.To, ID{})
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, nil, fmt.Errorf("storage: read dead-letter index: %w", err)
	}
	defer it.Close()
	var out []*Message
	for it.First(); it.Valid() && ctx.Err() == nil; it.Next() {
		m, err := s.getLocked(idFromSuffix(it.Key()))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if f.Client != "" && m.CreatorID != f.Client {
			continue
		}
		if len(out) == limit {
			return out, append(DLQCursor(nil), prevKey(it)...), it.Error()
		}
		out = append(out, m)
	}
	return out, nil, it.Error()
}

// prevKey returns the key before the iterator's position, which is the
// last key returned to the caller.
func prevKey(it *pebble.Iterator) []byte {
	it.Prev()
	return it.Key()
}

// DLQCursorOf returns the cursor just after m in the dead-letter index.
// m must be dead-lettered.
func DLQCursorOf(m *Message) DLQCursor {
	return dlqKey(*m.MovedToDlqAt, m.ID)
}
