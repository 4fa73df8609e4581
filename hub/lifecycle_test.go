package hub

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esh3artech/esh3artech/hub/signalr"
)

func TestShutdownClosesEveryTransport(t *testing.T) {
	ts := newTestServer(t, nil)
	wsClient := ts.dialClient(t, aliceToken, signalr.Options{})
	raw, _ := ts.connectRaw(t, bobToken)
	pollURL := startLongPolling(t, ts)
	poll := pollAsync(t, ts, pollURL)
	waitForPoll(t, ts, pollURL)
	idlePollURL := startLongPolling(t, ts)
	negotiated := ts.negotiate(t, aliceToken, "")
	waitFor(t, "four open connections", func() bool { return ts.hub.ConnCount() == 4 })

	require.NoError(t, ts.hub.Shutdown(context.Background()))

	<-wsClient.Done()
	var closeErr *signalr.CloseError
	require.ErrorAs(t, wsClient.Err(), &closeErr)
	require.True(t, closeErr.AllowReconnect)
	require.Equal(t, "Server is shutting down.", closeErr.Message)

	seen := raw.expectEnd()
	require.Len(t, seen, 1)
	require.Equal(t, signalr.TypeClose, seen[0].Type)
	require.True(t, seen[0].AllowReconnect)

	require.Equal(t, http.StatusOK, <-poll, "the waiting poll got the Close message")
	require.Equal(t, 0, ts.hub.ConnCount())
	require.Len(t, ts.events.disconnectedInfos(), 4)
	require.Empty(t, ts.hub.reg.all(nil))
	require.Nil(t, ts.hub.reg.byToken(negotiated.ConnectionToken))

	status, _ := ts.do(t, http.MethodGet, idlePollURL, aliceToken, "", nil)
	require.Equal(t, http.StatusServiceUnavailable, status)
	status, _ = ts.do(t, http.MethodPost, ts.url+"/negotiate", aliceToken, "", nil)
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.NoError(t, ts.hub.Shutdown(context.Background()), "a second Shutdown is harmless")
}

func TestShutdownContextExpiry(t *testing.T) {
	ts := newTestServer(t, nil)
	release := make(chan struct{})
	defer close(release)
	ts.events.setOnAck(func(ctx context.Context, _ ConnInfo, _ string) error {
		<-release
		return nil
	})
	c, _ := ts.connectRaw(t, aliceToken)
	c.send(invocation("1", "AcknowledgeMessage", `"stuck"`))
	waitFor(t, "Acknowledge to start", func() bool { return len(ts.events.ackIDs()) == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := ts.hub.Shutdown(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.Len(t, ts.events.disconnectedInfos(), 1, "expiry ends every connection")
}

func TestSlowConsumerLongPolling(t *testing.T) {
	ts := newTestServer(t, func(cfg *Config) { cfg.SendQueueSize = 4 })
	url := startLongPolling(t, ts)
	id := ts.events.connectedInfos()[0].ID
	for i := range 4 {
		require.NoError(t, ts.hub.SendMessage(id, MobileMessage{ID: string(rune('a' + i))}))
	}
	err := ts.hub.SendMessage(id, MobileMessage{ID: "overflow"})
	require.ErrorIs(t, err, ErrSlowConsumer)
	require.ErrorIs(t, ts.hub.SendMessage(id, MobileMessage{ID: "later"}), ErrConnClosing)

	status, body := ts.do(t, http.MethodGet, url, aliceToken, "", nil)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "{\"type\":7,\"error\":\"Send queue is full.\",\"allowReconnect\":true}\x1e",
		body, "queued messages are dropped and only the Close message is sent")
	waitFor(t, "Disconnected", func() bool { return len(ts.events.disconnectedInfos()) == 1 })
	require.ErrorIs(t, ts.hub.SendMessage(id, MobileMessage{ID: "gone"}), ErrConnNotFound)
}

func TestSlowConsumerWebSocket(t *testing.T) {
	ts := newTestServer(t, func(cfg *Config) {
		cfg.SendQueueSize = 8
		cfg.WriteTimeout = 200 * time.Millisecond
	})
	_, neg := ts.connectRaw(t, aliceToken)
	// The client never reads, so socket buffers fill and then the send queue does.
	big := MobileMessage{ID: "big", MessageContent: strings.Repeat("x", 64<<10)}
	var err error
	for i := 0; i < 4000 && err == nil; i++ {
		err = ts.hub.SendMessage(neg.ConnectionID, big)
	}
	require.ErrorIs(t, err, ErrSlowConsumer)
	waitFor(t, "Disconnected of the slow connection", func() bool {
		return len(ts.events.disconnectedInfos()) == 1
	})
}

func TestCloseConnAllowsReconnect(t *testing.T) {
	ts := newTestServer(t, nil)
	c, neg := ts.connectRaw(t, aliceToken)
	require.NoError(t, ts.hub.CloseConn(neg.ConnectionID, "Moved to another node."))
	seen := c.expectEnd()
	require.Equal(t, []signalr.Message{{Type: signalr.TypeClose,
		Error: "Moved to another node.", AllowReconnect: true}}, seen)
	// The client sees the end before the server has removed the connection.
	waitFor(t, "the closed connection to leave the registry", func() bool {
		return errors.Is(ts.hub.CloseConn(neg.ConnectionID, "again"), ErrConnNotFound)
	})
}

func TestConnectedContextEndsWithConnection(t *testing.T) {
	ctxs := make(chan context.Context, 1)
	ts := newTestServer(t, func(cfg *Config) {
		cfg.Events = &ctxEvents{testEvents: cfg.Events.(*testEvents), ctxs: ctxs}
	})
	c, _ := ts.connectRaw(t, aliceToken)
	ctx := <-ctxs
	require.NoError(t, ctx.Err())
	c.send(`{"type":7}`)
	<-ctx.Done()
	require.ErrorIs(t, ctx.Err(), context.Canceled)
}

type ctxEvents struct {
	*testEvents
	ctxs chan context.Context
}

func (e *ctxEvents) Connected(ctx context.Context, c ConnInfo) {
	e.testEvents.Connected(ctx, c)
	e.ctxs <- ctx
}

func TestDisconnectedOnceWhenClosedDuringConnected(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.events.setOnConnected(func(c ConnInfo) {
		// The router closes the connection before Connected returns.
		require.NoError(t, ts.hub.CloseConn(c.ID, "bye"))
	})
	c := dialRaw(t, ts.url, aliceToken)
	c.handshake(1)
	c.expectEnd()
	waitFor(t, "Disconnected", func() bool { return len(ts.events.disconnectedInfos()) == 1 })
	require.Len(t, ts.events.connectedInfos(), 1)
	require.Equal(t, 0, ts.hub.ConnCount())
	require.Empty(t, ts.hub.Connections(alicePhone))
}

func TestConnectionsPerUser(t *testing.T) {
	ts := newTestServer(t, nil)
	a1, _ := ts.connectRaw(t, aliceToken)
	ts.connectRaw(t, aliceToken)
	ts.connectRaw(t, bobToken)
	require.Len(t, ts.hub.Connections(alicePhone), 2)
	require.Len(t, ts.hub.Connections(bobPhone), 1)
	require.Empty(t, ts.hub.Connections("+19999999999"))
	require.Equal(t, 3, ts.hub.ConnCount())
	a1.send(`{"type":7}`)
	waitFor(t, "one of alice's connections to close", func() bool {
		return len(ts.hub.Connections(alicePhone)) == 1
	})
	require.Equal(t, 2, ts.hub.ConnCount())
}

func TestSendToUnknownConnection(t *testing.T) {
	ts := newTestServer(t, nil)
	err := ts.hub.SendMessage("nope", MobileMessage{ID: "m"})
	require.ErrorIs(t, err, ErrConnNotFound)
	require.ErrorIs(t, ts.hub.SendPending("nope", nil), ErrConnNotFound)
	require.False(t, errors.Is(err, ErrSlowConsumer))
}
