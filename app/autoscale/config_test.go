package autoscale

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const minimalConfig = `
launch:
  base_config: node.yaml
haproxy:
  socket: /run/haproxy/admin.sock
  backends:
    - name: be_api
      options: "check agent-check agent-port {{.AgentPort}}"
    - name: be_hub
`

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "autoscale.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	return path
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := LoadConfig(writeFile(t, minimalConfig))
	require.NoError(t, err)
	require.Equal(t, 5*time.Second, cfg.Interval)
	require.Equal(t, Trigger{Threshold: 0.8, Window: 30 * time.Second}, cfg.ScaleOut)
	require.Equal(t, Trigger{Threshold: 0.3, Window: 2 * time.Minute}, cfg.ScaleIn)
	require.Equal(t, 60*time.Second, cfg.Cooldown)
	require.Equal(t, 1, cfg.MinNodes)
	require.Equal(t, 4, cfg.MaxNodes)
	require.Equal(t, []string{"{{.Binary}}", "serve", "--config", "{{.NodeConfig}}"}, cfg.Launch.Command)
	require.Equal(t, "127.0.0.1", cfg.Launch.Host)
	require.Equal(t, "check", cfg.HAProxy.Backends[1].Options, "a backend without options gets check")
	require.Equal(t, 5*time.Second, cfg.HAProxy.Timeout)
}

func TestLoadConfigRejects(t *testing.T) {
	cases := []struct {
		name, extra, want string
	}{
		{"unknown key", "scale_up: {threshold: 0.9}\n", "field scale_up not found"},
		{"thresholds crossed", "scale_in: {threshold: 0.9}\n", "scale_in.threshold 0.9"},
		{"bounds crossed", "min_nodes: 3\nmax_nodes: 2\n", "min_nodes 3 and max_nodes 2"},
		{"zero window", "scale_out: {window: 0s}\n", "scale_out.window"},
		{"bad node address", "nodes: [\"127.0.0.1\"]\n", "nodes[0]"},
		{"bad log level", "log: {level: verbose}\n", "log.level"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadConfig(writeFile(t, minimalConfig+c.extra))
			require.ErrorContains(t, err, c.want)
		})
	}
	launchCases := map[string]string{
		`command: ["{{.Port}}"]`: "launch.command[0]",
		"host: localhost":        "launch.host",
		"name_prefix: a/b":       "launch.name_prefix",
		"seeds: [nohost]":        "launch.seeds[0]",
	}
	for line, want := range launchCases {
		text := strings.Replace(minimalConfig, "  base_config: node.yaml\n", "  base_config: node.yaml\n  "+line+"\n", 1)
		_, err := LoadConfig(writeFile(t, text))
		require.ErrorContains(t, err, want, line)
	}
}

func TestLoadConfigRequiresSocketAndBackends(t *testing.T) {
	_, err := LoadConfig(writeFile(t, "launch: {base_config: node.yaml}\n"))
	require.ErrorContains(t, err, "haproxy.socket: missing")
	_, err = LoadConfig(writeFile(t, "launch: {base_config: node.yaml}\nhaproxy: {socket: /a.sock}\n"))
	require.ErrorContains(t, err, "haproxy.backends: missing")
	_, err = LoadConfig(writeFile(t, "haproxy: {socket: /a.sock, backends: [{name: be}]}\n"))
	require.ErrorContains(t, err, "launch.base_config: missing")
}

func TestExampleConfigLoads(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("..", "..", "deploy", "autoscale.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, cfg.HAProxy.Backends)
}
