package router

import (
	"context"
	"sync"

	"github.com/esh3artech/esh3artech/hub"
)

// target is one connection of a recipient: on this node (Node empty) or on
// a peer that attached it here, the recipient's owner.
type target struct {
	hub.ConnInfo
	Node string
}

// remoteConns are the connections that other nodes attached to this one
// because it owns their users. Each has a cancel function that stops its
// backlog.
type remoteConns struct {
	mu     sync.Mutex
	byUser map[string]map[string]remoteConn // user -> conn id -> conn
}

type remoteConn struct {
	node   string
	cancel context.CancelFunc
}

func (rc *remoteConns) add(user, connID, node string, cancel context.CancelFunc) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.byUser == nil {
		rc.byUser = map[string]map[string]remoteConn{}
	}
	conns := rc.byUser[user]
	if conns == nil {
		conns = map[string]remoteConn{}
		rc.byUser[user] = conns
	}
	if old, ok := conns[connID]; ok {
		old.cancel()
	}
	conns[connID] = remoteConn{node: node, cancel: cancel}
}

// remove drops a connection and stops its backlog.
func (rc *remoteConns) remove(user, connID string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	conns := rc.byUser[user]
	if c, ok := conns[connID]; ok {
		c.cancel()
		delete(conns, connID)
	}
	if len(conns) == 0 {
		delete(rc.byUser, user)
	}
}

// removeNode drops every connection attached by node, or by any node that
// keep reports false for.
func (rc *remoteConns) removeNodes(keep func(node string) bool) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for user, conns := range rc.byUser {
		for id, c := range conns {
			if !keep(c.node) {
				c.cancel()
				delete(conns, id)
				n++
			}
		}
		if len(conns) == 0 {
			delete(rc.byUser, user)
		}
	}
	return n
}

// dropUsers drops every connection whose user keep reports false for.
func (rc *remoteConns) dropUsers(keep func(user string) bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for user, conns := range rc.byUser {
		if keep(user) {
			continue
		}
		for _, c := range conns {
			c.cancel()
		}
		delete(rc.byUser, user)
	}
}

// has reports whether the connection is attached.
func (rc *remoteConns) has(user, connID string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	_, ok := rc.byUser[user][connID]
	return ok
}

func (rc *remoteConns) list(user string) []target {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []target
	for id, c := range rc.byUser[user] {
		out = append(out, target{ConnInfo: hub.ConnInfo{ID: id, User: user}, Node: c.node})
	}
	return out
}

// targets returns every connection of user that this node delivers to.
func (r *Router) targets(user string) []target {
	local := r.hub.Connections(user)
	out := make([]target, 0, len(local))
	for _, c := range local {
		out = append(out, target{ConnInfo: c})
	}
	return append(out, r.remote.list(user)...)
}

// sendMessage sends one message to t without blocking.
func (r *Router) sendMessage(t target, m hub.MobileMessage) error {
	if t.Node == "" {
		return r.hub.SendMessage(t.ID, m)
	}
	return r.peers.push(t.Node, pushItem{ConnID: t.ID, Messages: []hub.MobileMessage{m}})
}

// sendPending sends a backlog page to t without blocking.
func (r *Router) sendPending(t target, ms []hub.MobileMessage) error {
	if t.Node == "" {
		return r.hub.SendPending(t.ID, ms)
	}
	return r.peers.push(t.Node, pushItem{ConnID: t.ID, Pending: true, Messages: ms})
}
