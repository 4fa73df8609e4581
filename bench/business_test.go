package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// newTestTarget returns the target of an httptest server.
func newTestTarget(t *testing.T, srv *httptest.Server, apiKey string) *target {
	t.Helper()
	tg, err := resolveTarget(context.Background(), srv.URL, apiKey)
	require.NoError(t, err)
	return tg
}

// countConnections makes srv count the connections it accepts.
func countConnections(srv *httptest.Server) *atomic.Int64 {
	var n atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	return &n
}

func newTestPlan(t *testing.T, sends int64, users int) *messagePlan {
	t.Helper()
	p, err := newMessagePlan(sends, users, 0, 1)
	require.NoError(t, err)
	return p
}

var nodePhonePattern = regexp.MustCompile(`^967(77|78|70|73|71)\d{7}$`)

func TestBusinessClientPostsMessage(t *testing.T) {
	id := uuid.New()
	var got struct {
		RecipientPhoneNumber string `json:"recipientPhoneNumber"`
		MessageContent       string `json:"messageContent"`
	}
	var apiKey, contentType string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apiKey, contentType = r.Header.Get("X-Api-Key"), r.Header.Get("Content-Type")
		_ = json.NewDecoder(r.Body).Decode(&got)
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"id":"` + id.String() + `","status":4}`))
	}))
	conns := countConnections(srv)
	srv.Start()
	defer srv.Close()
	plan := newTestPlan(t, 3, 5)
	c := newBusinessClient(newTestTarget(t, srv, "key-1"), nil, plan, time.Second)
	defer c.close()

	for seq := range int64(3) {
		out := c.send(context.Background(), seq)
		require.Equal(t, outcome{kind: outcomeAccepted, status: 202, id: id}, out)
		require.Equal(t, "key-1", apiKey)
		require.Equal(t, "application/json", contentType)
		require.Equal(t, plan.phones[plan.recipient[seq]], got.RecipientPhoneNumber)
		require.Regexp(t, nodePhonePattern, got.RecipientPhoneNumber)
		gotSeq, ok := plan.sendOf(got.MessageContent)
		require.True(t, ok, "content %q names no send", got.MessageContent)
		require.Equal(t, seq, gotSeq)
	}
	require.Equal(t, int64(1), conns.Load(), "the connection is kept alive")
}

func TestBusinessClientClassifiesAnswers(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		want   outcome
	}{
		{"too many requests", 429, `{}`, outcome{kind: outcomeRefused, status: 429}},
		{"unavailable", 503, `{}`, outcome{kind: outcomeRefused, status: 503}},
		{"server error", 500, `{}`, outcome{kind: outcomeStatus, status: 500}},
		{"unauthorized", 401, `{}`, outcome{kind: outcomeStatus, status: 401}},
		{"accepted without id", 202, `{"status":4}`, outcome{kind: outcomeBadAnswer, status: 202}},
		{"accepted with bad JSON", 202, `{"id":`, outcome{kind: outcomeBadAnswer, status: 202}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c := newBusinessClient(newTestTarget(t, srv, "k"), nil, newTestPlan(t, 1, 1), time.Second)
			defer c.close()

			require.Equal(t, tc.want, c.send(context.Background(), 0))
		})
	}
}

func TestBusinessClientReconnectsAfterClose(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"id":"` + uuid.NewString() + `"}`))
	}))
	conns := countConnections(srv)
	srv.Start()
	defer srv.Close()
	c := newBusinessClient(newTestTarget(t, srv, "k"), nil, newTestPlan(t, 2, 1), time.Second)
	defer c.close()

	require.Equal(t, outcomeAccepted, c.send(context.Background(), 0).kind)
	require.Equal(t, outcomeAccepted, c.send(context.Background(), 1).kind)
	require.Equal(t, int64(2), conns.Load())
}

func TestBusinessClientTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c := newBusinessClient(newTestTarget(t, srv, "k"), nil, newTestPlan(t, 1, 1), 50*time.Millisecond)
	defer c.close()

	require.Equal(t, outcome{kind: outcomeTimeout}, c.send(context.Background(), 0))
	require.Nil(t, c.conn, "a timed-out connection is closed")
}

func TestBusinessClientConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	tg := newTestTarget(t, srv, "k")
	srv.Close()
	c := newBusinessClient(tg, nil, newTestPlan(t, 1, 1), time.Second)

	require.Equal(t, outcome{kind: outcomeConnection}, c.send(context.Background(), 0))
}

func TestDialClientsSpreadsSourceAddresses(t *testing.T) {
	var mu sync.Mutex
	sources := map[string]int{}
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			mu.Lock()
			sources[host]++
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()
	tg := newTestTarget(t, srv, "k")
	addrs, err := sourceAddrs(tg, 6, 3)
	require.NoError(t, err)

	clients, err := dialClients(context.Background(), 6, tg, addrs, newTestPlan(t, 1, 1), time.Second)
	require.NoError(t, err)
	defer closeClients(clients)
	for _, c := range clients {
		// A round trip makes sure the server has seen the connection.
		require.Equal(t, outcomeStatus, c.send(context.Background(), 0).kind)
	}

	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[string]int{"127.0.0.2": 2, "127.0.0.3": 2, "127.0.0.4": 2}, sources)
}
