package router

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/esh3artech/esh3artech/hub"
	"github.com/esh3artech/esh3artech/storage"
)

// backlog sends a connection its recipient's inbox a page at a time: the
// next page once every message of the previous one was acknowledged, or
// once the first retry wait has passed, so one lost acknowledgement does
// not stall the rest.
type backlog struct {
	conn target

	mu          sync.Mutex
	outstanding map[storage.ID]struct{}
	pageDone    chan struct{} // one slot: the outstanding set became empty
}

// backlogSet indexes the running backlogs by user.
type backlogSet struct {
	mu     sync.Mutex
	byUser map[string][]*backlog
}

func (s *backlogSet) add(b *backlog) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byUser[b.conn.User] = append(s.byUser[b.conn.User], b)
}

func (s *backlogSet) remove(b *backlog) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.byUser[b.conn.User]
	for i, x := range list {
		if x == b {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.byUser, b.conn.User)
		return
	}
	s.byUser[b.conn.User] = list
}

// acked tells every backlog of user that id was acknowledged.
func (s *backlogSet) acked(user string, id storage.ID) {
	s.mu.Lock()
	list := append([]*backlog(nil), s.byUser[user]...)
	s.mu.Unlock()
	for _, b := range list {
		b.ack(id)
	}
}

func (b *backlog) ack(id storage.ID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.outstanding[id]; !ok {
		return
	}
	delete(b.outstanding, id)
	if len(b.outstanding) == 0 {
		signal(b.pageDone)
	}
}

func (b *backlog) setPage(ids []storage.ID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.outstanding = make(map[storage.ID]struct{}, len(ids))
	for _, id := range ids {
		b.outstanding[id] = struct{}{}
	}
	select {
	case <-b.pageDone:
	default:
	}
}

// startBacklog sends connection t its user's backlog until ctx ends.
func (r *Router) startBacklog(ctx context.Context, t target) {
	b := &backlog{conn: t, pageDone: make(chan struct{}, 1)}
	r.backlogs.add(b)
	r.goLoop(func() {
		defer r.backlogs.remove(b)
		r.sendBacklog(ctx, b)
	})
}

func (r *Router) sendBacklog(ctx context.Context, b *backlog) {
	var cursor storage.InboxCursor
	for ctx.Err() == nil && !r.stopped() {
		page, next, err := r.store.Inbox(ctx, b.conn.User, cursor, r.cfg.PageSize)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("reading backlog failed", zap.String("conn_id", b.conn.ID), zap.Error(err))
			}
			return
		}
		if len(page) == 0 {
			return
		}
		cursor = next
		ids := r.sendPage(ctx, b, page)
		if len(ids) == 0 {
			continue
		}
		if !r.waitPage(ctx, b) {
			return
		}
	}
}

// sendPage sends the messages of page that were not acknowledged meanwhile
// and returns their ids.
func (r *Router) sendPage(ctx context.Context, b *backlog, page []*storage.Message) []storage.ID {
	var ids []storage.ID
	var payload []hub.MobileMessage
	for _, m := range page {
		if m.Status != storage.StatusPending && m.Status != storage.StatusSent {
			continue
		}
		ids = append(ids, m.ID)
		payload = append(payload, mobileMessage(m))
	}
	if len(ids) == 0 {
		return nil
	}
	b.setPage(ids)
	var err error
	r.acked.sendAll(ids, func(keep []int) {
		if len(keep) < len(payload) {
			payload = pick(payload, keep)
			ids = pickIDs(ids, keep)
		}
		if len(payload) > 0 {
			err = r.sendPending(b.conn, payload)
		}
	})
	if err != nil {
		r.log.Debug("backlog send failed", zap.String("conn_id", b.conn.ID), zap.Error(err))
		return nil
	}
	r.markSent(ctx, ids)
	return ids
}

// waitPage waits until the page was acknowledged or the first retry wait
// passed, and reports whether the backlog should go on.
func (r *Router) waitPage(ctx context.Context, b *backlog) bool {
	t := time.NewTimer(r.cfg.backoff(1))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-r.stop:
		return false
	case <-b.pageDone:
		return true
	case <-t.C:
		return true
	}
}

func pick(ms []hub.MobileMessage, keep []int) []hub.MobileMessage {
	out := make([]hub.MobileMessage, 0, len(keep))
	for _, i := range keep {
		out = append(out, ms[i])
	}
	return out
}

func pickIDs(ids []storage.ID, keep []int) []storage.ID {
	out := make([]storage.ID, 0, len(keep))
	for _, i := range keep {
		out = append(out, ids[i])
	}
	return out
}
