package router

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/esh3artech/esh3artech/hub"
	"github.com/esh3artech/esh3artech/storage"
)

// maxPeerBody bounds the body of a peer request.
const maxPeerBody = 64 << 20

// PeerHandler returns the handler of the peer link, for the node's internal
// listener. Requests without the cluster's token are rejected with 401.
func (r *Router) PeerHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+peerPathForward, r.serveForward)
	mux.HandleFunc("POST "+peerPathHandoff, r.serveHandoff)
	mux.HandleFunc("POST "+peerPathAttach, r.serveAttach)
	mux.HandleFunc("POST "+peerPathDetach, r.serveDetach)
	mux.HandleFunc("POST "+peerPathRefresh, r.serveRefresh)
	mux.HandleFunc("POST "+peerPathPush, r.servePush)
	mux.HandleFunc("POST "+peerPathAck, r.serveAck)
	mux.HandleFunc("GET "+peerPathMessage+"{id}", r.serveMessage)
	mux.HandleFunc("GET "+peerPathDLQ, r.serveDLQ)
	mux.HandleFunc("POST "+peerPathRequeue+"{id}", r.serveRequeue)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		got := req.Header.Get(headerPeerToken)
		if r.peerToken == "" || subtle.ConstantTimeCompare([]byte(got), []byte(r.peerToken)) != 1 {
			r.log.Warn("peer request rejected", zap.String("peer", req.Header.Get(headerPeerNode)),
				zap.String("remote", req.RemoteAddr))
			writePeerError(w, http.StatusUnauthorized, errors.New("invalid peer token"), false)
			return
		}
		req.Body = http.MaxBytesReader(w, req.Body, maxPeerBody)
		mux.ServeHTTP(w, req)
	})
}

func writePeerError(w http.ResponseWriter, status int, err error, clientVisible bool) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: err.Error(), ClientVisible: clientVisible})
}

// ownsAll responds 409 and returns false unless this node owns the
// recipient of every message. A sender whose ring differs keeps its copy
// and tries again once the rings agree; storing a message this node would
// send on, or send back, could let both copies be deleted.
func (r *Router) ownsAll(w http.ResponseWriter, msgs []*storage.Message) bool {
	for _, m := range msgs {
		if !r.owns(m.Recipient) {
			writePeerError(w, http.StatusConflict, fmt.Errorf("router: %s does not own recipient %s",
				r.placement.Self(), m.Recipient), false)
			return false
		}
	}
	return true
}

// validateMessages checks messages received from a peer before they are
// stored.
func validateMessages(msgs []*storage.Message) error {
	for i, m := range msgs {
		switch {
		case m == nil:
			return fmt.Errorf("router: message %d is null", i)
		case m.ID == (storage.ID{}):
			return fmt.Errorf("router: message %d has no id", i)
		case m.Recipient == "" || strings.Trim(m.Recipient, "0123456789") != "":
			return fmt.Errorf("router: message %s has invalid recipient %q", m.ID, m.Recipient)
		case !m.Priority.Valid():
			return fmt.Errorf("router: message %s has invalid priority %d", m.ID, m.Priority)
		case m.Status < storage.StatusPending || m.Status > storage.StatusFailed:
			return fmt.Errorf("router: message %s has invalid status %d", m.ID, m.Status)
		}
	}
	return nil
}

func writePeerJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func decodePeer(w http.ResponseWriter, req *http.Request, v any) bool {
	if err := json.NewDecoder(req.Body).Decode(v); err != nil {
		writePeerError(w, http.StatusBadRequest, err, false)
		return false
	}
	return true
}

// readOwnedMessages decodes and checks the messages of a forward or
// handoff, writing the error response and returning false for a body that
// is invalid or names a recipient this node does not own.
func (r *Router) readOwnedMessages(w http.ResponseWriter, req *http.Request) ([]*storage.Message, bool) {
	var body messagesBody
	if !decodePeer(w, req, &body) {
		return nil, false
	}
	if err := validateMessages(body.Messages); err != nil {
		writePeerError(w, http.StatusBadRequest, err, false)
		return nil, false
	}
	return body.Messages, r.ownsAll(w, body.Messages)
}

// serveForward stores messages accepted by another node for recipients
// this node owns, before the sender deletes its copy.
func (r *Router) serveForward(w http.ResponseWriter, req *http.Request) {
	msgs, ok := r.readOwnedMessages(w, req)
	if !ok {
		return
	}
	n, err := r.store.AcceptForwarded(req.Context(), msgs)
	if err != nil {
		writePeerError(w, http.StatusServiceUnavailable, err, false)
		return
	}
	r.log.Debug("forwarded messages stored", zap.String("peer", req.Header.Get(headerPeerNode)),
		zap.Int("count", n))
	r.rescan.Store(true)
	r.Notify()
	writePeerJSON(w, map[string]int{"stored": n})
}

// serveHandoff stores inbox messages that their previous owner hands over.
func (r *Router) serveHandoff(w http.ResponseWriter, req *http.Request) {
	msgs, ok := r.readOwnedMessages(w, req)
	if !ok {
		return
	}
	n, err := r.store.Adopt(req.Context(), msgs)
	if err != nil {
		writePeerError(w, http.StatusServiceUnavailable, err, false)
		return
	}
	r.log.Info("inbox messages adopted", zap.String("peer", req.Header.Get(headerPeerNode)),
		zap.Int("count", n))
	signal(r.wakeScheduler)
	r.restartBacklogs(msgs)
	writePeerJSON(w, map[string]int{"stored": n})
}

// serveAttach registers a connection that landed on another node for a
// user this node owns, and starts its backlog.
func (r *Router) serveAttach(w http.ResponseWriter, req *http.Request) {
	var body connBody
	if !decodePeer(w, req, &body) {
		return
	}
	if !r.owns(body.User) {
		writePeerError(w, http.StatusConflict, fmt.Errorf("router: %s does not own user %s",
			r.placement.Self(), body.User), false)
		return
	}
	node := req.Header.Get(headerPeerNode)
	r.attachRemote(hub.ConnInfo{ID: body.ConnID, User: body.User}, node)
	writePeerJSON(w, struct{}{})
}

// serveRefresh attaches the listed connections that this node does not
// know, which it lost when it restarted or when it briefly saw their node
// leave. Connections it already has keep their backlog.
func (r *Router) serveRefresh(w http.ResponseWriter, req *http.Request) {
	var body refreshBody
	if !decodePeer(w, req, &body) {
		return
	}
	node := req.Header.Get(headerPeerNode)
	added := 0
	for _, c := range body.Conns {
		if c.User == "" || c.ConnID == "" || !r.owns(c.User) || r.remote.has(c.User, c.ConnID) {
			continue
		}
		r.attachRemote(hub.ConnInfo{ID: c.ConnID, User: c.User}, node)
		added++
	}
	if added > 0 {
		r.log.Info("remote connections restored", zap.String("peer", node), zap.Int("count", added))
	}
	writePeerJSON(w, map[string]int{"added": added})
}

func (r *Router) serveDetach(w http.ResponseWriter, req *http.Request) {
	var body connBody
	if !decodePeer(w, req, &body) {
		return
	}
	r.remote.remove(body.User, body.ConnID)
	writePeerJSON(w, struct{}{})
}

// servePush sends messages from their owner to connections on this node.
func (r *Router) servePush(w http.ResponseWriter, req *http.Request) {
	var body pushBody
	if !decodePeer(w, req, &body) {
		return
	}
	var res pushResult
	for _, it := range body.Items {
		var err error
		if it.Pending {
			err = r.hub.SendPending(it.ConnID, it.Messages)
		} else if len(it.Messages) > 0 {
			err = r.hub.SendMessage(it.ConnID, it.Messages[0])
		}
		if err != nil {
			res.Gone = append(res.Gone, it.ConnID)
		}
	}
	writePeerJSON(w, res)
}

// serveAck handles an acknowledgement that a connection on another node
// received for a user this node owns.
func (r *Router) serveAck(w http.ResponseWriter, req *http.Request) {
	var body connBody
	if !decodePeer(w, req, &body) {
		return
	}
	c := hub.ConnInfo{ID: body.ConnID, User: body.User}
	var err error
	if node, local := r.placement.Owner(body.User); !local && !body.Forwarded {
		// The sender's ring is behind this one: the user moved on, and an ack
		// of the copy here would leave the new owner's copy to be sent again.
		err = r.peers.sendAck(req.Context(), node, c, body.MessageID, true)
	} else {
		err = r.acknowledgeLocal(req.Context(), c, body.MessageID)
	}
	var ce *hub.ClientError
	switch {
	case errors.As(err, &ce):
		writePeerError(w, http.StatusNotFound, err, true)
	case err != nil:
		writePeerError(w, http.StatusServiceUnavailable, err, false)
	default:
		writePeerJSON(w, struct{}{})
	}
}

func (r *Router) serveMessage(w http.ResponseWriter, req *http.Request) {
	id, err := storage.ParseID(req.PathValue("id"))
	if err != nil {
		writePeerError(w, http.StatusBadRequest, err, false)
		return
	}
	m, err := r.store.Get(req.Context(), id)
	if errors.Is(err, storage.ErrNotFound) {
		writePeerError(w, http.StatusNotFound, err, false)
		return
	}
	if err != nil {
		writePeerError(w, http.StatusServiceUnavailable, err, false)
		return
	}
	writePeerJSON(w, m)
}

func (r *Router) serveDLQ(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	f := storage.DLQFilter{Client: q.Get("client")}
	for name, t := range map[string]*time.Time{"from": &f.From, "to": &f.To} {
		if raw := q.Get(name); raw != "" {
			v, err := time.Parse(time.RFC3339Nano, raw)
			if err != nil {
				writePeerError(w, http.StatusBadRequest, err, false)
				return
			}
			*t = v
		}
	}
	cursor, err := base64.RawURLEncoding.DecodeString(q.Get("cursor"))
	limit, lerr := strconv.Atoi(q.Get("limit"))
	if err != nil || lerr != nil || limit < 1 {
		writePeerError(w, http.StatusBadRequest, errors.New("invalid cursor or limit"), false)
		return
	}
	msgs, _, err := r.store.ListDLQ(req.Context(), f, cursor, limit)
	if err != nil {
		writePeerError(w, http.StatusServiceUnavailable, err, false)
		return
	}
	writePeerJSON(w, dlqBody{Messages: msgs})
}

func (r *Router) serveRequeue(w http.ResponseWriter, req *http.Request) {
	id, err := storage.ParseID(req.PathValue("id"))
	if err != nil {
		writePeerError(w, http.StatusBadRequest, err, false)
		return
	}
	m, err := r.requeueLocal(req.Context(), id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		writePeerError(w, http.StatusNotFound, err, false)
	case errors.Is(err, storage.ErrNotInDLQ):
		writePeerError(w, http.StatusConflict, err, false)
	case err != nil:
		writePeerError(w, http.StatusServiceUnavailable, err, false)
	default:
		writePeerJSON(w, m)
	}
}
