package router

import (
	"context"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/esh3artech/esh3artech/hub"
)

// edgeConns are the hub connections on this node, with the node each is
// attached to: this one when it owns the user, else the owner.
type edgeConns struct {
	mu    sync.Mutex
	conns map[string]*edgeConn // by conn id
}

type edgeConn struct {
	info   hub.ConnInfo
	ctx    context.Context // ends when the connection ends
	owner  string          // node the connection is attached to; "" for this one
	cancel context.CancelFunc
}

// Connected attaches a new connection to its user's owner: this node starts
// its backlog, or it asks the owner to. It implements hub.Events and
// returns at once.
func (r *Router) Connected(ctx context.Context, c hub.ConnInfo) {
	r.log.Debug("connection registered", zap.String("conn_id", c.ID), zap.String("phone", c.User))
	ec := &edgeConn{info: c, ctx: ctx}
	r.edge.mu.Lock()
	r.edge.conns[c.ID] = ec
	r.edge.mu.Unlock()
	r.attach(ec)
}

// Disconnected implements hub.Events. The connection's backlog stops with
// its context and its owner forgets it; its messages stay in the inbox.
func (r *Router) Disconnected(c hub.ConnInfo) {
	r.log.Debug("connection gone", zap.String("conn_id", c.ID), zap.String("phone", c.User))
	r.edge.mu.Lock()
	ec := r.edge.conns[c.ID]
	delete(r.edge.conns, c.ID)
	r.edge.mu.Unlock()
	if ec == nil {
		return
	}
	r.detach(ec)
}

// attach binds ec to the current owner of its user. The caller must not
// hold r.edge.mu.
func (r *Router) attach(ec *edgeConn) {
	node, local := r.placement.Owner(ec.info.User)
	actx, cancel := context.WithCancel(ec.ctx)
	r.edge.mu.Lock()
	ec.owner, ec.cancel = node, cancel
	if local {
		ec.owner = ""
	}
	r.edge.mu.Unlock()
	if local {
		r.startBacklog(actx, target{ConnInfo: ec.info})
		return
	}
	r.goLoop(func() { r.attachRemoteWithRetry(actx, node, ec.info) })
}

// attachRemoteWithRetry sends the attachment to node until it responds
// or the attachment ends.
func (r *Router) attachRemoteWithRetry(ctx context.Context, node string, c hub.ConnInfo) {
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, r.cfg.PeerTimeout)
		err := r.peers.call(cctx, node, http.MethodPost, peerPathAttach,
			connBody{User: c.User, ConnID: c.ID}, nil)
		cancel()
		if err == nil {
			return
		}
		r.log.Debug("attach to owner failed", zap.String("peer", node),
			zap.String("conn_id", c.ID), zap.Error(err))
		t := time.NewTimer(stuckRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// detach ends ec's attachment, telling a remote owner to forget it.
func (r *Router) detach(ec *edgeConn) {
	r.edge.mu.Lock()
	owner, cancel := ec.owner, ec.cancel
	r.edge.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if owner == "" {
		return
	}
	r.goLoop(func() {
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.PeerTimeout)
		defer cancel()
		_ = r.peers.call(ctx, owner, http.MethodPost, peerPathDetach,
			connBody{User: ec.info.User, ConnID: ec.info.ID}, nil)
	})
}

// attachRemote registers a connection on node for a user this node owns
// and starts its backlog.
func (r *Router) attachRemote(c hub.ConnInfo, node string) {
	ctx, cancel := context.WithCancel(context.Background())
	r.remote.add(c.User, c.ID, node, cancel)
	r.log.Debug("remote connection attached", zap.String("conn_id", c.ID),
		zap.String("phone", c.User), zap.String("peer", node))
	r.startBacklog(ctx, target{ConnInfo: c, Node: node})
}

// reattach moves every local connection whose user changed owner to the
// new owner, after a ring change.
func (r *Router) reattach() {
	r.edge.mu.Lock()
	var moved []*edgeConn
	for _, ec := range r.edge.conns {
		node, local := r.placement.Owner(ec.info.User)
		if local {
			node = ""
		}
		if node != ec.owner {
			moved = append(moved, ec)
		}
	}
	r.edge.mu.Unlock()
	for _, ec := range moved {
		r.detach(ec)
		r.attach(ec)
	}
	if len(moved) > 0 {
		r.log.Info("connections moved to new owners", zap.Int("count", len(moved)))
	}
}

// runAttachRefresh re-sends every remote attachment to its owner each
// Config.AttachRefresh. An owner keeps attachments in memory, so it loses
// them when it restarts, or when it briefly has this node out of its ring.
func (r *Router) runAttachRefresh() {
	t := time.NewTicker(r.cfg.AttachRefresh)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		for owner, conns := range r.attachedByOwner() {
			ctx, cancel := context.WithTimeout(context.Background(), r.cfg.PeerTimeout)
			err := r.peers.call(ctx, owner, http.MethodPost, peerPathRefresh, refreshBody{Conns: conns}, nil)
			cancel()
			if err != nil {
				r.log.Debug("attachment refresh failed", zap.String("peer", owner), zap.Error(err))
			}
		}
	}
}

// attachedByOwner groups the local connections attached to other nodes by
// owner.
func (r *Router) attachedByOwner() map[string][]connBody {
	r.edge.mu.Lock()
	defer r.edge.mu.Unlock()
	out := map[string][]connBody{}
	for _, ec := range r.edge.conns {
		if ec.owner != "" && ec.ctx.Err() == nil {
			out[ec.owner] = append(out[ec.owner], connBody{User: ec.info.User, ConnID: ec.info.ID})
		}
	}
	return out
}
