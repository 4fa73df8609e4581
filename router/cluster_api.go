package router

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/esh3artech/esh3artech/storage"
)

// peerNodes returns the other live nodes.
func (r *Router) peerNodes() []string {
	self := r.placement.Self()
	var out []string
	for _, n := range r.placement.Nodes() {
		if n != self {
			out = append(out, n)
		}
	}
	return out
}

// Message returns a message by id from this node's store or, in a cluster,
// from whichever node holds it.
func (r *Router) Message(ctx context.Context, id storage.ID) (*storage.Message, error) {
	m, err := r.store.Get(ctx, id)
	if !errors.Is(err, storage.ErrNotFound) {
		return m, err
	}
	results, failed := r.askPeers(ctx, func(ctx context.Context, node string) (*storage.Message, error) {
		var pm storage.Message
		err := r.peers.call(ctx, node, http.MethodGet, peerPathMessage+id.String(), nil, &pm)
		return &pm, err
	})
	switch {
	case len(results) > 0:
		return results[0], nil
	case failed > 0:
		return nil, fmt.Errorf("%w: %d nodes that may hold message %s did not respond",
			ErrPeerUnavailable, failed, id)
	}
	return nil, storage.ErrNotFound
}

// askPeers calls f on every other node in parallel and returns the
// messages of the calls that succeeded, and how many calls failed for a
// reason other than the peer responding 404 or 409.
func (r *Router) askPeers(ctx context.Context,
	f func(ctx context.Context, node string) (*storage.Message, error)) ([]*storage.Message, int) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PeerTimeout)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	var out []*storage.Message
	failed := 0
	for _, node := range r.peerNodes() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := f(ctx, node)
			var pe *peerError
			answered := errors.As(err, &pe) && (pe.Status == http.StatusNotFound ||
				pe.Status == http.StatusConflict)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && m != nil:
				out = append(out, m)
			case err != nil && !answered:
				failed++
			}
		}()
	}
	wg.Wait()
	return out, failed
}

// Requeue puts a dead-lettered message back into the queue with its
// attempts reset, on whichever node holds it.
func (r *Router) Requeue(ctx context.Context, id storage.ID) (*storage.Message, error) {
	m, err := r.requeueLocal(ctx, id)
	if !errors.Is(err, storage.ErrNotFound) {
		return m, err
	}
	var notInDLQ bool
	var mu sync.Mutex
	results, failed := r.askPeers(ctx, func(ctx context.Context, node string) (*storage.Message, error) {
		var pm storage.Message
		err := r.peers.call(ctx, node, http.MethodPost, peerPathRequeue+id.String(), nil, &pm)
		var pe *peerError
		if errors.As(err, &pe) && pe.Status == http.StatusConflict {
			mu.Lock()
			notInDLQ = true
			mu.Unlock()
		}
		return &pm, err
	})
	switch {
	case len(results) > 0:
		return results[0], nil
	case notInDLQ:
		return nil, storage.ErrNotInDLQ
	case failed > 0:
		return nil, fmt.Errorf("%w: %d nodes that may hold message %s did not respond",
			ErrPeerUnavailable, failed, id)
	}
	return nil, storage.ErrNotFound
}

// ListDLQ returns up to limit dead-lettered messages matching f after
// cursor from every node, in the order of the dead-letter index (time
// moved, then id), and the cursor after the last one. The index key is the
// same on every node, so one cursor pages through all of them.
func (r *Router) ListDLQ(ctx context.Context, f storage.DLQFilter, after storage.DLQCursor,
	limit int) ([]*storage.Message, storage.DLQCursor, error) {
	local, _, err := r.store.ListDLQ(ctx, f, after, limit+1)
	if err != nil {
		return nil, nil, err
	}
	all := append([]*storage.Message(nil), local...)
	failed := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	cctx, cancel := context.WithTimeout(ctx, r.cfg.PeerTimeout)
	defer cancel()
	for _, node := range r.peerNodes() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var body dlqBody
			err := r.peers.call(cctx, node, http.MethodGet, dlqQuery(f, after, limit+1), nil, &body)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			all = append(all, body.Messages...)
		}()
	}
	wg.Wait()
	if failed > 0 {
		// A page without an unreachable node's messages would let a client
		// that follows nextCursor skip them for good.
		return nil, nil, fmt.Errorf("%w: %d nodes did not respond", ErrPeerUnavailable, failed)
	}
	slices.SortFunc(all, compareDLQ)
	if len(all) <= limit {
		return all, nil, nil
	}
	all = all[:limit]
	last := all[limit-1]
	return all, storage.DLQCursorOf(last), nil
}

func compareDLQ(a, b *storage.Message) int {
	if c := a.MovedToDlqAt.Compare(*b.MovedToDlqAt); c != 0 {
		return c
	}
	return slices.Compare(a.ID[:], b.ID[:])
}

func dlqQuery(f storage.DLQFilter, after storage.DLQCursor, limit int) string {
	q := url.Values{}
	q.Set("client", f.Client)
	if !f.From.IsZero() {
		q.Set("from", f.From.Format(time.RFC3339Nano))
	}
	if !f.To.IsZero() {
		q.Set("to", f.To.Format(time.RFC3339Nano))
	}
	q.Set("cursor", base64.RawURLEncoding.EncodeToString(after))
	q.Set("limit", strconv.Itoa(limit))
	return peerPathDLQ + "?" + q.Encode()
}
