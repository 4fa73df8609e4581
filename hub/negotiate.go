package hub

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/esh3artech/esh3artech/hub/signalr"
	"go.uber.org/zap"
)

// maxNegotiateVersion is the highest negotiate protocol version the hub speaks.
const maxNegotiateVersion = 1

// availableTransports lists the transports in the order clients should try them. The
// hub speaks only the JSON protocol, so every transport offers the Text format only.
var availableTransports = []signalr.AvailableTransport{
	{Transport: TransportWebSockets, TransferFormats: []string{signalr.TransferFormatText}},
	{Transport: TransportServerSentEvents, TransferFormats: []string{signalr.TransferFormatText}},
	{Transport: TransportLongPolling, TransferFormats: []string{signalr.TransferFormatText}},
}

// serveNegotiate handles POST {Path}/negotiate by creating a connection.
func (h *Hub) serveNegotiate(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		writeJSONError(w, http.StatusMethodNotAllowed, "Negotiate requires POST.")
		return
	}
	user, ok := h.authenticate(w, r, true)
	if !ok || !h.admit(w, user) {
		return
	}
	query := r.URL.Query()
	version, errText := parseNegotiateVersion(query)
	if errText != "" {
		h.log.Warn("negotiate rejected", zap.String("phone", user), zap.String("reason", errText))
		// The specification puts negotiate errors in the body of a 200 response.
		writeJSONError(w, http.StatusOK, errText)
		return
	}
	stateful := parseStatefulReconnect(query)

	id := rand.Text()
	token := newConnectionToken()
	if version == 0 {
		// Version 0 clients pass the connection ID where later versions pass the token.
		token = id
	}
	c := newConn(h, user, id, token, stateful)
	h.reg.addToken(c)
	h.log.Debug("connection negotiated", zap.String("conn_id", id), zap.String("phone", user),
		zap.Int("negotiate_version", version), zap.Bool("stateful", stateful))

	resp := signalr.NegotiateResponse{
		ConnectionID:         id,
		NegotiateVersion:     version,
		AvailableTransports:  availableTransports,
		UseStatefulReconnect: stateful,
	}
	if version >= 1 {
		resp.ConnectionToken = token
	}
	writeJSON(w, http.StatusOK, resp)
}

// parseNegotiateVersion reads the negotiateVersion query parameter. An absent one means
// version 0, and versions above the hub's highest are lowered to it. A value that is
// not a non-negative integer returns the error text for the client.
func parseNegotiateVersion(query url.Values) (version int, errText string) {
	raw := queryValue(query, "negotiateVersion")
	if raw == "" {
		return 0, ""
	}
	version, err := strconv.Atoi(raw)
	if err != nil {
		return 0, fmt.Sprintf("The client requested a non-integer negotiate version %q.", raw)
	}
	if version < 0 {
		return 0, fmt.Sprintf("The client requested negotiate version %d, "+
			"but the server does not support it.", version)
	}
	return min(version, maxNegotiateVersion), ""
}

// parseStatefulReconnect reports whether the client asked for stateful reconnect with
// useStatefulReconnect=true, compared case-insensitively.
func parseStatefulReconnect(query url.Values) bool {
	return strings.EqualFold(queryValue(query, "useStatefulReconnect"), "true")
}

// newConnectionToken returns 256 random bits from crypto/rand, base64url-encoded.
func newConnectionToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error.
	return base64.RawURLEncoding.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "Internal server error.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeJSONError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, struct {
		Error string `json:"error"`
	}{message})
}

// admit rejects a new connection for user with 503 when the hub or the
// user is at its cap, and reports whether it may go ahead.
func (h *Hub) admit(w http.ResponseWriter, user string) bool {
	reason := ""
	switch {
	case h.cfg.MaxConnections > 0 && h.ConnCount() >= h.cfg.MaxConnections:
		reason = "The server holds its maximum number of connections; retry later."
	case h.cfg.MaxConnectionsPerUser > 0 && len(h.reg.user(user)) >= h.cfg.MaxConnectionsPerUser:
		reason = "This user holds its maximum number of connections; close one first."
	default:
		return true
	}
	h.log.Warn("connection rejected", zap.String("phone", user), zap.String("reason", reason))
	w.Header().Set("Retry-After", "5")
	writeJSONError(w, http.StatusServiceUnavailable, reason)
	return false
}
