package autoscale

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"

	"github.com/esh3artech/esh3artech/app"
)

// nodeIDPattern is the form of cluster.node_id that nodes accept.
var nodeIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// NodeSpec describes a node that the supervisor starts. Its fields and
// methods are what launch.command and haproxy.backends[].options templates
// can use, for example {{.NodeID}} or {{.HTTPAddr}}.
type NodeSpec struct {
	Binary     string   // the relay executable
	NodeID     string   // cluster.node_id
	Dir        string   // the node's folder under launch.dir
	NodeConfig string   // the node's configuration file, in Dir
	DataDir    string   // storage.dir, in Dir
	LogFile    string   // the node's standard output and error, in Dir
	Host       string   // launch.host
	HTTPPort   int      // http.listen
	AgentPort  int      // health.agent_listen
	GossipPort int      // cluster.gossip_listen, TCP and UDP
	PeerPort   int      // cluster.peer_listen
	Seeds      []string // cluster.seeds
}

// HTTPAddr returns host:port of the node's API listener.
func (s NodeSpec) HTTPAddr() string { return joinHostPort(s.Host, s.HTTPPort) }

// AgentAddr returns host:port of the node's HAProxy agent check.
func (s NodeSpec) AgentAddr() string { return joinHostPort(s.Host, s.AgentPort) }

// GossipAddr returns host:port of the node's gossip listener.
func (s NodeSpec) GossipAddr() string { return joinHostPort(s.Host, s.GossipPort) }

// PeerAddr returns host:port of the node's peer link.
func (s NodeSpec) PeerAddr() string { return joinHostPort(s.Host, s.PeerPort) }

func joinHostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// sampleSpec is a NodeSpec with every field set, for checking templates
// when the configuration is loaded.
var sampleSpec = NodeSpec{
	Binary: "/usr/bin/esh3artech", NodeID: "auto-1", Dir: "/tmp/auto-1",
	NodeConfig: "/tmp/auto-1/node.yaml", DataDir: "/tmp/auto-1/data", LogFile: "/tmp/auto-1/node.log",
	Host: "127.0.0.1", HTTPPort: 8091, AgentPort: 8092, GossipPort: 8093, PeerPort: 8094,
	Seeds: []string{"127.0.0.1:7946"},
}

// renderTemplate runs text as a Go template over spec. An unknown field is
// an error.
func renderTemplate(text string, spec NodeSpec) (string, error) {
	t, err := template.New("").Option("missingkey=error").Funcs(template.FuncMap{
		"join": strings.Join,
	}).Parse(text)
	if err != nil {
		return "", fmt.Errorf("invalid template %q: %w", text, err)
	}
	var b strings.Builder
	if err := t.Execute(&b, spec); err != nil {
		return "", fmt.Errorf("invalid template %q: %w", text, err)
	}
	return b.String(), nil
}

func checkTemplate(text string) error {
	_, err := renderTemplate(text, sampleSpec)
	return err
}

// renderCommand returns the argument list of launch.command for spec.
func renderCommand(command []string, spec NodeSpec) ([]string, error) {
	args := make([]string, len(command))
	for i, arg := range command {
		a, err := renderTemplate(arg, spec)
		if err != nil {
			return nil, fmt.Errorf("launch.command[%d]: %w", i, err)
		}
		args[i] = a
	}
	return args, nil
}

// pickPorts returns four distinct ports that are free on host now: HTTP,
// agent, gossip and peer. The gossip port is free for both TCP and UDP.
//
// NOTE: another process can take a port between this check and the node's
// start; the node then fails to listen and the scale-out fails.
func pickPorts(host string) (httpPort, agentPort, gossipPort, peerPort int, err error) {
	var closers []func() error
	defer func() {
		for _, c := range closers {
			_ = c()
		}
	}()
	ports := make([]int, 0, 4)
	for attempt := 0; len(ports) < 4 && attempt < 40; attempt++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, 0, 0, 0, fmt.Errorf("pick a free port on %s: %w", host, err)
		}
		closers = append(closers, ln.Close)
		port := ln.Addr().(*net.TCPAddr).Port
		if len(ports) == 2 {
			pc, err := net.ListenPacket("udp", joinHostPort(host, port))
			if err != nil {
				continue // the UDP side is taken; try another port
			}
			closers = append(closers, pc.Close)
		}
		ports = append(ports, port)
	}
	if len(ports) < 4 {
		return 0, 0, 0, 0, fmt.Errorf("pick free ports on %s: no free UDP port for gossip in 40 attempts", host)
	}
	return ports[0], ports[1], ports[2], ports[3], nil
}

// nodeConfigYAML returns the configuration of the node in spec: base, a
// node configuration file, with the keys that differ between nodes set.
// log.format is set to json because the supervisor reads the node's log to
// learn its ring size. Advertise addresses are cleared so that the node
// advertises its own listeners.
func nodeConfigYAML(base []byte, spec NodeSpec) ([]byte, error) {
	tree := map[string]any{}
	if err := yaml.Unmarshal(base, &tree); err != nil {
		return nil, fmt.Errorf("parse launch.base_config: %w", err)
	}
	if tree == nil {
		tree = map[string]any{}
	}
	set := map[string]any{
		"log.format":               "json",
		"http.listen":              spec.HTTPAddr(),
		"health.agent_listen":      spec.AgentAddr(),
		"storage.dir":              spec.DataDir,
		"cluster.node_id":          spec.NodeID,
		"cluster.gossip_listen":    spec.GossipAddr(),
		"cluster.gossip_advertise": "",
		"cluster.peer_listen":      spec.PeerAddr(),
		"cluster.peer_advertise":   "",
		"cluster.seeds":            spec.Seeds,
	}
	for key, v := range set {
		if err := setKey(tree, strings.Split(key, "."), v); err != nil {
			return nil, fmt.Errorf("launch.base_config: %s: %w", key, err)
		}
	}
	return yaml.Marshal(tree)
}

func setKey(tree map[string]any, path []string, v any) error {
	for _, k := range path[:len(path)-1] {
		switch next := tree[k].(type) {
		case map[string]any:
			tree = next
		case nil:
			m := map[string]any{}
			tree[k] = m
			tree = m
		default:
			return errors.New("expected a mapping of keys")
		}
	}
	tree[path[len(path)-1]] = v
	return nil
}

// baseSeeds returns cluster.seeds of a node configuration file.
func baseSeeds(base []byte) ([]string, error) {
	var cfg struct {
		Cluster struct {
			Seeds []string `yaml:"seeds"`
		} `yaml:"cluster"`
	}
	if err := yaml.Unmarshal(base, &cfg); err != nil {
		return nil, fmt.Errorf("parse launch.base_config: %w", err)
	}
	return cfg.Cluster.Seeds, nil
}

// writeNodeFiles creates the node's folder and writes its configuration,
// readable by the owner only because it holds the cluster's secrets.
func writeNodeFiles(base []byte, spec NodeSpec) error {
	b, err := nodeConfigYAML(base, spec)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(spec.Dir, 0o700); err != nil {
		return fmt.Errorf("create node folder: %w", err)
	}
	if err := os.WriteFile(spec.NodeConfig, b, 0o600); err != nil {
		return fmt.Errorf("write node config: %w", err)
	}
	return nil
}

// newSpec returns the spec of node id with folders under dir, ports not
// yet picked.
func newSpec(l LaunchConfig, binary, dir, id string, seeds []string) NodeSpec {
	nodeDir := filepath.Join(dir, id)
	return NodeSpec{
		Binary: binary, NodeID: id, Dir: nodeDir,
		NodeConfig: filepath.Join(nodeDir, "node.yaml"),
		DataDir:    filepath.Join(nodeDir, "data"),
		LogFile:    filepath.Join(nodeDir, "node.log"),
		Host:       l.Host, Seeds: seeds,
	}
}

// CheckSharedSettings checks that a started node's configuration sets what
// every node of a cluster must share. A node without them generates its
// own JWT secret and API key on its first start, so that tokens and keys
// of the other nodes fail on it.
func CheckSharedSettings(cfg *app.Config) error {
	if cfg.Auth.JWT.HS256Secret == "" {
		return errors.New("auth.jwt.hs256_secret: missing; set the secret that every node shares")
	}
	if len(cfg.Auth.Clients) == 0 {
		return errors.New("auth.clients: missing; list the business clients that every node shares")
	}
	return nil
}
