package app

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func sendTo(t *testing.T, node *Node, phone string) *httptest.ResponseRecorder {
	t.Helper()
	return serve(t, node, request{Method: http.MethodPost, Path: "/api/v1/messages",
		Body: `{"recipientPhoneNumber": "` + phone + `", "messageContent": "hi"}`, Header: asAcme()})
}

func TestRateLimitRefusesWithRetryAfter(t *testing.T) {
	node := newTestNode(t, "ESH3ARTECH_LIMITS_RATE=0.5", "ESH3ARTECH_LIMITS_BURST=2")
	for i := range 2 {
		rec := sendTo(t, node, "775265496")
		require.Equal(t, http.StatusAccepted, rec.Code, "send %d", i)
		require.Equal(t, `"client";q=2;w=4`, rec.Header().Get("RateLimit-Policy"))
		require.NotEmpty(t, rec.Header().Get("RateLimit"))
	}
	rec := sendTo(t, node, "775265496")
	require.Equal(t, http.StatusTooManyRequests, rec.Code)
	require.NotEmpty(t, rec.Header().Get("Retry-After"))
	require.Equal(t, `"client";r=0;t=4`, rec.Header().Get("RateLimit"))
	code, _ := requireError(t, rec, "/api/v1/messages", http.StatusTooManyRequests)
	require.Equal(t, "rate_limited", code)

	// Another client has its own bucket.
	rec = serve(t, node, request{Method: http.MethodPost, Path: "/api/v1/messages",
		Body: `{"recipientPhoneNumber": "775265496", "messageContent": "hi"}`, Header: asGlobex()})
	require.Equal(t, http.StatusAccepted, rec.Code)
}

func TestRateLimitCountsBatchMessages(t *testing.T) {
	node := newTestNode(t, "ESH3ARTECH_LIMITS_RATE=0.5", "ESH3ARTECH_LIMITS_BURST=3")
	batch := `{"messages": [` + strings.Repeat(`{"recipientPhoneNumber": "775265496", "messageContent": "x"},`, 3)
	batch = strings.TrimSuffix(batch, ",") + `]}`
	rec := serve(t, node, request{Method: http.MethodPost, Path: "/api/v1/messages/batch", Body: batch, Header: asAcme()})
	require.Equal(t, http.StatusAccepted, rec.Code)
	rec = sendTo(t, node, "775265496")
	require.Equal(t, http.StatusTooManyRequests, rec.Code, "the batch used the whole burst")
}

func TestRateLimitBatchOverBurst(t *testing.T) {
	node := newTestNode(t, "ESH3ARTECH_LIMITS_BURST=2")
	batch := `{"batchMessages": [` + strings.Repeat(`{"mobileNumber": "775265496", "messageContent": "x"},`, 3)
	batch = strings.TrimSuffix(batch, ",") + `]}`
	rec := serve(t, node, request{Method: http.MethodPost, Path: "/api/app/message/ingestion-batch-message",
		Body: batch, Header: asAcme()})
	code, text := requireError(t, rec, "/api/app/message/ingestion-batch-message", http.StatusTooManyRequests)
	require.Equal(t, "batch_over_burst", code)
	require.Contains(t, text, "split")
	require.Zero(t, countStoredMessages(t, node))
}

func TestDefaultLimitsTakeThousandAtOnce(t *testing.T) {
	node := newTestNode(t)
	_, burst := node.limits.clientRate("acme")
	require.GreaterOrEqual(t, burst, 1000)
	ok, _, _ := node.limits.take("acme", 1000, time.Now())
	require.True(t, ok)
}

func TestPerClientRateOverride(t *testing.T) {
	clients := `[{"id": "acme", "api_key_sha256": "` + sha256Hex(acmeKey) + `", "rate": 7, "burst": 9}]`
	node := newTestNode(t, "ESH3ARTECH_AUTH_CLIENTS="+clients)
	r, b := node.limits.clientRate("acme")
	require.Equal(t, 7.0, r)
	require.Equal(t, 9, b)
	r, b = node.limits.clientRate("unknown")
	require.Equal(t, node.cfg.Limits.Rate, r)
	require.Equal(t, node.cfg.Limits.Burst, b)
}

func TestQueueHighWaterRefuses503(t *testing.T) {
	// The node does not serve, so its router does not drain the queue.
	node := newTestNode(t, "ESH3ARTECH_LIMITS_QUEUE_HIGH_WATER=1")
	require.Equal(t, http.StatusAccepted, sendTo(t, node, "775265496").Code)
	rec := sendTo(t, node, "775265497")
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	require.Equal(t, "5", rec.Header().Get("Retry-After"))
	code, _ := requireError(t, rec, "/api/v1/messages", http.StatusServiceUnavailable)
	require.Equal(t, "queue_full", code)

	ready := serve(t, node, request{Method: http.MethodGet, Path: "/health/ready"})
	require.Equal(t, http.StatusServiceUnavailable, ready.Code)
	require.Contains(t, ready.Body.String(), "high-water mark")
}

func TestInboxCapRefusesOneRecipient(t *testing.T) {
	node := newTestNode(t, "ESH3ARTECH_LIMITS_INBOX_CAP=1")
	require.Equal(t, http.StatusAccepted, sendTo(t, node, "775265496").Code)
	rec := sendTo(t, node, "775265496")
	code, text := requireError(t, rec, "/api/v1/messages", http.StatusTooManyRequests)
	require.Equal(t, "recipient_inbox_full", code)
	require.Contains(t, text, "967775265496")
	require.NotEmpty(t, rec.Header().Get("Retry-After"))
	require.Equal(t, http.StatusAccepted, sendTo(t, node, "775265497").Code, "other recipients are not affected")
}

func TestInFlightBoundRefuses503(t *testing.T) {
	node := newTestNode(t, "ESH3ARTECH_LIMITS_MAX_IN_FLIGHT=1")
	node.limits.inFlight.Store(1) // one request is already in progress
	rec := sendTo(t, node, "775265496")
	code, _ := requireError(t, rec, "/api/v1/messages", http.StatusServiceUnavailable)
	require.Equal(t, "overloaded", code)
	require.Equal(t, "1", rec.Header().Get("Retry-After"))
	node.limits.inFlight.Store(0)
	require.Equal(t, http.StatusAccepted, sendTo(t, node, "775265496").Code)
}

func TestAgentWeight(t *testing.T) {
	cases := []struct {
		load float64
		want int
	}{{0, 100}, {0.5, 100}, {0.8, 100}, {0.9, 50}, {0.99, 5}, {1, 1}, {3, 1}}
	for _, c := range cases {
		require.Equal(t, c.want, agentWeight(c.load), "load %g", c.load)
	}
}

func TestAgentCheckAnswers(t *testing.T) {
	node := newTestNode(t, "ESH3ARTECH_HEALTH_AGENT_LISTEN=127.0.0.1:0",
		"ESH3ARTECH_LIMITS_QUEUE_HIGH_WATER=10")
	require.NoError(t, node.Serve())
	require.Equal(t, "up ready 100%", readAgent(t, node.AgentAddr()))

	node.router.Shutdown(context.Background()) // keep the queue from draining
	for range 9 {
		require.Equal(t, http.StatusAccepted, sendTo(t, node, "775265496").Code)
	}
	require.Equal(t, "up ready 50%", readAgent(t, node.AgentAddr()), "9 of 10 queued is 90%% load")

	node.draining.Store(true)
	require.Equal(t, "drain", readAgent(t, node.AgentAddr()))
}

func readAgent(t *testing.T, addr string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	line, err := bufio.NewReader(conn).ReadString('\n')
	require.NoError(t, err)
	return strings.TrimSpace(line)
}

func TestReloadAppliesLimits(t *testing.T) {
	node := newTestNode(t)
	next := *node.cfg
	next.Limits.Rate = 42
	node.SetConfigSource(func() (*Config, error) { c := next; return &c, nil })
	changed, _, err := node.Reload()
	require.NoError(t, err)
	require.Len(t, changed, 1)
	require.Contains(t, changed[0], "limits.rate")
	r, _ := node.limits.clientRate("acme")
	require.Equal(t, 42.0, r)
}

func TestReloadRejectsInvalidConfig(t *testing.T) {
	node := newTestNode(t)
	before := node.limits.limits()
	node.SetConfigSource(func() (*Config, error) {
		return LoadConfig(readDefaults(t), "", []string{"ESH3ARTECH_LIMITS_RATE=-1"})
	})
	_, _, err := node.Reload()
	require.ErrorContains(t, err, "limits.rate")
	require.Equal(t, before, node.limits.limits())
}

func TestAdminReloadRoute(t *testing.T) {
	admin := `[{"id": "acme", "api_key_sha256": "` + sha256Hex(acmeKey) + `", "admin": true},` +
		`{"id": "globex", "api_key_sha256": "` + sha256Hex(globexKey) + `"}]`
	node := newTestNode(t, "ESH3ARTECH_AUTH_CLIENTS="+admin)
	bad := true
	node.SetConfigSource(func() (*Config, error) {
		if bad {
			return LoadConfig(readDefaults(t), "", []string{"ESH3ARTECH_LIMITS_BURST=0"})
		}
		c := *node.cfg
		c.Limits.Burst = 5000
		return &c, nil
	})
	rec := serve(t, node, request{Method: http.MethodPost, Path: "/api/v1/admin/reload", Header: asGlobex()})
	code, _ := requireError(t, rec, "/api/v1/admin/reload", http.StatusForbidden)
	require.Equal(t, "forbidden", code)

	rec = serve(t, node, request{Method: http.MethodPost, Path: "/api/v1/admin/reload", Header: asAcme()})
	code, text := requireError(t, rec, "/api/v1/admin/reload", http.StatusUnprocessableEntity)
	require.Equal(t, "invalid_config", code)
	require.Contains(t, text, "limits.burst")

	bad = false
	rec = serve(t, node, request{Method: http.MethodPost, Path: "/api/v1/admin/reload", Header: asAcme()})
	require.Equal(t, http.StatusOK, rec.Code)
	require.Contains(t, rec.Body.String(), "limits.burst")
	_, b := node.limits.clientRate("globex")
	require.Equal(t, 5000, b)
}

func TestMetricsNames(t *testing.T) {
	node := newTestNode(t)
	require.Equal(t, http.StatusAccepted, sendTo(t, node, "775265496").Code)
	rec := serve(t, node, request{Method: http.MethodGet, Path: "/metrics"})
	require.Equal(t, http.StatusOK, rec.Code)
	body := rec.Body.String()
	for _, name := range []string{
		"esh3artech_messages_accepted_total", "esh3artech_messages_refused_total",
		"esh3artech_api_answer_seconds", "esh3artech_queue_depth", "esh3artech_inbox_pending",
		"esh3artech_messages_sent_total", "esh3artech_messages_delivered_total",
		"esh3artech_messages_retried_total", "esh3artech_messages_dead_lettered_total",
		"esh3artech_delivery_latency_seconds", "esh3artech_hub_connections",
		"esh3artech_circuit_breaker_open", "esh3artech_storage_write_stalls_total",
		"esh3artech_storage_wal_fsync_seconds", "esh3artech_storage_disk_usage_bytes",
		"esh3artech_load_ratio",
	} {
		require.Contains(t, body, name+" ", "metric %s", name)
	}
}

func TestIdempotentReplayNotRateLimited(t *testing.T) {
	node := newTestNode(t, "ESH3ARTECH_LIMITS_RATE=0.5", "ESH3ARTECH_LIMITS_BURST=1")
	send := func() *httptest.ResponseRecorder {
		return serve(t, node, request{Method: http.MethodPost, Path: "/api/v1/messages",
			Body:   `{"recipientPhoneNumber": "775265496", "messageContent": "hi"}`,
			Header: asAcme("Idempotency-Key", "once")})
	}
	first := send()
	require.Equal(t, http.StatusAccepted, first.Code)
	again := send()
	require.Equal(t, http.StatusAccepted, again.Code, "a replay stores nothing, so no token is needed")
	require.Equal(t, "true", again.Header().Get("Idempotent-Replayed"))
	require.JSONEq(t, first.Body.String(), again.Body.String())
}

func TestInboxCapCountsTheBatch(t *testing.T) {
	node := newTestNode(t, "ESH3ARTECH_LIMITS_INBOX_CAP=2")
	batch := `{"messages": [` + strings.Repeat(`{"recipientPhoneNumber": "775265496", "messageContent": "x"},`, 3)
	batch = strings.TrimSuffix(batch, ",") + `]}`
	rec := serve(t, node, request{Method: http.MethodPost, Path: "/api/v1/messages/batch", Body: batch, Header: asAcme()})
	code, _ := requireError(t, rec, "/api/v1/messages/batch", http.StatusTooManyRequests)
	require.Equal(t, "recipient_inbox_full", code)
	require.Zero(t, countStoredMessages(t, node))
}

func TestDeclaredBodyOverLimit413(t *testing.T) {
	node := newTestNode(t)
	req := httptest.NewRequest(http.MethodPost, "/api/v1/messages", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", acmeKey)
	req.ContentLength = node.cfg.HTTP.MaxBodyBytes + 1
	rec := httptest.NewRecorder()
	node.echo.ServeHTTP(rec, req)
	code, _ := requireError(t, rec, "/api/v1/messages", http.StatusRequestEntityTooLarge)
	require.Equal(t, "body_too_large", code)
}

func TestCompressedBody415(t *testing.T) {
	node := newTestNode(t)
	rec := serve(t, node, request{Method: http.MethodPost, Path: "/api/v1/messages",
		Body:   `{"recipientPhoneNumber": "775265496", "messageContent": "x"}`,
		Header: asAcme("Content-Encoding", "gzip")})
	code, _ := requireError(t, rec, "/api/v1/messages", http.StatusUnsupportedMediaType)
	require.Equal(t, "unsupported_content_encoding", code)
}

func TestSlowBodyTimesOut408(t *testing.T) {
	node := newTestNode(t, "ESH3ARTECH_HTTP_BODY_TIMEOUT=200ms")
	require.NoError(t, node.Serve())
	conn, err := net.DialTimeout("tcp", node.Addr(), 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("POST /api/v1/messages HTTP/1.1\r\nHost: relay\r\n" +
		"Content-Type: application/json\r\nX-Api-Key: " + acmeKey + "\r\n" +
		"Content-Length: 100\r\n\r\n{\"recipientPho"))
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
}

func TestNodeRefusalRefundsTokens(t *testing.T) {
	// The node does not serve, so its queue only grows.
	node := newTestNode(t, "ESH3ARTECH_LIMITS_RATE=0.01", "ESH3ARTECH_LIMITS_BURST=2",
		"ESH3ARTECH_LIMITS_QUEUE_HIGH_WATER=1")
	require.Equal(t, http.StatusAccepted, sendTo(t, node, "775265496").Code)
	require.Equal(t, http.StatusServiceUnavailable, sendTo(t, node, "775265497").Code)

	l := node.limits.limits()
	l.QueueHighWater = 100
	node.limits.set(l, node.clients)
	require.Equal(t, http.StatusAccepted, sendTo(t, node, "775265497").Code,
		"the token of the refused request was put back")
	require.Equal(t, http.StatusTooManyRequests, sendTo(t, node, "775265497").Code)
}

func TestBodyEncodingRejected(t *testing.T) {
	node := newTestNode(t)
	rec := serve(t, node, request{Method: http.MethodPost, Path: "/api/v1/messages",
		Body:   "{\"recipientPhoneNumber\": \"775265496\", \"messageContent\": \"caf\xe9\"}",
		Header: asAcme()})
	code, _ := requireError(t, rec, "/api/v1/messages", http.StatusBadRequest)
	require.Equal(t, "invalid_utf8", code)

	rec = serve(t, node, request{Method: http.MethodPost, Path: "/api/v1/messages",
		Body:   `{"recipientPhoneNumber": "775265496", "messageContent": "x"}`,
		Header: asAcme("Content-Type", "application/json; charset=iso-8859-1")})
	code, _ = requireError(t, rec, "/api/v1/messages", http.StatusUnsupportedMediaType)
	require.Equal(t, "unsupported_charset", code)
	require.Zero(t, countStoredMessages(t, node))
}

func TestCompatPathForms(t *testing.T) {
	node := newTestNode(t)
	for _, path := range []string{
		"/api/app/message/send-one-way-message/",
		"/api/app/message/send-one-way-messag%65",
	} {
		rec := serve(t, node, request{Method: http.MethodPost, Path: path,
			Body: `{"recipientPhoneNumber": "775265496", "messageContent": "x"}`, Header: asAcme()})
		require.Equal(t, http.StatusOK, rec.Code, path)
	}
}
