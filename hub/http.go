package hub

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
)

// Errors of attach, each mapped to an HTTP status by writeAttachError.
var (
	errConnGone        = errors.New("hub: connection is closing or closed")
	errConnActive      = errors.New("hub: connection already has an active transport")
	errTransportChange = errors.New("hub: connection uses another transport")
)

// ServeHTTP serves negotiate at Path/negotiate and the transports at Path. Other paths
// get 404.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	negotiate := path == h.cfg.Path+"/negotiate"
	if !negotiate && path != h.cfg.Path {
		http.NotFound(w, r)
		return
	}
	allowed := h.writeCORSHeaders(w, r)
	if r.Method == http.MethodOptions {
		h.servePreflight(w, r, allowed)
		return
	}
	if !h.enter() {
		http.Error(w, "The server is shutting down.", http.StatusServiceUnavailable)
		return
	}
	defer h.leave()
	if negotiate {
		h.serveNegotiate(w, r)
		return
	}
	h.serveEndpoint(w, r)
}

// serveEndpoint dispatches a request to Path by method and transport.
func (h *Hub) serveEndpoint(w http.ResponseWriter, r *http.Request) {
	user, ok := h.authenticate(w, r, false)
	if !ok {
		return
	}
	if r.Method == http.MethodGet && websocket.IsWebSocketUpgrade(r) {
		h.serveWebSocket(w, r, user)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodPost, http.MethodDelete:
	default:
		http.Error(w, "Method not allowed.", http.StatusMethodNotAllowed)
		return
	}
	c := h.lookup(w, r, user)
	if c == nil {
		return
	}
	switch {
	case r.Method == http.MethodPost:
		h.serveSend(w, r, c)
	case r.Method == http.MethodDelete:
		h.serveDelete(w, c)
	case acceptsEventStream(r):
		h.serveServerSentEvents(w, r, c)
	default:
		h.servePoll(w, r, c)
	}
}

// authenticate runs the Authenticator and responds with 401 when it fails.
func (h *Hub) authenticate(w http.ResponseWriter, r *http.Request, jsonBody bool) (string, bool) {
	user, err := h.cfg.Auth(r)
	if err == nil && user != "" {
		return user, true
	}
	h.log.Debug("request not authenticated", zap.String("path", r.URL.Path), zap.Error(err))
	w.Header().Set("WWW-Authenticate", "Bearer")
	if jsonBody {
		writeJSONError(w, http.StatusUnauthorized, "Unauthorized.")
	} else {
		http.Error(w, "Unauthorized.", http.StatusUnauthorized)
	}
	return "", false
}

// lookup finds the connection named by the id query parameter. It responds with 400
// without an id, 404 for an unknown id and 403 when the connection belongs to another
// user.
func (h *Hub) lookup(w http.ResponseWriter, r *http.Request, user string) *conn {
	token := queryValue(r.URL.Query(), "id")
	if token == "" {
		http.Error(w, "Connection ID required.", http.StatusBadRequest)
		return nil
	}
	c := h.reg.byToken(token)
	if c == nil {
		http.Error(w, "No connection with that ID.", http.StatusNotFound)
		return nil
	}
	if c.info.User != user {
		h.log.Warn("connection token presented by another user",
			zap.String("conn_id", c.info.ID), zap.String("phone", user))
		http.Error(w, "Forbidden.", http.StatusForbidden)
		return nil
	}
	return c
}

func writeAttachError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, errConnActive):
		http.Error(w, "The connection already has an active transport.", http.StatusConflict)
	case errors.Is(err, errTransportChange):
		http.Error(w, "Cannot change transports mid-connection.", http.StatusBadRequest)
	default:
		http.Error(w, "No connection with that ID.", http.StatusNotFound)
	}
}

// attach makes t the transport of c. It returns the done channel of a stateful
// connection's previous WebSocket transport, whose reader must exit before t reads.
// A stateful connection that comes back queues the Sequence message and every
// unacknowledged frame.
func (c *conn) attach(t transport, name, remoteAddr string) (<-chan struct{}, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateClosing || c.state == stateClosed {
		return nil, errConnGone
	}
	if c.info.Transport != "" && c.info.Transport != name {
		return nil, errTransportChange
	}

	var previous <-chan struct{}
	if c.transport != nil {
		old, ok := c.transport.(*wsTransport)
		if !ok || c.replay == nil {
			return nil, errConnActive
		}
		// The client reconnected before the server noticed that the old socket died.
		old.abort()
		previous = old.done
	}

	if c.info.Transport == "" {
		c.info.Transport = name
		c.info.RemoteAddr = remoteAddr
	}
	c.transport = t
	c.outbox = nil
	c.markActive()
	c.lastWrite.Store(c.lastRead.Load())

	switch c.state {
	case stateNegotiated:
		c.setStateLocked(stateHandshake)
	case stateConnected, stateDetached:
		if c.replay == nil {
			return nil, errConnActive
		}
		c.setStateLocked(stateConnected)
		c.outbox = c.replay.resume(c.outbox)
		c.hub.log.Info("stateful connection resumed", zap.String("conn_id", c.info.ID),
			zap.String("phone", c.info.User), zap.Int("replayed_frames", len(c.outbox)-1))
	}
	return previous, nil
}

// queryValue returns the first value of key, matched case-insensitively as ASP.NET
// Core matches query keys.
func queryValue(query url.Values, key string) string {
	if v, ok := query[key]; ok && len(v) > 0 {
		return v[0]
	}
	for k, v := range query {
		if strings.EqualFold(k, key) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func acceptsEventStream(r *http.Request) bool {
	for _, accept := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(accept, ",") {
			mediaType, _, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(mediaType), "text/event-stream") {
				return true
			}
		}
	}
	return false
}

// noCache marks a response as not cacheable, as ASP.NET Core does for polls.
func noCache(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-cache, no-store")
	w.Header().Set("Pragma", "no-cache")
	w.Header().Set("Expires", "Thu, 01 Jan 1970 00:00:00 GMT")
}
