package autoscale

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/esh3artech/esh3artech/app"
)

func TestRenderCommandPlaceholders(t *testing.T) {
	args, err := renderCommand([]string{
		"{{.Binary}}", "serve", "--config", "{{.NodeConfig}}",
		"--name={{.NodeID}}", "{{.HTTPAddr}}", "{{join .Seeds \",\"}}",
	}, sampleSpec)
	require.NoError(t, err)
	require.Equal(t, []string{
		"/usr/bin/esh3artech", "serve", "--config", "/tmp/auto-1/node.yaml",
		"--name=auto-1", "127.0.0.1:8091", "127.0.0.1:7946",
	}, args)

	_, err = renderCommand([]string{"{{.Nope}}"}, sampleSpec)
	require.ErrorContains(t, err, "launch.command[0]")
}

func TestNodeConfigMergesBase(t *testing.T) {
	base := []byte(`
log: {level: debug, format: console}
limits: {max_in_flight: 4}
cluster:
  secret: "0123456789abcdef0123456789abcdef"
  gossip_advertise: "10.0.0.1:7946"
  seeds: ["127.0.0.1:1"]
`)
	spec := sampleSpec
	spec.Seeds = []string{"127.0.0.1:7001", "127.0.0.1:7002"}
	b, err := nodeConfigYAML(base, spec)
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, yaml.Unmarshal(b, &got))
	require.Equal(t, map[string]any{"level": "debug", "format": "json"}, got["log"])
	require.Equal(t, map[string]any{"max_in_flight": 4}, got["limits"])
	require.Equal(t, map[string]any{"listen": "127.0.0.1:8091"}, got["http"])
	require.Equal(t, map[string]any{"agent_listen": "127.0.0.1:8092"}, got["health"])
	require.Equal(t, map[string]any{"dir": "/tmp/auto-1/data"}, got["storage"])
	require.Equal(t, map[string]any{
		"secret": "0123456789abcdef0123456789abcdef", "node_id": "auto-1",
		"gossip_listen": "127.0.0.1:8093", "gossip_advertise": "",
		"peer_listen": "127.0.0.1:8094", "peer_advertise": "",
		"seeds": []any{"127.0.0.1:7001", "127.0.0.1:7002"},
	}, got["cluster"])

	_, err = nodeConfigYAML([]byte("cluster: 3\n"), spec)
	require.ErrorContains(t, err, "cluster.")
}

func TestBaseSeeds(t *testing.T) {
	seeds, err := baseSeeds([]byte("cluster: {seeds: [\"127.0.0.1:7946\"]}\n"))
	require.NoError(t, err)
	require.Equal(t, []string{"127.0.0.1:7946"}, seeds)
	seeds, err = baseSeeds(nil)
	require.NoError(t, err)
	require.Empty(t, seeds)
}

func TestWriteNodeFilesIsPrivate(t *testing.T) {
	spec := newSpec(LaunchConfig{Host: "127.0.0.1"}, "/bin/true", t.TempDir(), "auto-1", nil)
	require.NoError(t, writeNodeFiles([]byte("{}"), spec))
	info, err := os.Stat(spec.NodeConfig)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	require.Equal(t, filepath.Join(spec.Dir, "data"), spec.DataDir)
}

func TestPickPortsFreeAndDistinct(t *testing.T) {
	h, a, g, p, err := pickPorts("127.0.0.1")
	require.NoError(t, err)
	ports := map[int]bool{h: true, a: true, g: true, p: true}
	require.Len(t, ports, 4)
	for port := range ports {
		ln, err := net.Listen("tcp", joinHostPort("127.0.0.1", port))
		require.NoError(t, err, "port %d", port)
		require.NoError(t, ln.Close())
	}
	pc, err := net.ListenPacket("udp", joinHostPort("127.0.0.1", g))
	require.NoError(t, err, "gossip port %d over UDP", g)
	require.NoError(t, pc.Close())
}

func TestCheckSharedSettings(t *testing.T) {
	cfg := &app.Config{}
	require.ErrorContains(t, CheckSharedSettings(cfg), "auth.jwt.hs256_secret")
	cfg.Auth.JWT.HS256Secret = "secret"
	require.ErrorContains(t, CheckSharedSettings(cfg), "auth.clients")
	cfg.Auth.Clients = []app.ClientConfig{{ID: "acme"}}
	require.NoError(t, CheckSharedSettings(cfg))
}
