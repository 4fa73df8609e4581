package autoscale

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const sampleMetrics = `# HELP esh3artech_hub_connections Live SignalR connections.
# TYPE esh3artech_hub_connections gauge
esh3artech_hub_connections 12
# HELP esh3artech_load_ratio Share of the node's capacity in use.
# TYPE esh3artech_load_ratio gauge
esh3artech_load_ratio 0.85
`

func splitTestAddr(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	n, err := strconv.Atoi(port)
	require.NoError(t, err)
	return host, n
}

func TestParseLoad(t *testing.T) {
	load, err := parseLoad(strings.NewReader(sampleMetrics))
	require.NoError(t, err)
	require.InDelta(t, 0.85, load, 1e-12)

	_, err = parseLoad(strings.NewReader("# TYPE other gauge\nother 1\n"))
	require.ErrorContains(t, err, "esh3artech_load_ratio not found")
	_, err = parseLoad(strings.NewReader("esh3artech_load_ratio{ 1\n"))
	require.ErrorContains(t, err, "parse metrics")
}

func TestReadLoadFromNode(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte(sampleMetrics))
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	load, err := ReadLoad(context.Background(), srv.Client(), addr)
	require.NoError(t, err)
	require.InDelta(t, 0.85, load, 1e-12)

	srv.Config.Handler = http.NotFoundHandler()
	_, err = ReadLoad(context.Background(), srv.Client(), addr)
	require.ErrorContains(t, err, "404")
}

func TestPickRemovablePrefersUnreadThenLeastLoaded(t *testing.T) {
	s := &Supervisor{}
	a, b, c := testProcess("auto-1"), testProcess("auto-2"), testProcess("auto-3")
	s.nodes = []*nodeProcess{a, b, c}
	loads := []NodeLoad{{"n1", 0.1}, {"auto-1", 0.2}, {"auto-2", 0.1}, {"auto-3", 0.1}}
	require.Same(t, c, s.pickRemovable(loads), "the newest of the least loaded")
	require.Same(t, a, s.pickRemovable(loads[2:]), "a node whose load was not read")
}
