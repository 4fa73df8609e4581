package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// counters track the sizes that backpressure and metrics read on every
// request, so that they never scan the store. They are rebuilt by a scan
// when the store opens and kept in step by each committed transition.
type counters struct {
	queue atomic.Int64 // accepted, not yet routed
	inbox atomic.Int64 // in an inbox, not yet acknowledged or dead-lettered

	mu      sync.Mutex
	byPhone map[string]int // queued or in an inbox, per recipient

	stalls     atomic.Int64
	stallStart atomic.Int64 // unix nanos of the current stall, or 0
	stallNanos atomic.Int64 // total time in finished stalls
}

func (c *counters) addPhone(phone string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.byPhone[phone] + n
	if v <= 0 {
		delete(c.byPhone, phone)
		return
	}
	c.byPhone[phone] = v
}

// load counts the queue and the inboxes. It runs once, from Open.
func (c *counters) load(db *pebble.DB) error {
	c.byPhone = map[string]int{}
	for _, prefix := range []byte{prefixQueue, prefixInbox} {
		lower := []byte{prefix}
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upperBound(lower)})
		if err != nil {
			return fmt.Errorf("storage: count %c: %w", prefix, err)
		}
		for it.First(); it.Valid(); it.Next() {
			if err := c.loadEntry(db, prefix, it.Key()); err != nil {
				it.Close()
				return err
			}
		}
		if err := it.Close(); err != nil {
			return fmt.Errorf("storage: count %c: %w", prefix, err)
		}
	}
	return nil
}

func (c *counters) loadEntry(db *pebble.DB, prefix byte, key []byte) error {
	if prefix == prefixInbox {
		c.inbox.Add(1)
		// The phone lies between the prefix byte and the 0x00 separator.
		phone := key[1 : len(key)-1-1-idLen]
		c.byPhone[string(phone)]++
		return nil
	}
	c.queue.Add(1)
	v, closer, err := db.Get(messageKey(idFromSuffix(key)))
	if err != nil {
		return nil // a queue entry without a message is skipped when routed
	}
	defer closer.Close()
	m, err := decodeMessage(v)
	if err != nil {
		return err
	}
	c.byPhone[m.Recipient]++
	return nil
}

// Stats are figures of the store for metrics and backpressure.
type Stats struct {
	QueueDepth        int64         // messages accepted and not yet routed
	InboxTotal        int64         // messages in inboxes, not yet acknowledged
	DiskUsage         uint64        // bytes of Pebble's files
	WriteStalls       int64         // write stalls since the store opened
	WriteStallTime    time.Duration // time spent in write stalls
	WALFsyncLatency   prometheus.Histogram
	ReadAmplification int
}

// Stats returns the store's current figures.
func (s *Store) Stats() Stats {
	st := Stats{
		QueueDepth:     s.count.queue.Load(),
		InboxTotal:     s.count.inbox.Load(),
		WriteStalls:    s.count.stalls.Load(),
		WriteStallTime: time.Duration(s.count.stallNanos.Load()),
	}
	if start := s.count.stallStart.Load(); start != 0 {
		st.WriteStallTime += time.Since(time.Unix(0, start))
	}
	if s.enter(context.Background()) == nil {
		defer s.exit()
		m := s.db.Metrics()
		st.DiskUsage = m.DiskSpaceUsage()
		st.WALFsyncLatency = m.LogWriter.FsyncLatency
		st.ReadAmplification = m.ReadAmp()
	}
	return st
}

// QueueDepth returns how many messages are accepted and not yet routed.
// Unlike Stats, it reads only a counter, so it suits every request.
func (s *Store) QueueDepth() int64 { return s.count.queue.Load() }

// InboxTotal returns how many messages are in inboxes, not yet
// acknowledged. It reads only a counter.
func (s *Store) InboxTotal() int64 { return s.count.inbox.Load() }

// Pending returns how many messages to phone are queued or in its inbox.
func (s *Store) Pending(phone string) int {
	s.count.mu.Lock()
	defer s.count.mu.Unlock()
	return s.count.byPhone[phone]
}

// feed lists the ids of messages queued since the processor last took
// them, so that routing reads them by id instead of scanning the queue
// over the tombstones of routed entries.
type feed struct {
	mu  sync.Mutex
	ids []ID
}

func (f *feed) add(ids ...ID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids = append(f.ids, ids...)
}

// TakeQueued returns the ids of the messages queued since the last call,
// in the order they were committed, and forgets them. Every one of them
// was committed before the call.
func (s *Store) TakeQueued() []ID {
	s.feed.mu.Lock()
	defer s.feed.mu.Unlock()
	ids := s.feed.ids
	s.feed.ids = nil
	return ids
}

// Queued returns the messages among ids that are still queued, in the
// order of ids.
func (s *Store) Queued(ctx context.Context, ids []ID) ([]*Message, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	out := make([]*Message, 0, len(ids))
	for _, id := range ids {
		m, err := s.getLocked(id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m.Status == StatusQueued {
			out = append(out, m)
		}
	}
	return out, nil
}
