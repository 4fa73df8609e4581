package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestBaselineHandlerAnswersWithID(t *testing.T) {
	srv := httptest.NewServer(baselineHandler())
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/api/v1/messages", "application/json",
		strings.NewReader(`{"recipientPhoneNumber":"967771234567","messageContent":"hi"}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	var answer struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&answer))

	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	_, err = uuid.Parse(answer.ID)
	require.NoError(t, err)
	require.Equal(t, "/api/v1/messages/"+answer.ID, resp.Header.Get("Location"))
}

func TestBaselineHandlerRejectsBadJSON(t *testing.T) {
	srv := httptest.NewServer(baselineHandler())
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/api/v1/messages", "application/json", strings.NewReader(`{"recipient`))
	require.NoError(t, err)
	resp.Body.Close()

	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

func TestBaselineChildStartsAndStops(t *testing.T) {
	srv, err := startBaseline()
	require.NoError(t, err)

	resp, err := http.Post("http://"+srv.addr+"/api/v1/messages", "application/json",
		strings.NewReader(`{"recipientPhoneNumber":"967771234567","messageContent":"hi"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)

	cpu, err := srv.cpuSeconds()
	require.NoError(t, err)
	require.GreaterOrEqual(t, cpu, float64(0))
	rss, err := srv.peakRSS()
	require.NoError(t, err)
	require.Positive(t, rss)
	require.NoError(t, srv.stop(), "the baseline server exits cleanly on SIGTERM")
}
