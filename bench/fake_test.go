package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/esh3artech/esh3artech/hub/signalr"
)

const (
	fakeAPIKey    = "fake-api-key"
	fakeJWTSecret = "fake-jwt-secret-0123456789abcdef-0123"
	fakeHubPath   = "/online-mobile-user"
)

// fakeRelay is an httptest server that speaks the node's REST API and a
// minimal SignalR hub, with faults to inject.
type fakeRelay struct {
	// deliver pushes accepted messages to their recipients. Without it,
	// messages are stored and never delivered.
	deliver bool
	// redeliverAcked pushes each acknowledged message once more, when the
	// user's next acknowledgement arrives, so it is a duplicate.
	redeliverAcked bool
	// undeliveredStatus is the status GET returns for an unacknowledged
	// message.
	undeliveredStatus int

	srv *httptest.Server

	mu          sync.Mutex
	msgs        map[string]*fakeMessage
	conns       map[string]*fakeConn // by phone number
	pending     map[string][]string  // by phone number: ids not yet pushed
	redelivered int
}

type fakeMessage struct {
	id, phone, content string
	acked              bool
}

type fakeConn struct {
	mu    sync.Mutex
	ws    *websocket.Conn
	acked []string // acknowledged ids not yet pushed again
}

func startFakeRelay(t *testing.T, f *fakeRelay) *fakeRelay {
	t.Helper()
	f.msgs, f.conns, f.pending = map[string]*fakeMessage{}, map[string]*fakeConn{}, map[string][]string{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/messages", f.post)
	mux.HandleFunc("GET /api/v1/messages/{id}", f.get)
	mux.HandleFunc("POST "+fakeHubPath+"/negotiate", f.negotiate)
	mux.HandleFunc("GET "+fakeHubPath, f.connect)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeRelay) post(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Api-Key") != fakeAPIKey {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var req struct {
		RecipientPhoneNumber string `json:"recipientPhoneNumber"`
		MessageContent       string `json:"messageContent"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	m := &fakeMessage{id: uuid.NewString(), phone: req.RecipientPhoneNumber, content: req.MessageContent}
	f.mu.Lock()
	f.msgs[m.id] = m
	conn := f.conns[m.phone]
	if conn == nil && f.deliver {
		f.pending[m.phone] = append(f.pending[m.phone], m.id)
	}
	f.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"id":"`+m.id+`","status":4}`)
	if conn != nil && f.deliver {
		conn.push("ReceiveMessage", mobilePayload(m))
	}
}

func (f *fakeRelay) get(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	m := f.msgs[r.PathValue("id")]
	status := f.undeliveredStatus
	if m != nil && m.acked {
		status = 2
	}
	f.mu.Unlock()
	if m == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"id": m.id, "status": status})
}

func (f *fakeRelay) negotiate(w http.ResponseWriter, _ *http.Request) {
	_ = json.NewEncoder(w).Encode(signalr.NegotiateResponse{
		ConnectionID: uuid.NewString(), ConnectionToken: uuid.NewString(), NegotiateVersion: 1,
		AvailableTransports: []signalr.AvailableTransport{
			{Transport: signalr.TransportWebSockets, TransferFormats: []string{signalr.TransferFormatText}},
		},
	})
}

// connect authenticates the user's token, upgrades to a WebSocket, sends
// the backlog and serves acknowledgements until the connection closes.
func (f *fakeRelay) connect(w http.ResponseWriter, r *http.Request) {
	claims := jwt.MapClaims{}
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	_, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return []byte(fakeJWTSecret), nil })
	phone, _ := claims[phoneClaim].(string)
	if err != nil || phone == "" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	if _, _, err := ws.ReadMessage(); err != nil { // the handshake request
		return
	}
	c := &fakeConn{ws: ws}
	c.write(signalr.AppendHandshakeResponse(nil, ""))
	f.register(phone, c)
	defer f.unregister(phone)
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		for rec, rest, ok := signalr.SplitRecord(data); ok; rec, rest, ok = signalr.SplitRecord(rest) {
			f.handle(c, rec)
		}
	}
}

// register makes c the phone's connection and pushes its backlog.
func (f *fakeRelay) register(phone string, c *fakeConn) {
	f.mu.Lock()
	f.conns[phone] = c
	var backlog []map[string]any
	for _, id := range f.pending[phone] {
		backlog = append(backlog, mobilePayload(f.msgs[id]))
	}
	delete(f.pending, phone)
	f.mu.Unlock()
	if len(backlog) > 0 {
		c.push("ReceivePendingMessages", backlog)
	}
}

func (f *fakeRelay) unregister(phone string) {
	f.mu.Lock()
	delete(f.conns, phone)
	f.mu.Unlock()
}

// handle completes an AcknowledgeMessage invocation and ignores other
// messages.
func (f *fakeRelay) handle(c *fakeConn, record []byte) {
	m, err := signalr.ParseMessage(record)
	if err != nil || m.Type != signalr.TypeInvocation || m.Target != "AcknowledgeMessage" || len(m.Arguments) != 1 {
		return
	}
	var id string
	_ = json.Unmarshal(m.Arguments[0], &id)
	f.mu.Lock()
	msg := f.msgs[id]
	first := msg != nil && !msg.acked
	if msg != nil {
		msg.acked = true
	}
	f.mu.Unlock()

	c.write(signalr.AppendMessage(nil, &signalr.Message{Type: signalr.TypeCompletion, InvocationID: m.InvocationID}))
	if !f.redeliverAcked {
		return
	}

	// The user acknowledges one message at a time, so every id acked
	// before this invocation has completed its acknowledgement.
	c.mu.Lock()
	again := c.acked
	c.acked = nil
	if first {
		c.acked = append(c.acked, id)
	}
	c.mu.Unlock()
	for _, prev := range again {
		f.mu.Lock()
		f.redelivered++
		payload := mobilePayload(f.msgs[prev])
		f.mu.Unlock()
		c.push("ReceiveMessage", payload)
	}
}

func (f *fakeRelay) redeliveredCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.redelivered
}

func mobilePayload(m *fakeMessage) map[string]any {
	return map[string]any{"Id": m.id, "RecipientPhoneNumber": m.phone, "MessageContent": m.content, "Status": 1}
}

// push invokes method on the client with v encoded as one JSON string
// argument, as the hub does.
func (c *fakeConn) push(method string, v any) {
	payload, _ := json.Marshal(v)
	arg, _ := json.Marshal(string(payload))
	c.write(signalr.AppendMessage(nil, &signalr.Message{
		Type: signalr.TypeInvocation, Target: method, Arguments: []json.RawMessage{arg},
	}))
}

func (c *fakeConn) write(frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.ws.WriteMessage(websocket.TextMessage, frame)
}
