package hub

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/esh3artech/esh3artech/hub/signalr"
)

// waitTimeout bounds every wait for a condition in these tests. It is a failure
// deadline, not a timing expectation.
const waitTimeout = 10 * time.Second

// Test users and their access tokens.
const (
	alicePhone = "+15550000001"
	aliceToken = "token-alice"
	bobPhone   = "+15550000002"
	bobToken   = "token-bob"
)

var errNoToken = errors.New("missing or unknown access token")

func testAuth(r *http.Request) (string, error) {
	switch AccessToken(r) {
	case aliceToken:
		return alicePhone, nil
	case bobToken:
		return bobPhone, nil
	}
	return "", errNoToken
}

// testEvents records every event and lets tests script Connected and Acknowledge.
type testEvents struct {
	mu           sync.Mutex
	connected    []ConnInfo
	disconnected []ConnInfo
	acks         []string
	onConnected  func(ConnInfo)
	onAck        func(ctx context.Context, c ConnInfo, id string) error
}

func (e *testEvents) Connected(_ context.Context, c ConnInfo) {
	e.mu.Lock()
	e.connected = append(e.connected, c)
	hook := e.onConnected
	e.mu.Unlock()
	if hook != nil {
		hook(c)
	}
}

func (e *testEvents) Disconnected(c ConnInfo) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.disconnected = append(e.disconnected, c)
}

func (e *testEvents) Acknowledge(ctx context.Context, c ConnInfo, id string) error {
	e.mu.Lock()
	e.acks = append(e.acks, id)
	hook := e.onAck
	e.mu.Unlock()
	if hook != nil {
		return hook(ctx, c, id)
	}
	return nil
}

func (e *testEvents) setOnConnected(hook func(ConnInfo)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onConnected = hook
}

func (e *testEvents) setOnAck(hook func(context.Context, ConnInfo, string) error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onAck = hook
}

func (e *testEvents) connectedInfos() []ConnInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]ConnInfo(nil), e.connected...)
}

func (e *testEvents) disconnectedInfos() []ConnInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]ConnInfo(nil), e.disconnected...)
}

func (e *testEvents) ackIDs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.acks...)
}

// testServer is a hub mounted on echo behind a loopback httptest server.
type testServer struct {
	hub    *Hub
	events *testEvents
	srv    *httptest.Server
	base   string // http://127.0.0.1:port
	url    string // base + hub path
}

// newTestServer starts a hub with default config changed by configure, and shuts it
// down when the test ends.
func newTestServer(t testing.TB, configure func(*Config)) *testServer {
	t.Helper()
	events := &testEvents{}
	cfg := Config{Auth: testAuth, Events: events, Logger: zap.NewNop()}
	if configure != nil {
		configure(&cfg)
	}
	h, err := New(cfg)
	require.NoError(t, err)
	e := echo.New()
	e.HideBanner = true
	h.Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		require.NoError(t, h.Shutdown(ctx))
		srv.Close()
	})
	return &testServer{hub: h, events: events, srv: srv, base: srv.URL,
		url: srv.URL + h.cfg.Path}
}

// fastTimers returns a configure function with millisecond timers for timeout tests.
func fastTimers(extra func(*Config)) func(*Config) {
	return func(cfg *Config) {
		cfg.HandshakeTimeout = 200 * time.Millisecond
		cfg.KeepAliveInterval = 50 * time.Millisecond
		cfg.ClientTimeout = 300 * time.Millisecond
		cfg.NegotiateTimeout = 200 * time.Millisecond
		cfg.LongPollTimeout = 100 * time.Millisecond
		cfg.ReconnectWindow = 300 * time.Millisecond
		cfg.WriteTimeout = 500 * time.Millisecond
		if extra != nil {
			extra(cfg)
		}
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, waitTimeout, 5*time.Millisecond, "timed out waiting for %s", what)
}

// do sends an HTTP request with an optional bearer token and returns the status and body.
func (ts *testServer) do(t testing.TB, method, rawURL, token string, body string,
	header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := ts.srv.Client().Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// negotiate runs POST negotiate with negotiateVersion=1 plus extra query parameters.
func (ts *testServer) negotiate(t testing.TB, token, extraQuery string) signalr.NegotiateResponse {
	t.Helper()
	status, body := ts.do(t, http.MethodPost,
		ts.url+"/negotiate?negotiateVersion=1"+extraQuery, token, "", nil)
	require.Equal(t, http.StatusOK, status, body)
	var neg signalr.NegotiateResponse
	require.NoError(t, json.Unmarshal([]byte(body), &neg))
	require.Empty(t, neg.Error)
	return neg
}

// connURL returns the hub URL with the connection token as the id parameter.
func (ts *testServer) connURL(token string) string {
	return ts.url + "?id=" + url.QueryEscape(token)
}

// rawClient speaks the JSON hub protocol over a WebSocket by hand, so tests control
// every frame.
type rawClient struct {
	t       testing.TB
	ws      *websocket.Conn
	records [][]byte
}

// dialRaw opens a WebSocket to rawURL with the access token; it fails the test on error.
func dialRaw(t testing.TB, rawURL, token string) *rawClient {
	t.Helper()
	ws, status, err := tryDialRaw(rawURL, token)
	require.NoError(t, err, "status %d", status)
	c := &rawClient{t: t, ws: ws}
	t.Cleanup(func() { _ = ws.Close() })
	return c
}

// tryDialRaw opens a WebSocket and returns the HTTP status of a failed upgrade.
func tryDialRaw(rawURL, token string) (*websocket.Conn, int, error) {
	header := http.Header{}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	wsURL := "ws" + strings.TrimPrefix(rawURL, "http")
	ws, resp, err := websocket.DefaultDialer.Dial(wsURL, header)
	status := 0
	if resp != nil {
		status = resp.StatusCode
		_ = resp.Body.Close()
	}
	return ws, status, err
}

// send writes the given JSON records, each followed by the separator, as one message.
func (c *rawClient) send(records ...string) {
	c.t.Helper()
	var b []byte
	for _, r := range records {
		b = append(b, r...)
		b = append(b, signalr.RecordSeparator)
	}
	c.sendBytes(b)
}

func (c *rawClient) sendBytes(b []byte) {
	c.t.Helper()
	require.NoError(c.t, c.ws.WriteMessage(websocket.TextMessage, b))
}

// handshake sends a JSON handshake of version and expects a successful response.
func (c *rawClient) handshake(version int) {
	c.t.Helper()
	c.sendBytes(signalr.AppendHandshakeRequest(nil,
		signalr.HandshakeRequest{Protocol: "json", Version: version}))
	resp, err := signalr.ParseHandshakeResponse(c.nextRecord())
	require.NoError(c.t, err)
	require.Empty(c.t, resp.Error)
}

// nextRecord returns the next record from the server, failing the test on error.
func (c *rawClient) nextRecord() []byte {
	c.t.Helper()
	record, err := c.tryNextRecord()
	require.NoError(c.t, err)
	return record
}

func (c *rawClient) tryNextRecord() ([]byte, error) {
	for len(c.records) == 0 {
		_ = c.ws.SetReadDeadline(time.Now().Add(waitTimeout))
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return nil, err
		}
		for {
			record, rest, ok := signalr.SplitRecord(data)
			if !ok {
				break
			}
			c.records = append(c.records, record)
			data = rest
		}
	}
	record := c.records[0]
	c.records = c.records[1:]
	return record, nil
}

// next returns the next hub message that is not a Ping.
func (c *rawClient) next() signalr.Message {
	c.t.Helper()
	for {
		m, err := signalr.ParseMessage(c.nextRecord())
		require.NoError(c.t, err)
		if m.Type != signalr.TypePing {
			return m
		}
	}
}

// expectEnd reads until the socket ends and returns the non-Ping messages it saw.
func (c *rawClient) expectEnd() []signalr.Message {
	c.t.Helper()
	var seen []signalr.Message
	for {
		record, err := c.tryNextRecord()
		if err != nil {
			return seen
		}
		if m, err := signalr.ParseMessage(record); err == nil && m.Type != signalr.TypePing {
			seen = append(seen, m)
		}
	}
}

// invocation returns the JSON of an Invocation of target with the given encoded
// arguments.
func invocation(id, target string, args ...string) string {
	raw := make([]json.RawMessage, len(args))
	for i, a := range args {
		raw[i] = json.RawMessage(a)
	}
	frame := signalr.AppendMessage(nil, &signalr.Message{Type: signalr.TypeInvocation,
		InvocationID: id, Target: target, Arguments: raw})
	return string(frame[:len(frame)-1])
}

// connectRaw negotiates for token, opens the WebSocket and completes the handshake.
func (ts *testServer) connectRaw(t testing.TB, token string) (
	*rawClient, signalr.NegotiateResponse) {
	t.Helper()
	neg := ts.negotiate(t, token, "")
	c := dialRaw(t, ts.connURL(neg.ConnectionToken), token)
	c.handshake(1)
	waitFor(t, "connection to be registered", func() bool {
		return ts.hub.reg.byID(neg.ConnectionID) != nil
	})
	return c, neg
}

// dialClient connects the Go client with test handlers.
func (ts *testServer) dialClient(t testing.TB, token string, opts signalr.Options) *signalr.Client {
	t.Helper()
	opts.AccessToken = token
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := signalr.Dial(ctx, ts.url, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// connByID returns the live connection with the given ID, failing the test if absent.
func (ts *testServer) connByID(t testing.TB, id string) *conn {
	t.Helper()
	c := ts.hub.reg.byID(id)
	require.NotNil(t, c, "connection %s", id)
	return c
}

// dropTransport closes the connection's socket without a close handshake, as a network
// failure would.
func (ts *testServer) dropTransport(t testing.TB, id string) {
	t.Helper()
	c := ts.connByID(t, id)
	c.mu.Lock()
	defer c.mu.Unlock()
	require.NotNil(t, c.transport)
	c.transport.abort()
}

// httptestRecorder serves one request directly through the hub's ServeHTTP.
func httptestRecorder(h *Hub, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

// httptestRequest returns a GET request with the given Accept header.
func httptestRequest(accept string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Accept", accept)
	return r
}
