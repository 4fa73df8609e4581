package hub

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esh3artech/esh3artech/hub/signalr"
)

func TestGoClientUnauthorized(t *testing.T) {
	ts := newTestServer(t, nil)
	_, err := signalr.Dial(context.Background(), ts.url, signalr.Options{})
	require.ErrorIs(t, err, signalr.ErrNegotiate)
	var httpErr *signalr.HTTPError
	require.ErrorAs(t, err, &httpErr)
	require.Equal(t, 401, httpErr.StatusCode)

	_, err = signalr.Dial(context.Background(), ts.url, signalr.Options{SkipNegotiation: true})
	require.ErrorAs(t, err, &httpErr)
	require.Equal(t, 401, httpErr.StatusCode)
}

func TestGoClientSkipNegotiation(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dialClient(t, aliceToken, signalr.Options{SkipNegotiation: true})
	require.Empty(t, c.ConnectionID())
	_, err := c.Invoke(context.Background(), "acknowledgeMessage", "m")
	require.NoError(t, err)
	require.Equal(t, []string{"m"}, ts.events.ackIDs())
}

func TestGoClientClose(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.dialClient(t, aliceToken, signalr.Options{})
	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "a second Close is harmless")
	<-c.Done()
	require.ErrorIs(t, c.Err(), signalr.ErrClosed)
	_, err := c.Invoke(context.Background(), "AcknowledgeMessage", "m")
	require.ErrorIs(t, err, signalr.ErrClosed)
	waitFor(t, "the server to see the close", func() bool {
		return len(ts.events.disconnectedInfos()) == 1
	})
}

func TestGoClientKeepAlive(t *testing.T) {
	ts := newTestServer(t, fastTimers(nil))
	c := ts.dialClient(t, aliceToken, signalr.Options{
		KeepAliveInterval: ts.hub.cfg.KeepAliveInterval,
	})
	conn := ts.connByID(t, c.ConnectionID())
	// Ten client pings span more than the server's ClientTimeout.
	seen := map[int64]bool{conn.lastRead.Load(): true}
	waitFor(t, "ten client pings", func() bool {
		seen[conn.lastRead.Load()] = true
		return len(seen) > 10
	})
	require.Empty(t, ts.events.disconnectedInfos())
	require.Nil(t, c.Err())
}

func TestGoClientServerTimeout(t *testing.T) {
	ts := newTestServer(t, func(cfg *Config) { cfg.KeepAliveInterval = time.Hour })
	c := ts.dialClient(t, aliceToken, signalr.Options{ServerTimeout: 100 * time.Millisecond})
	<-c.Done()
	require.Error(t, c.Err(), "a silent server ends the connection")
	require.NotErrorIs(t, c.Err(), signalr.ErrClosed)
}

func TestGoClientPendingMessagesHandler(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.events.setOnConnected(func(c ConnInfo) {
		require.NoError(t, ts.hub.SendPending(c.ID, []MobileMessage{{ID: "p1"}}))
	})
	got := make(chan string, 1)
	ts.dialClient(t, aliceToken, signalr.Options{Handlers: map[string]signalr.Handler{
		"ReceivePendingMessages": func(args []json.RawMessage) {
			var text string
			require.NoError(t, json.Unmarshal(args[0], &text))
			got <- text
		},
	}})
	require.JSONEq(t, `[{"Id":"p1","CreatorId":"","RecipientPhoneNumber":"","MessageContent":"",
		"Status":0,"From":"","AccessUrl":"","UrlExpiresAt":null}]`, <-got)
}
