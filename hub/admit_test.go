package hub

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPerUserConnectionCap(t *testing.T) {
	ts := newTestServer(t, func(cfg *Config) { cfg.MaxConnectionsPerUser = 1 })
	ts.connectRaw(t, aliceToken)
	waitFor(t, "the first connection to be live", func() bool { return ts.hub.ConnCount() == 1 })

	status, body := ts.do(t, http.MethodPost, ts.url+"/negotiate?negotiateVersion=1", aliceToken, "", nil)
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Contains(t, body, "maximum number of connections")

	_, status, _ = tryDialRaw(ts.url, aliceToken)
	require.Equal(t, http.StatusServiceUnavailable, status, "skipNegotiation is capped too")

	ts.negotiate(t, bobToken, "") // another user is not affected
}

func TestHubConnectionCap(t *testing.T) {
	ts := newTestServer(t, func(cfg *Config) { cfg.MaxConnections = 1 })
	ts.connectRaw(t, aliceToken)
	waitFor(t, "the first connection to be live", func() bool { return ts.hub.ConnCount() == 1 })
	status, _ := ts.do(t, http.MethodPost, ts.url+"/negotiate?negotiateVersion=1", bobToken, "", nil)
	require.Equal(t, http.StatusServiceUnavailable, status)
}
