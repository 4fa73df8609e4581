package hub

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esh3artech/esh3artech/hub/signalr"
)

func TestNegotiateVersion1(t *testing.T) {
	ts := newTestServer(t, nil)
	neg := ts.negotiate(t, aliceToken, "")
	require.Equal(t, 1, neg.NegotiateVersion)
	require.NotEmpty(t, neg.ConnectionID)
	require.NotEqual(t, neg.ConnectionID, neg.ConnectionToken)
	raw, err := base64.RawURLEncoding.DecodeString(neg.ConnectionToken)
	require.NoError(t, err, "token must be URL-safe base64")
	require.GreaterOrEqual(t, len(raw)*8, 128)
	require.False(t, neg.UseStatefulReconnect)
	require.Equal(t, []signalr.AvailableTransport{
		{Transport: "WebSockets", TransferFormats: []string{"Text"}},
		{Transport: "ServerSentEvents", TransferFormats: []string{"Text"}},
		{Transport: "LongPolling", TransferFormats: []string{"Text"}},
	}, neg.AvailableTransports)

	c := ts.hub.reg.byToken(neg.ConnectionToken)
	require.NotNil(t, c)
	require.Equal(t, alicePhone, c.info.User)
	require.Equal(t, 0, ts.hub.ConnCount(), "negotiated connections are not open yet")
}

func TestNegotiateTokensAreUnique(t *testing.T) {
	ts := newTestServer(t, nil)
	seen := make(map[string]bool)
	for range 20 {
		neg := ts.negotiate(t, aliceToken, "")
		require.False(t, seen[neg.ConnectionID])
		require.False(t, seen[neg.ConnectionToken])
		seen[neg.ConnectionID] = true
		seen[neg.ConnectionToken] = true
	}
}

func TestNegotiateVersion0(t *testing.T) {
	ts := newTestServer(t, nil)
	status, body := ts.do(t, http.MethodPost, ts.url+"/negotiate", aliceToken, "", nil)
	require.Equal(t, http.StatusOK, status)
	var fields map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &fields))
	require.NotContains(t, fields, "connectionToken")
	require.Equal(t, float64(0), fields["negotiateVersion"])
	id, ok := fields["connectionId"].(string)
	require.True(t, ok)
	require.NotNil(t, ts.hub.reg.byToken(id), "version 0 uses the connection ID as token")
}

func TestNegotiateVersionAboveMaxIsLowered(t *testing.T) {
	ts := newTestServer(t, nil)
	status, body := ts.do(t, http.MethodPost, ts.url+"/negotiate?negotiateVersion=7",
		aliceToken, "", nil)
	require.Equal(t, http.StatusOK, status)
	var neg signalr.NegotiateResponse
	require.NoError(t, json.Unmarshal([]byte(body), &neg))
	require.Equal(t, 1, neg.NegotiateVersion)
}

func TestNegotiateInvalidVersion(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, v := range []string{"abc", "-1", "1.5"} {
		status, body := ts.do(t, http.MethodPost, ts.url+"/negotiate?negotiateVersion="+v,
			aliceToken, "", nil)
		require.Equal(t, http.StatusOK, status, v)
		var neg signalr.NegotiateResponse
		require.NoError(t, json.Unmarshal([]byte(body), &neg))
		require.NotEmpty(t, neg.Error, v)
		require.Empty(t, neg.ConnectionID, v)
	}
}

func TestNegotiateStatefulReconnectOnlyWhenAsked(t *testing.T) {
	ts := newTestServer(t, nil)
	require.True(t, ts.negotiate(t, aliceToken, "&useStatefulReconnect=true").UseStatefulReconnect)
	require.False(t, ts.negotiate(t, aliceToken, "&useStatefulReconnect=false").UseStatefulReconnect)
	require.False(t, ts.negotiate(t, aliceToken, "").UseStatefulReconnect)
}

func TestNegotiateUnauthorized(t *testing.T) {
	ts := newTestServer(t, nil)
	for name, token := range map[string]string{"missing": "", "unknown": "token-mallory"} {
		t.Run(name, func(t *testing.T) {
			status, body := ts.do(t, http.MethodPost, ts.url+"/negotiate?negotiateVersion=1",
				token, "", nil)
			require.Equal(t, http.StatusUnauthorized, status)
			require.JSONEq(t, `{"error":"Unauthorized."}`, body)
		})
	}
	require.Empty(t, ts.hub.reg.all(nil))
}

func TestNegotiateTokenInQuery(t *testing.T) {
	ts := newTestServer(t, nil)
	status, _ := ts.do(t, http.MethodPost,
		ts.url+"/negotiate?negotiateVersion=1&access_token="+aliceToken, "", "", nil)
	require.Equal(t, http.StatusOK, status)
}

func TestNegotiateRequiresPost(t *testing.T) {
	ts := newTestServer(t, nil)
	status, body := ts.do(t, http.MethodGet, ts.url+"/negotiate", aliceToken, "", nil)
	require.Equal(t, http.StatusMethodNotAllowed, status)
	require.Contains(t, body, "error")
}

func TestCORSAllowedOrigin(t *testing.T) {
	const origin = "https://app.example.com"
	ts := newTestServer(t, func(cfg *Config) { cfg.AllowedOrigins = []string{origin} })

	req, err := http.NewRequest(http.MethodOptions, ts.url+"/negotiate", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization,x-signalr-user-agent")
	resp, err := ts.srv.Client().Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Equal(t, origin, resp.Header.Get("Access-Control-Allow-Origin"))
	require.Equal(t, "true", resp.Header.Get("Access-Control-Allow-Credentials"))
	require.Contains(t, resp.Header.Get("Access-Control-Allow-Methods"), "POST")
	require.Equal(t, "authorization,x-signalr-user-agent",
		resp.Header.Get("Access-Control-Allow-Headers"))

	status, _ := ts.do(t, http.MethodPost, ts.url+"/negotiate?negotiateVersion=1", aliceToken,
		"", http.Header{"Origin": {origin}})
	require.Equal(t, http.StatusOK, status)
}

func TestCORSOtherOrigin(t *testing.T) {
	ts := newTestServer(t, func(cfg *Config) {
		cfg.AllowedOrigins = []string{"https://app.example.com"}
	})
	req, err := http.NewRequest(http.MethodOptions, ts.url+"/negotiate", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", "https://evil.example.net")
	resp, err := ts.srv.Client().Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))

	req, err = http.NewRequest(http.MethodPost, ts.url+"/negotiate?negotiateVersion=1", nil)
	require.NoError(t, err)
	req.Header.Set("Origin", "https://evil.example.net")
	req.Header.Set("Authorization", "Bearer "+aliceToken)
	resp, err = ts.srv.Client().Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	require.Empty(t, resp.Header.Get("Access-Control-Allow-Credentials"))
}

func TestUnknownPathNotFound(t *testing.T) {
	ts := newTestServer(t, nil)
	rec := httptestRecorder(ts.hub, http.MethodGet, "/elsewhere")
	require.Equal(t, http.StatusNotFound, rec.Code)
}

func TestAccessToken(t *testing.T) {
	cases := []struct {
		name, header, query, want string
	}{
		{"bearer header", "Bearer abc", "", "abc"},
		{"lower-case scheme", "bearer abc", "", "abc"},
		{"query", "", "access_token=q", "q"},
		{"header wins", "Bearer h", "access_token=q", "h"},
		{"basic ignored", "Basic xyz", "", ""},
		{"none", "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := http.NewRequest(http.MethodGet, "http://h/p?"+tc.query, nil)
			require.NoError(t, err)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			require.Equal(t, tc.want, AccessToken(r))
		})
	}
}

func TestNewValidatesConfig(t *testing.T) {
	_, err := New(Config{Events: &testEvents{}})
	require.ErrorIs(t, err, ErrInvalidConfig)
	_, err = New(Config{Auth: testAuth})
	require.ErrorIs(t, err, ErrInvalidConfig)
	_, err = New(Config{Auth: testAuth, Events: &testEvents{}, Path: "hub"})
	require.ErrorIs(t, err, ErrInvalidConfig)
	_, err = New(Config{Auth: testAuth, Events: &testEvents{}, ClientTimeout: -1})
	require.ErrorIs(t, err, ErrInvalidConfig)
}

func TestNewFillsDefaults(t *testing.T) {
	h, err := New(Config{Auth: testAuth, Events: &testEvents{}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, h.Shutdown(context.Background())) })
	require.Equal(t, DefaultPath, h.cfg.Path)
	require.Equal(t, DefaultMaxMessageSize, h.cfg.MaxMessageSize)
	require.Equal(t, DefaultSendQueueSize, h.cfg.SendQueueSize)
	require.Equal(t, DefaultReconnectBufferSize, h.cfg.ReconnectBufferSize)
	require.Equal(t, DefaultClientTimeout, h.cfg.ClientTimeout)
	require.Equal(t, maxTickInterval, h.tickInterval)
}
