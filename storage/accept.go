package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Idempotency identifies a request that a client may repeat. The zero value
// (empty Key) means the request is not idempotent.
type Idempotency struct {
	Client string   // client id; keys are scoped per client
	Key    string   // the Idempotency-Key header
	Hash   [32]byte // digest of what makes two requests the same (route and body)
	TTL    time.Duration
}

// idemRecord is the stored outcome of an idempotent request.
type idemRecord struct {
	Hash    []byte    `json:"h"`
	IDs     []ID      `json:"ids"`
	Created time.Time `json:"t"`
}

// Accept durably stores msgs and their queue entries in one batch committed
// with Sync, so that either all of them are accepted or none is. It returns
// the ids of the accepted messages. With a non-empty idem.Key, a repeat of
// an earlier request within idem.TTL returns the earlier ids with replay set
// and writes nothing, and a different request under the same key returns
// ErrIdempotencyConflict.
func (s *Store) Accept(ctx context.Context, msgs []*Message, idem Idempotency) (
	ids []ID, replay bool, err error,
) {
	if err := s.enter(ctx); err != nil {
		return nil, false, err
	}
	defer s.exit()
	if err := s.checkDisk(); err != nil {
		return nil, false, err
	}
	if idem.Key == "" {
		return s.acceptLocked(msgs, nil)
	}

	// NB: the stripe lock makes check-then-write atomic for one key, so two
	// concurrent requests with the same key create one set of messages.
	mu := &s.idemLocks[stripe(idem.Client, idem.Key)]
	mu.Lock()
	defer mu.Unlock()
	rec, err := s.idemLookup(idem)
	if err != nil {
		return nil, false, err
	}
	if rec != nil {
		if string(rec.Hash) != string(idem.Hash[:]) {
			return nil, false, ErrIdempotencyConflict
		}
		return rec.IDs, true, nil
	}
	return s.acceptLocked(msgs, &idem)
}

func (s *Store) acceptLocked(msgs []*Message, idem *Idempotency) ([]ID, bool, error) {
	b := s.db.NewBatch()
	defer b.Close()
	ids := make([]ID, len(msgs))
	for i, m := range msgs {
		v, err := encodeMessage(m)
		if err != nil {
			return nil, false, err
		}
		ids[i] = m.ID
		_ = b.Set(messageKey(m.ID), v, nil)
		_ = b.Set(queueKey(m.ID), nil, nil)
	}
	if idem != nil {
		rec := idemRecord{Hash: idem.Hash[:], IDs: ids, Created: time.Now().UTC()}
		v, err := json.Marshal(rec)
		if err != nil {
			return nil, false, fmt.Errorf("storage: encode idempotency record: %w", err)
		}
		_ = b.Set(idemKey(idem.Client, idem.Key), v, nil)
	}
	if err := s.commit(b); err != nil {
		return nil, false, err
	}
	s.count.queue.Add(int64(len(msgs)))
	s.feed.add(ids...)
	for _, m := range msgs {
		s.count.addPhone(m.Recipient, 1)
	}
	return ids, false, nil
}

// Replay returns the ids of an earlier request under idem within its TTL,
// with found set. A different request under the same key returns
// ErrIdempotencyConflict. Accept makes the same check atomically; Replay
// lets a caller answer a repeat before other checks.
func (s *Store) Replay(ctx context.Context, idem Idempotency) (ids []ID, found bool, err error) {
	if err := s.enter(ctx); err != nil {
		return nil, false, err
	}
	defer s.exit()
	rec, err := s.idemLookup(idem)
	if err != nil || rec == nil {
		return nil, false, err
	}
	if string(rec.Hash) != string(idem.Hash[:]) {
		return nil, false, ErrIdempotencyConflict
	}
	return rec.IDs, true, nil
}

// idemLookup returns the live record for idem, or nil when there is none or
// it has expired.
func (s *Store) idemLookup(idem Idempotency) (*idemRecord, error) {
	v, closer, err := s.db.Get(idemKey(idem.Client, idem.Key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("storage: read idempotency key: %w", err)
	}
	defer closer.Close()
	rec := new(idemRecord)
	if err := json.Unmarshal(v, rec); err != nil {
		return nil, fmt.Errorf("storage: decode idempotency record: %w: %w", ErrCorrupt, err)
	}
	if idem.TTL > 0 && time.Since(rec.Created) > idem.TTL {
		return nil, nil
	}
	return rec, nil
}

// SweepIdempotency deletes idempotency records older than ttl and returns
// how many it deleted.
func (s *Store) SweepIdempotency(ctx context.Context, ttl time.Duration) (int, error) {
	if err := s.enter(ctx); err != nil {
		return 0, err
	}
	defer s.exit()
	lower := []byte{prefixIdem}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upperBound(lower)})
	if err != nil {
		return 0, fmt.Errorf("storage: sweep idempotency keys: %w", err)
	}
	defer it.Close()
	b := s.db.NewBatch()
	defer b.Close()
	n := 0
	for it.First(); it.Valid() && ctx.Err() == nil; it.Next() {
		var rec idemRecord
		if json.Unmarshal(it.Value(), &rec) == nil && time.Since(rec.Created) <= ttl {
			continue
		}
		_ = b.Delete(it.Key(), nil)
		n++
	}
	if err := it.Error(); err != nil {
		return 0, fmt.Errorf("storage: sweep idempotency keys: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	return n, s.commit(b)
}

func (s *Store) checkDisk() error {
	if s.opts.MinFreeDisk == 0 {
		return nil
	}
	free, err := s.disk.Free()
	if err != nil {
		return fmt.Errorf("storage: check free disk: %w", err)
	}
	if free < s.opts.MinFreeDisk {
		return fmt.Errorf("%w: %d bytes free, minimum %d", ErrLowDisk, free, s.opts.MinFreeDisk)
	}
	return nil
}

func stripe(client, key string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(client))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % 64)
}
