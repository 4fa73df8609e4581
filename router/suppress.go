package router

import (
	"sync"
	"time"

	"github.com/esh3artech/esh3artech/storage"
)

// suppressor remembers recently acknowledged message ids so that a send
// which read the message before its acknowledgement was written does not
// reach a device after the acknowledgement completed. An id is held for
// two to three rotation periods, long after any such send has finished.
type suppressor struct {
	mu      sync.Mutex
	current map[storage.ID]struct{}
	prev    map[storage.ID]struct{}
	rotated time.Time
	period  time.Duration
}

func newSuppressor(period time.Duration) *suppressor {
	return &suppressor{
		current: map[storage.ID]struct{}{}, prev: map[storage.ID]struct{}{},
		rotated: time.Now(), period: period,
	}
}

// add marks id acknowledged.
func (s *suppressor) add(id storage.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotateLocked()
	s.current[id] = struct{}{}
}

// remove forgets id, for an acknowledgement that failed.
func (s *suppressor) remove(id storage.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.current, id)
	delete(s.prev, id)
}

// sendUnlessAcked calls send with the suppressor locked unless id was
// acknowledged, so that an acknowledgement either precedes the check or
// follows the send. send must not block.
func (s *suppressor) sendUnlessAcked(id storage.ID, send func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.current[id]; ok {
		return false
	}
	if _, ok := s.prev[id]; ok {
		return false
	}
	send()
	return true
}

func (s *suppressor) rotateLocked() {
	if time.Since(s.rotated) < s.period {
		return
	}
	s.prev, s.current = s.current, map[storage.ID]struct{}{}
	s.rotated = time.Now()
}

// sendAll calls send with the suppressor locked and the indexes of the ids
// that were not acknowledged. send must not block.
func (s *suppressor) sendAll(ids []storage.ID, send func(keep []int)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := make([]int, 0, len(ids))
	for i, id := range ids {
		_, a := s.current[id]
		_, b := s.prev[id]
		if !a && !b {
			keep = append(keep, i)
		}
	}
	send(keep)
}
