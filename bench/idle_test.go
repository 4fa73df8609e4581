package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esh3artech/esh3artech/app"
)

func TestKiBPerConnection(t *testing.T) {
	cases := []struct {
		name          string
		with, without uint64
		conns         int64
		want          float64
	}{
		{"growth", 30 << 20, 20 << 20, 1024, 10},
		{"shrink", 20 << 20, 30 << 20, 1024, -10},
		{"no connections", 30 << 20, 20 << 20, 0, 0},
		{"negative count", 30 << 20, 20 << 20, -1, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.InDelta(t, c.want, kibPerConnection(c.with, c.without, c.conns), 1e-9)
		})
	}
}

func TestCountHoldTraffic(t *testing.T) {
	before := []socketBytes{{read: 100, written: 200}, {read: 100, written: 200}, {}, {read: 5, written: 5}}
	after := []socketBytes{{read: 126, written: 234}, {read: 113, written: 200}, {}, {read: 5, written: 22}}

	got := countHoldTraffic(before, after)

	require.Equal(t, int64(2), got.Receiving, "connections 0 and 1 read")
	require.Equal(t, int64(2), got.Sending, "connections 0 and 3 wrote")
	require.Equal(t, int64(26+13), got.BytesRead)
	require.Equal(t, int64(34+17), got.BytesWritten)
}

func TestCountHoldTrafficUnequalLengths(t *testing.T) {
	got := countHoldTraffic([]socketBytes{{}}, []socketBytes{{read: 1, written: 1}, {read: 9, written: 9}})

	require.Equal(t, holdTraffic{Receiving: 1, Sending: 1, BytesRead: 1, BytesWritten: 1}, got)
}

func TestIdleHoldCoversTwoIntervals(t *testing.T) {
	require.Equal(t, 37500*time.Millisecond, idleHold(15*time.Second))
	require.Equal(t, 2500*time.Millisecond, idleHold(time.Second))
}

func TestIdleTimeout(t *testing.T) {
	require.Equal(t, 30*time.Second, idleTimeout(time.Second))
	require.Equal(t, 30*time.Second, idleTimeout(15*time.Second))
	require.Equal(t, 50*time.Second, idleTimeout(25*time.Second))
}

// TestIdleConfigLoadsInNode loads the generated configuration with the
// node's own loader and validation, over the defaults in config.yaml.
func TestIdleConfigLoadsInNode(t *testing.T) {
	defaults, err := os.ReadFile(filepath.Join("..", "config.yaml"))
	require.NoError(t, err)
	for _, keepAlive := range []time.Duration{time.Second, 15 * time.Second, 40 * time.Second} {
		t.Run(keepAlive.String(), func(t *testing.T) {
			s := &nodeSetup{dir: t.TempDir(), apiKey: "key", jwtSecret: "0123456789abcdef0123456789abcdef"}
			path := filepath.Join(s.dir, "config.yaml")
			require.NoError(t, os.WriteFile(path, []byte(s.idleConfig(keepAlive)), 0o600))

			cfg, err := app.LoadConfig(defaults, path, nil)

			require.NoError(t, err)
			require.Equal(t, keepAlive, cfg.Hub.KeepAliveInterval)
			require.Equal(t, idleTimeout(keepAlive), cfg.Hub.ClientTimeout)
		})
	}
}

func TestParseGaugeLine(t *testing.T) {
	cases := []struct {
		line  string
		want  float64
		found bool
	}{
		{"esh3artech_hub_connections 10000", 10000, true},
		{"esh3artech_hub_connections 1.5e+06", 1.5e6, true},
		{"esh3artech_hub_connections 3 1700000000000", 3, true},
		{"esh3artech_hub_connections_total 3", 0, false},
		{`esh3artech_hub_connections{node="a"} 3`, 0, false},
		{"# HELP esh3artech_hub_connections Live SignalR connections.", 0, false},
		{"esh3artech_hub_connections ", 0, false},
		{"esh3artech_hub_connections NaNx", 0, false},
	}
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			got, found := parseGaugeLine(c.line, hubConnectionsMetric)
			require.Equal(t, c.found, found)
			require.Equal(t, c.want, got)
		})
	}
}

func TestCountingConnCountsBothDirections(t *testing.T) {
	client, server := net.Pipe()
	defer func() { _ = server.Close() }()
	ic := &idleClient{}
	conn := &countingConn{Conn: client, read: &ic.read, written: &ic.written}
	defer func() { _ = conn.Close() }()
	go func() {
		buf := make([]byte, 5)
		_, _ = io.ReadFull(server, buf)
		_, _ = server.Write([]byte("pong!!!"))
	}()

	_, err := conn.Write([]byte("ping!"))
	require.NoError(t, err)
	buf := make([]byte, 7)
	_, err = io.ReadFull(conn, buf)
	require.NoError(t, err)

	require.Equal(t, int64(5), ic.written.Load())
	require.Equal(t, int64(7), ic.read.Load())
}

func TestIdleReportComplete(t *testing.T) {
	full := idleReport{Requested: 3, Connected: 3, Traffic: holdTraffic{Receiving: 3, Sending: 3}}
	require.True(t, full.complete())

	failed := full
	failed.Connected = 2
	require.False(t, failed.complete(), "a connection failed")

	dropped := full
	dropped.Dropped = 1
	require.False(t, dropped.complete(), "a connection dropped")

	silent := full
	silent.Traffic.Receiving = 2
	require.False(t, silent.complete(), "a connection received no ping")

	mute := full
	mute.Traffic.Sending = 2
	require.False(t, mute.complete(), "a connection sent no ping")
}

func TestIdlePhones(t *testing.T) {
	phones, err := idlePhones(1000)
	require.NoError(t, err)

	require.Len(t, phones, 1000)
	pattern := regexp.MustCompile(`^96777\d{7}$`)
	seen := map[string]bool{}
	for _, p := range phones {
		require.Regexp(t, pattern, p)
		require.False(t, seen[p], "phone %s repeats", p)
		seen[p] = true
	}
}

func TestIdlePhonesTooMany(t *testing.T) {
	_, err := idlePhones(phoneNumberSpace + 1)

	require.ErrorContains(t, err, "more phone numbers")
}

func TestParseFlagsIdle(t *testing.T) {
	cfg, err := parseFlags([]string{"--idle", "500", "--keep-alive", "2s", "--settle", "1s"}, io.Discard)

	require.NoError(t, err)
	require.Equal(t, 500, cfg.idle)
	require.Equal(t, 2*time.Second, cfg.keepAlive)
	require.Equal(t, time.Second, cfg.settle)
}

func TestParseFlagsIdleRejects(t *testing.T) {
	cases := map[string][]string{
		"negative count":     {"--idle", "-1"},
		"target":             {"--idle", "10", "--target", "http://127.0.0.1:1", "--api-key", "k", "--jwt-secret", "s"},
		"push":               {"--idle", "10", "--push"},
		"baseline":           {"--idle", "10", "--baseline"},
		"zero keep-alive":    {"--idle", "10", "--keep-alive", "0s"},
		"negative settle":    {"--idle", "10", "--settle", "-1s"},
		"above file limit":   {"--idle", "100000000"},
		"negative sources":   {"--idle", "10", "--sources", "-1"},
		"too long keepalive": {"--idle", "10", "--keep-alive", "11m"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := parseFlags(args, io.Discard)
			require.Error(t, err)
		})
	}
}

// TestIdleModeAgainstRealNode runs the idle mode as a user would, with 200
// connections and a 1-second keep-alive: it builds and starts the relay and
// checks that every connection opened, exchanged pings both ways and was
// counted by the node. It checks no memory figure beyond its presence.
func TestIdleModeAgainstRealNode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the relay; skipped with -short")
	}
	jsonPath := filepath.Join(t.TempDir(), "idle.json")
	args := []string{"--idle", "200", "--sources", "2", "--keep-alive", "1s", "--settle", "500ms",
		"--json", jsonPath}
	var stdout, stderr bytes.Buffer

	code := run(context.Background(), args, &stdout, &stderr)

	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	require.NotEqual(t, exitSetup, code, "the bench failed to set up; see its stderr above")
	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	var rep idleReport
	require.NoError(t, json.Unmarshal(b, &rep))
	require.Equal(t, int64(200), rep.Connected)
	require.Equal(t, int64(200), rep.Open)
	require.Zero(t, rep.Dropped)
	require.Equal(t, int64(200), rep.Traffic.Receiving, "every connection received a ping")
	require.Equal(t, int64(200), rep.Traffic.Sending, "every connection sent a ping")
	require.Equal(t, int64(200), rep.NodeConnections)
	require.Equal(t, 2, rep.SourceAddresses)
	require.Positive(t, rep.RSSWithout)
	require.Positive(t, rep.RSSHeld)
	require.Positive(t, rep.RSSSettled)
	require.GreaterOrEqual(t, rep.NodeOpenFilesPeak, 200)
	require.Positive(t, rep.RuntimeHeld.Goroutines)
	require.Equal(t, exitOK, code)
}
