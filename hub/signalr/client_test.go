package signalr

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
)

// silentServer upgrades WebSocket requests and then reads without ever replying.
func silentServer(t *testing.T) string {
	t.Helper()
	upgrader := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer func() { _ = ws.Close() }()
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestDialHandshakeTimeout(t *testing.T) {
	url := silentServer(t)
	_, err := Dial(context.Background(), url, Options{
		SkipNegotiation: true, HandshakeTimeout: 20 * time.Millisecond,
	})
	require.ErrorIs(t, err, ErrHandshake)
}

func TestDialHandshakeCancelled(t *testing.T) {
	url := silentServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Dial(ctx, url, Options{SkipNegotiation: true})
		done <- err
	}()
	cancel()
	err := <-done
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "context canceled") ||
		strings.Contains(err.Error(), "operation was canceled"), err.Error())
}

func TestDialNegotiateErrors(t *testing.T) {
	cases := map[string]struct {
		body string
		want string
	}{
		"error field": {`{"error":"This connection is not allowed."}`,
			"This connection is not allowed."},
		"no websockets": {`{"connectionId":"a","negotiateVersion":1,"availableTransports":[]}`,
			"does not offer WebSockets"},
		"invalid response": {`not json`, "invalid response body"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write([]byte(tc.body))
			}))
			t.Cleanup(srv.Close)
			_, err := Dial(context.Background(), srv.URL+"/hub", Options{})
			require.ErrorIs(t, err, ErrNegotiate)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestDialFollowsNegotiateRedirect(t *testing.T) {
	var gotAuth []string
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mux.HandleFunc("/first/negotiate", func(w http.ResponseWriter, r *http.Request) {
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
		_, _ = w.Write([]byte(`{"url":"` + srv.URL + `/second","accessToken":"t2"}`))
	})
	mux.HandleFunc("/second/negotiate", func(w http.ResponseWriter, r *http.Request) {
		gotAuth = append(gotAuth, r.Header.Get("Authorization"))
		_, _ = w.Write([]byte(`{"error":"stop here"}`))
	})
	_, err := Dial(context.Background(), srv.URL+"/first", Options{AccessToken: "t1"})
	require.ErrorContains(t, err, "stop here")
	require.Equal(t, []string{"Bearer t1", "Bearer t2"}, gotAuth)
}
