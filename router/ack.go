package router

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/esh3artech/esh3artech/hub"
	"github.com/esh3artech/esh3artech/storage"
)

// ackRequest is one AcknowledgeMessage call waiting for its write.
type ackRequest struct {
	ack  storage.Ack
	done chan error // receives exactly one result
}

// Acknowledge marks a message of the connection's user Delivered, on the
// node that owns the user. It returns once that is on disk, so the
// invocation's completion follows the write. It implements hub.Events.
func (r *Router) Acknowledge(ctx context.Context, c hub.ConnInfo, messageID string) error {
	if node, local := r.placement.Owner(c.User); !local {
		return r.peers.sendAck(ctx, node, c, messageID, false)
	}
	return r.acknowledgeLocal(ctx, c, messageID)
}

// acknowledgeLocal marks a message in this node's store Delivered.
func (r *Router) acknowledgeLocal(ctx context.Context, c hub.ConnInfo, messageID string) error {
	id, err := storage.ParseID(messageID)
	if err != nil {
		return &hub.ClientError{Message: fmt.Sprintf("invalid message id %q: expected a UUID", messageID)}
	}
	// NB: suppress further sends before the write, so no send that read the
	// message earlier reaches a device after this call returns.
	r.acked.add(id)
	req := &ackRequest{ack: storage.Ack{Phone: c.User, ID: id}, done: make(chan error, 1)}
	select {
	case r.acks <- req:
	case <-ctx.Done():
		r.acked.remove(id)
		return ctx.Err()
	case <-r.stop:
		r.acked.remove(id)
		return errors.New("router: shutting down")
	}
	select {
	case err = <-req.done:
	case <-ctx.Done():
		return ctx.Err() // the write may still land; the ack is idempotent
	}
	if err != nil {
		r.acked.remove(id)
		if errors.Is(err, storage.ErrNotFound) {
			return &hub.ClientError{Message: fmt.Sprintf("message %s not found for this user", id)}
		}
		return err
	}
	r.backlogs.acked(c.User, id)
	return nil
}

// runAckWriter writes acknowledgements in batches: each batch holds every
// request that arrived while the previous one was being written.
func (r *Router) runAckWriter() {
	batch := make([]*ackRequest, 0, r.cfg.AckBatch)
	for {
		batch = batch[:0]
		select {
		case <-r.stop:
			return
		case req := <-r.acks:
			batch = append(batch, req)
		}
		batch = r.fillAckBatch(batch)
		r.writeAcks(batch)
	}
}

func (r *Router) fillAckBatch(batch []*ackRequest) []*ackRequest {
	for len(batch) < r.cfg.AckBatch {
		select {
		case req := <-r.acks:
			batch = append(batch, req)
		default:
			return batch
		}
	}
	return batch
}

func (r *Router) writeAcks(batch []*ackRequest) {
	acks := make([]storage.Ack, len(batch))
	for i, req := range batch {
		acks[i] = req.ack
	}
	now := r.cfg.Now()
	results, delivered, err := r.store.Acknowledge(context.Background(), acks, now)
	if err != nil {
		r.log.Error("writing acknowledgements failed", zap.Int("count", len(batch)), zap.Error(err))
	}
	for _, m := range delivered {
		r.cfg.Metrics.Delivered.Inc()
		r.cfg.Metrics.DeliveryLatency.Observe(now.Sub(m.CreationTime).Seconds())
	}
	for i, req := range batch {
		if err != nil {
			req.done <- err
			continue
		}
		req.done <- results[i]
		if results[i] == nil {
			r.log.Debug("message acknowledged", zap.Stringer("msg_id", req.ack.ID),
				zap.String("phone", req.ack.Phone))
		}
	}
}
