package hub

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esh3artech/esh3artech/hub/signalr"
)

var eventStream = http.Header{"Accept": {"text/event-stream"}}

func TestTransportUnknownIDNotFound(t *testing.T) {
	ts := newTestServer(t, nil)
	url := ts.connURL("no-such-token")
	for _, tc := range []struct {
		method string
		header http.Header
	}{
		{http.MethodGet, nil},
		{http.MethodGet, eventStream},
		{http.MethodPost, nil},
		{http.MethodDelete, nil},
	} {
		status, _ := ts.do(t, tc.method, url, aliceToken, "", tc.header)
		require.Equal(t, http.StatusNotFound, status, tc.method)
	}
	_, status, err := tryDialRaw(url, aliceToken)
	require.Error(t, err)
	require.Equal(t, http.StatusNotFound, status)
}

func TestTransportMissingIDBadRequest(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		status, _ := ts.do(t, method, ts.url, aliceToken, "", nil)
		require.Equal(t, http.StatusBadRequest, status, method)
	}
}

func TestTransportUnauthorized(t *testing.T) {
	ts := newTestServer(t, nil)
	neg := ts.negotiate(t, aliceToken, "")
	url := ts.connURL(neg.ConnectionToken)
	status, _ := ts.do(t, http.MethodGet, url, "", "", nil)
	require.Equal(t, http.StatusUnauthorized, status)
	status, _ = ts.do(t, http.MethodGet, ts.connURL("no-such-token"), "", "", nil)
	require.Equal(t, http.StatusUnauthorized, status, "401 comes before the lookup")
	_, status, err := tryDialRaw(url, "")
	require.Error(t, err)
	require.Equal(t, http.StatusUnauthorized, status)
	_, status, err = tryDialRaw(ts.url, "")
	require.Error(t, err)
	require.Equal(t, http.StatusUnauthorized, status, "skipNegotiation needs a token too")
}

func TestTransportOtherUserForbidden(t *testing.T) {
	ts := newTestServer(t, nil)
	neg := ts.negotiate(t, aliceToken, "")
	url := ts.connURL(neg.ConnectionToken)
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		status, body := ts.do(t, method, url, bobToken, "", nil)
		require.Equal(t, http.StatusForbidden, status, method)
		require.NotContains(t, body, alicePhone)
	}
	_, status, err := tryDialRaw(url, bobToken)
	require.Error(t, err)
	require.Equal(t, http.StatusForbidden, status)
	// The owner can still use the connection.
	dialRaw(t, url, aliceToken).handshake(1)
}

func TestWebSocketSecondConnectionConflict(t *testing.T) {
	ts := newTestServer(t, nil)
	neg := ts.negotiate(t, aliceToken, "")
	first := dialRaw(t, ts.connURL(neg.ConnectionToken), aliceToken)
	first.handshake(1)
	_, status, err := tryDialRaw(ts.connURL(neg.ConnectionToken), aliceToken)
	require.Error(t, err)
	require.Equal(t, http.StatusConflict, status)
	// The first connection keeps working.
	first.send(invocation("1", "AcknowledgeMessage", `"m1"`))
	require.Equal(t, signalr.TypeCompletion, first.next().Type)
}

func TestWebSocketSkipNegotiation(t *testing.T) {
	ts := newTestServer(t, nil)
	c := dialRaw(t, ts.url, aliceToken)
	c.handshake(1)
	waitFor(t, "the connection to open", func() bool { return ts.hub.ConnCount() == 1 })
	infos := ts.hub.Connections(alicePhone)
	require.Len(t, infos, 1)
	require.Equal(t, TransportWebSockets, infos[0].Transport)
	require.NotEmpty(t, infos[0].ID)
	require.NotEmpty(t, infos[0].RemoteAddr)
}

func TestPostToWebSocketConnectionNotAllowed(t *testing.T) {
	ts := newTestServer(t, nil)
	neg := ts.negotiate(t, aliceToken, "")
	dialRaw(t, ts.connURL(neg.ConnectionToken), aliceToken).handshake(1)
	status, _ := ts.do(t, http.MethodPost, ts.connURL(neg.ConnectionToken), aliceToken,
		"{\"type\":6}\x1e", nil)
	require.Equal(t, http.StatusMethodNotAllowed, status)
	status, _ = ts.do(t, http.MethodDelete, ts.connURL(neg.ConnectionToken), aliceToken, "", nil)
	require.Equal(t, http.StatusBadRequest, status, "DELETE ends long polling connections only")
}

func TestTransportCannotChange(t *testing.T) {
	ts := newTestServer(t, nil)
	neg := ts.negotiate(t, aliceToken, "")
	url := ts.connURL(neg.ConnectionToken)
	status, _ := ts.do(t, http.MethodGet, url, aliceToken, "", nil)
	require.Equal(t, http.StatusOK, status)
	_, status, err := tryDialRaw(url, aliceToken)
	require.Error(t, err)
	require.Equal(t, http.StatusBadRequest, status)
	status, _ = ts.do(t, http.MethodGet, url, aliceToken, "", eventStream)
	require.Equal(t, http.StatusBadRequest, status)
}

func TestPostBeforeTransportBadRequest(t *testing.T) {
	ts := newTestServer(t, nil)
	neg := ts.negotiate(t, aliceToken, "")
	status, _ := ts.do(t, http.MethodPost, ts.connURL(neg.ConnectionToken), aliceToken,
		"{\"protocol\":\"json\",\"version\":1}\x1e", nil)
	require.Equal(t, http.StatusBadRequest, status)
}

func TestLongPollingFlow(t *testing.T) {
	ts := newTestServer(t, func(cfg *Config) { cfg.LongPollTimeout = 50 * time.Millisecond })
	neg := ts.negotiate(t, aliceToken, "")
	url := ts.connURL(neg.ConnectionToken)

	status, body := ts.do(t, http.MethodGet, url, aliceToken, "", nil)
	require.Equal(t, http.StatusOK, status, "the first poll returns at once")
	require.Empty(t, body)

	status, _ = ts.do(t, http.MethodPost, url, aliceToken,
		"{\"protocol\":\"json\",\"version\":1}\x1e", nil)
	require.Equal(t, http.StatusOK, status)
	status, body = ts.do(t, http.MethodGet, url, aliceToken, "", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "{}\x1e", body)
	require.Equal(t, 1, ts.hub.ConnCount())

	status, body = ts.do(t, http.MethodGet, url, aliceToken, "", nil)
	require.Equal(t, http.StatusOK, status, "a poll without data ends after LongPollTimeout")
	require.Empty(t, body)

	status, _ = ts.do(t, http.MethodPost, url, aliceToken,
		invocation("1", "AcknowledgeMessage", `"m1"`)+"\x1e", nil)
	require.Equal(t, http.StatusOK, status)
	status, body = ts.do(t, http.MethodGet, url, aliceToken, "", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "{\"type\":3,\"invocationId\":\"1\"}\x1e", body)

	status, _ = ts.do(t, http.MethodDelete, url, aliceToken, "", nil)
	require.Equal(t, http.StatusAccepted, status)
	waitFor(t, "Disconnected", func() bool { return len(ts.events.disconnectedInfos()) == 1 })
	status, _ = ts.do(t, http.MethodGet, url, aliceToken, "", nil)
	require.Equal(t, http.StatusNotFound, status)
}

// startLongPolling negotiates, makes the first poll and completes the handshake.
func startLongPolling(t *testing.T, ts *testServer) string {
	t.Helper()
	neg := ts.negotiate(t, aliceToken, "")
	url := ts.connURL(neg.ConnectionToken)
	status, _ := ts.do(t, http.MethodGet, url, aliceToken, "", nil)
	require.Equal(t, http.StatusOK, status)
	status, _ = ts.do(t, http.MethodPost, url, aliceToken,
		"{\"protocol\":\"json\",\"version\":1}\x1e", nil)
	require.Equal(t, http.StatusOK, status)
	status, body := ts.do(t, http.MethodGet, url, aliceToken, "", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "{}\x1e", body)
	return url
}

// pollAsync starts a poll and returns a channel with its status.
func pollAsync(t *testing.T, ts *testServer, url string) <-chan int {
	done := make(chan int, 1)
	go func() {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			done <- -1
			return
		}
		req.Header.Set("Authorization", "Bearer "+aliceToken)
		resp, err := ts.srv.Client().Do(req)
		if err != nil {
			done <- -1
			return
		}
		_ = resp.Body.Close()
		done <- resp.StatusCode
	}()
	return done
}

// waitForPoll waits until a poll of the connection behind url is waiting.
func waitForPoll(t *testing.T, ts *testServer, url string) *pollWaiter {
	t.Helper()
	c := ts.hub.reg.byToken(strings.TrimPrefix(url, ts.url+"?id="))
	require.NotNil(t, c)
	var waiter *pollWaiter
	waitFor(t, "a waiting poll", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if lp, ok := c.transport.(*pollTransport); ok {
			waiter = lp.waiter
		}
		return waiter != nil
	})
	return waiter
}

func TestLongPollSupersededByNewPoll(t *testing.T) {
	ts := newTestServer(t, nil)
	url := startLongPolling(t, ts)
	first := pollAsync(t, ts, url)
	firstWaiter := waitForPoll(t, ts, url)
	second := pollAsync(t, ts, url)
	require.Equal(t, http.StatusNoContent, <-first)
	waitFor(t, "the second poll to wait", func() bool {
		return waitForPoll(t, ts, url) != firstWaiter
	})
	status, _ := ts.do(t, http.MethodDelete, url, aliceToken, "", nil)
	require.Equal(t, http.StatusAccepted, status)
	require.Equal(t, http.StatusNoContent, <-second, "DELETE ends the waiting poll with 204")
}

func TestLongPollConcurrentPostConflict(t *testing.T) {
	ts := newTestServer(t, nil)
	release := make(chan struct{})
	ts.events.setOnAck(func(ctx context.Context, _ ConnInfo, _ string) error {
		<-release
		return nil
	})
	url := startLongPolling(t, ts)
	firstPost := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, url,
			strings.NewReader(invocation("1", "AcknowledgeMessage", `"m1"`)+"\x1e"))
		req.Header.Set("Authorization", "Bearer "+aliceToken)
		resp, err := ts.srv.Client().Do(req)
		if err != nil {
			firstPost <- -1
			return
		}
		_ = resp.Body.Close()
		firstPost <- resp.StatusCode
	}()
	waitFor(t, "the first POST to run Acknowledge", func() bool {
		return len(ts.events.ackIDs()) == 1
	})
	status, _ := ts.do(t, http.MethodPost, url, aliceToken, "{\"type\":6}\x1e", nil)
	require.Equal(t, http.StatusConflict, status)
	close(release)
	require.Equal(t, http.StatusOK, <-firstPost)
	status, _ = ts.do(t, http.MethodPost, url, aliceToken, "{\"type\":6}\x1e", nil)
	require.Equal(t, http.StatusOK, status, "the connection stays open after a 409")
}

func TestServerSentEventsFlow(t *testing.T) {
	ts := newTestServer(t, nil)
	neg := ts.negotiate(t, aliceToken, "")
	url := ts.connURL(neg.ConnectionToken)

	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+aliceToken)
	resp, err := ts.srv.Client().Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))

	status, _ := ts.do(t, http.MethodGet, url, aliceToken, "", eventStream)
	require.Equal(t, http.StatusConflict, status, "a second event stream conflicts")

	status, _ = ts.do(t, http.MethodPost, url, aliceToken,
		"{\"protocol\":\"json\",\"version\":1}\x1e", nil)
	require.Equal(t, http.StatusOK, status)
	lines := bufio.NewReader(resp.Body)
	require.Equal(t, "data: {}\x1e", readSSEData(t, lines))

	waitFor(t, "the connection to open", func() bool { return ts.hub.ConnCount() == 1 })
	require.NoError(t, ts.hub.SendMessage(neg.ConnectionID, MobileMessage{ID: "m1"}))
	data := readSSEData(t, lines)
	require.True(t, strings.HasPrefix(data, `data: {"type":1,"target":"ReceiveMessage"`), data)

	_ = resp.Body.Close()
	waitFor(t, "Disconnected after the stream closed", func() bool {
		return len(ts.events.disconnectedInfos()) == 1
	})
}

// readSSEData returns the next non-empty line of an event stream, without its line end.
func readSSEData(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		line = strings.TrimRight(line, "\r\n")
		if line != "" {
			return line
		}
	}
}

func TestAppendSSEEventSplitsLines(t *testing.T) {
	got := appendSSEEvent(nil, [][]byte{[]byte("a\nb"), []byte("c\r\nd")})
	require.Equal(t, "data: a\r\ndata: bc\r\ndata: d\r\n\r\n", string(got))
}

func TestWebSocketMessagesInOneSegment(t *testing.T) {
	ts := newTestServer(t, nil)
	c := dialIdleWebSocket(t, ts)
	t.Cleanup(func() { _ = c.Close() })
	waitFor(t, "the connection to open", func() bool { return ts.hub.ConnCount() == 1 })
	// Two WebSocket messages in one write land in the server's read buffer together,
	// so the second must be parsed without waiting for the socket.
	var segment []byte
	for _, id := range []string{"1", "2"} {
		record := append([]byte(invocation(id, "AcknowledgeMessage", `"m`+id+`"`)),
			signalr.RecordSeparator)
		segment = append(segment, maskedTextFrame(record)...)
	}
	_, err := c.Write(segment)
	require.NoError(t, err)
	waitFor(t, "both invocations to run", func() bool { return len(ts.events.ackIDs()) == 2 })
	require.Equal(t, []string{"m1", "m2"}, ts.events.ackIDs())
}
