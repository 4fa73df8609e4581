package main

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestResolveTargetAcceptsLoopback(t *testing.T) {
	for _, raw := range []string{"http://127.0.0.1:8080", "http://[::1]:8080", "http://localhost:8080/prefix"} {
		tg, err := resolveTarget(context.Background(), raw, "k")
		require.NoError(t, err, raw)
		require.True(t, tg.ip.IsLoopback(), raw)
	}
}

func TestResolveTargetRejectsOtherHosts(t *testing.T) {
	for _, raw := range []string{"http://10.1.2.3:8080", "http://192.168.1.1", "http://8.8.8.8:80"} {
		_, err := resolveTarget(context.Background(), raw, "k")
		require.ErrorContains(t, err, "not a loopback address", raw)
	}
}

func TestResolveTargetRejectsOtherSchemes(t *testing.T) {
	_, err := resolveTarget(context.Background(), "https://127.0.0.1:8443", "k")
	require.ErrorContains(t, err, "must be an http:// URL")
}

func TestTargetPathKeepsPrefix(t *testing.T) {
	tg, err := resolveTarget(context.Background(), "http://localhost:9000/relay/", "k")
	require.NoError(t, err)

	require.Equal(t, "/relay/api/v1/messages", tg.path("/api/v1/messages"))
	require.Equal(t, "http://localhost:9000/relay/online-mobile-user", tg.url("/online-mobile-user"))
}

func TestSourceAddrsOnlyWhenNeeded(t *testing.T) {
	tg, err := resolveTarget(context.Background(), "http://127.0.0.1:1", "k")
	require.NoError(t, err)
	perAddress := ephemeralPorts() / 2

	none, err := sourceAddrs(tg, perAddress, 0)
	require.NoError(t, err)
	require.Nil(t, none)
	two, err := sourceAddrs(tg, perAddress+1, 0)
	require.NoError(t, err)
	require.Len(t, two, 2)
	require.Equal(t, "127.0.0.2", two[0].IP.String())
	require.Equal(t, "127.0.0.3", two[1].IP.String())
}

func TestSourceAddrsNeedIPv4(t *testing.T) {
	tg, err := resolveTarget(context.Background(), "http://[::1]:1", "k")
	require.NoError(t, err)

	_, err = sourceAddrs(tg, 10, 2)
	require.ErrorContains(t, err, "IPv4 loopback")
}

func TestCheckFileLimit(t *testing.T) {
	require.NoError(t, checkFileLimit(10, 10))
	require.ErrorContains(t, checkFileLimit(math.MaxInt32, 0), "open files")
}

func TestParseFlagsValidates(t *testing.T) {
	cases := map[string][]string{
		"no clients":         {"--clients", "0"},
		"no rate":            {"--rate", "0"},
		"offline above one":  {"--offline", "1.5"},
		"too many sends":     {"--rate", "1e6", "--duration", "1h"},
		"target without key": {"--target", "http://127.0.0.1:1"},
		"target without secret": {"--target", "http://127.0.0.1:1", "--api-key", "k",
			"--users", "5"},
		"extra argument":   {"now"},
		"file assets host": {"--assets-host", "file:///tmp/echarts/"},
		"negative sources": {"--sources", "-1"},
		"lookup workers":   {"--lookup-workers", "0"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := parseFlags(args, &testWriter{t})
			require.Error(t, err)
		})
	}
}

func TestParseFlagsDefaults(t *testing.T) {
	cfg, err := parseFlags(nil, &testWriter{t})
	require.NoError(t, err)

	require.Equal(t, 10_000, cfg.clients)
	require.Equal(t, float64(10_000), cfg.rate)
	require.Equal(t, 1_000, cfg.users)
	require.Equal(t, int64(100_000), cfg.sends())
	require.Empty(t, cfg.target, "the bench aims at no remote address by default")
}

func TestParseFlagsAddsSlashToAssetsHost(t *testing.T) {
	cfg, err := parseFlags([]string{"--assets-host", "http://127.0.0.1:9000/js"}, &testWriter{t})
	require.NoError(t, err)

	require.Equal(t, "http://127.0.0.1:9000/js/", cfg.assetsHost)
}

// testWriter sends flag output to the test log.
type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
