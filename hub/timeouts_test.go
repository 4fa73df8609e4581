package hub

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esh3artech/esh3artech/hub/signalr"
)

func TestHandshakeTimeoutClosesSocket(t *testing.T) {
	ts := newTestServer(t, fastTimers(nil))
	c := dialRaw(t, ts.url, aliceToken)
	require.Empty(t, c.expectEnd(), "no handshake within HandshakeTimeout")
	waitFor(t, "the connection to be removed", func() bool { return len(ts.hub.reg.all(nil)) == 0 })
	require.Empty(t, ts.events.connectedInfos())
	require.Empty(t, ts.events.disconnectedInfos())
}

func TestNegotiateTimeoutDropsConnection(t *testing.T) {
	ts := newTestServer(t, fastTimers(nil))
	neg := ts.negotiate(t, aliceToken, "")
	waitFor(t, "the negotiated connection to be dropped", func() bool {
		return ts.hub.reg.byToken(neg.ConnectionToken) == nil
	})
	status, _ := ts.do(t, http.MethodGet, ts.connURL(neg.ConnectionToken), aliceToken, "", nil)
	require.Equal(t, http.StatusNotFound, status)
}

func TestKeepAlivePings(t *testing.T) {
	ts := newTestServer(t, fastTimers(func(cfg *Config) { cfg.ClientTimeout = time.Minute }))
	c, _ := ts.connectRaw(t, aliceToken)
	for range 3 {
		m, err := signalr.ParseMessage(c.nextRecord())
		require.NoError(t, err)
		require.Equal(t, signalr.TypePing, m.Type)
	}
}

func TestClientTimeoutCloses(t *testing.T) {
	ts := newTestServer(t, fastTimers(nil))
	c, neg := ts.connectRaw(t, aliceToken)
	seen := c.expectEnd()
	require.Len(t, seen, 1)
	require.Equal(t, signalr.TypeClose, seen[0].Type)
	require.Equal(t, clientTimeoutText, seen[0].Error)
	require.True(t, seen[0].AllowReconnect)
	waitFor(t, "Disconnected", func() bool { return len(ts.events.disconnectedInfos()) == 1 })
	require.Equal(t, neg.ConnectionID, ts.events.disconnectedInfos()[0].ID)
}

func TestClientPingsKeepConnectionOpen(t *testing.T) {
	ts := newTestServer(t, fastTimers(nil))
	c, _ := ts.connectRaw(t, aliceToken)
	// Each server Ping prompts a client Ping, so the client is never silent for long.
	// Twenty round trips span several client timeouts.
	for range 20 {
		m, err := signalr.ParseMessage(c.nextRecord())
		require.NoError(t, err)
		require.Equal(t, signalr.TypePing, m.Type)
		c.send(`{"type":6}`)
	}
	require.Empty(t, ts.events.disconnectedInfos())
}

func TestClientTimeoutWaitsForRunningMethod(t *testing.T) {
	ts := newTestServer(t, fastTimers(nil))
	release := make(chan struct{})
	ts.events.setOnAck(func(ctx context.Context, _ ConnInfo, _ string) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	c, neg := ts.connectRaw(t, aliceToken)
	c.send(invocation("1", "AcknowledgeMessage", `"slow"`))
	waitFor(t, "Acknowledge to start", func() bool { return len(ts.events.ackIDs()) == 1 })
	conn := ts.connByID(t, neg.ConnectionID)
	waitFor(t, "the silence to exceed ClientTimeout", func() bool {
		return elapsedSince(time.Now(), conn.lastRead.Load()) > ts.hub.cfg.ClientTimeout
	})
	// The heartbeat checks the client timeout before it sends a Ping, so a Ping read
	// now proves a check that saw the long silence and kept the connection.
	for range 2 {
		m, err := signalr.ParseMessage(c.nextRecord())
		require.NoError(t, err)
		require.Equal(t, signalr.TypePing, m.Type)
	}
	require.Empty(t, ts.events.disconnectedInfos())
	close(release)
	require.Equal(t, "1", c.next().InvocationID)
}

func TestLongPollingIdleConnectionEnds(t *testing.T) {
	ts := newTestServer(t, fastTimers(nil))
	url := startLongPolling(t, ts)
	waitFor(t, "Disconnected of the idle long polling connection", func() bool {
		return len(ts.events.disconnectedInfos()) == 1
	})
	status, _ := ts.do(t, http.MethodGet, url, aliceToken, "", nil)
	require.Equal(t, http.StatusNotFound, status)
}

func TestTickInterval(t *testing.T) {
	cfg := Config{}.withDefaults()
	require.Equal(t, time.Second, tickInterval(cfg))
	cfg.KeepAliveInterval = 40 * time.Millisecond
	require.Equal(t, 10*time.Millisecond, tickInterval(cfg))
	cfg.KeepAliveInterval = time.Microsecond
	require.Equal(t, time.Millisecond, tickInterval(cfg))
}
