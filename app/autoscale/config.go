// Package autoscale adds and removes relay nodes by their load. A
// supervisor reads esh3artech_load_ratio from every node's /metrics, decides
// by thresholds held for a window, starts or stops nodes it launched itself,
// and adds them to or removes them from HAProxy through its runtime API.
package autoscale

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the supervisor's configuration, read from its own YAML file.
// LoadConfig fills every key the file leaves out with the default given on
// its field.
type Config struct {
	Log LogConfig `yaml:"log"`
	// Interval is how often every node's load is read. Default 5s.
	Interval time.Duration `yaml:"interval"`
	// ScrapeTimeout bounds one GET /metrics. Default 2s.
	ScrapeTimeout time.Duration `yaml:"scrape_timeout"`
	// MinNodes is the node count never scaled in below, counting the static
	// nodes. Default 1.
	MinNodes int `yaml:"min_nodes"`
	// MaxNodes is the node count never scaled out above. Default 4.
	MaxNodes int `yaml:"max_nodes"`
	// Cooldown is the time after an action ends before the next may start.
	// Default 60s.
	Cooldown time.Duration `yaml:"cooldown"`
	// ScaleOut adds a node when the average load stays above Threshold for
	// Window. Defaults 0.8 and 30s.
	ScaleOut Trigger `yaml:"scale_out"`
	// ScaleIn removes a node when the average load stays below Threshold
	// for Window. Defaults 0.3 and 2m.
	ScaleIn Trigger `yaml:"scale_in"`
	// Nodes are the HTTP addresses (host:port) of the nodes that run
	// without the supervisor. They count towards the node count and the
	// average, and are never stopped.
	Nodes   []string      `yaml:"nodes"`
	Launch  LaunchConfig  `yaml:"launch"`
	HAProxy HAProxyConfig `yaml:"haproxy"`
}

// LogConfig selects the level and encoding of the supervisor's logs.
type LogConfig struct {
	// Level is debug, info, warn or error. Default info; debug logs every
	// decision, info only the actions.
	Level string `yaml:"level"`
	// Format is json or console. Default json.
	Format string `yaml:"format"`
}

// Trigger is a load threshold that must hold for a window.
type Trigger struct {
	// Threshold is an average load ratio, 1 meaning full capacity.
	Threshold float64 `yaml:"threshold"`
	// Window is how long the average must stay past Threshold.
	Window time.Duration `yaml:"window"`
}

// LaunchConfig describes how a node is started and stopped.
type LaunchConfig struct {
	// Command is the argument list that starts a node, each element a Go
	// text/template over NodeSpec. Default
	// ["{{.Binary}}", "serve", "--config", "{{.NodeConfig}}"]. The process
	// must be the node itself, or forward SIGTERM to it, because scale-in
	// drains a node with SIGTERM.
	Command []string `yaml:"command"`
	// Binary is the relay executable that {{.Binary}} names. Default: the
	// supervisor's own executable.
	Binary string `yaml:"binary"`
	// BaseConfig is the node configuration file that every started node's
	// configuration is merged over. It must set cluster.secret,
	// auth.jwt.hs256_secret and auth.clients, which every node of a cluster
	// shares. Required.
	BaseConfig string `yaml:"base_config"`
	// Dir holds one folder per started node, named by its id, with its
	// configuration, data and log. Default ./autoscale.
	Dir string `yaml:"dir"`
	// NamePrefix starts the id of every started node, followed by a number:
	// auto-1, auto-2, and so on. Default auto.
	NamePrefix string `yaml:"name_prefix"`
	// Host is the IP address that started nodes listen on and that HAProxy
	// and the supervisor reach them at. Free ports are picked on this
	// machine. Default 127.0.0.1.
	Host string `yaml:"host"`
	// Seeds are gossip addresses (host:port) that a started node joins,
	// besides the nodes started before it. Default: cluster.seeds of
	// BaseConfig. One of the two is required when Nodes is not empty.
	Seeds []string `yaml:"seeds"`
	// ReadyTimeout bounds the wait for a started node to return 200 on
	// /health/ready and to report a ring of every node. Default 60s.
	ReadyTimeout time.Duration `yaml:"ready_timeout"`
	// Settle is an extra wait after the node is ready and in the ring,
	// before it is added to HAProxy. Default 0s.
	Settle time.Duration `yaml:"settle"`
	// StopTimeout bounds the wait for a node to exit after SIGTERM, after
	// which it is killed. It should exceed the node's http.shutdown_timeout
	// plus cluster.drain_timeout. Default 60s.
	StopTimeout time.Duration `yaml:"stop_timeout"`
}

// HAProxyConfig locates HAProxy's runtime API and the backends that every
// node serves in.
type HAProxyConfig struct {
	// Socket is the stats socket with level admin: a unix socket path, or
	// host:port for a TCP socket. Required.
	Socket string `yaml:"socket"`
	// Timeout bounds one runtime API command. Default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// Backends are the backends that every started node is added to. Each
	// must use a dynamic balance algorithm or hash-type consistent, as
	// HAProxy 2.6 requires for add server. Required.
	Backends []BackendConfig `yaml:"backends"`
}

// BackendConfig is one HAProxy backend and the options of the servers the
// supervisor adds to it.
type BackendConfig struct {
	// Name is the backend's name in haproxy.cfg.
	Name string `yaml:"name"`
	// Options are the server keywords after the address, a Go
	// text/template over NodeSpec, for example
	// "check inter 2s agent-check agent-port {{.AgentPort}} agent-inter 2s".
	// They should match the static servers' options. Default "check".
	Options string `yaml:"options"`
}

// defaultConfig returns a Config holding every default.
func defaultConfig() Config {
	return Config{
		Log:           LogConfig{Level: "info", Format: "json"},
		Interval:      5 * time.Second,
		ScrapeTimeout: 2 * time.Second,
		MinNodes:      1,
		MaxNodes:      4,
		Cooldown:      60 * time.Second,
		ScaleOut:      Trigger{Threshold: 0.8, Window: 30 * time.Second},
		ScaleIn:       Trigger{Threshold: 0.3, Window: 2 * time.Minute},
		Launch: LaunchConfig{
			Command:      []string{"{{.Binary}}", "serve", "--config", "{{.NodeConfig}}"},
			Dir:          "./autoscale",
			NamePrefix:   "auto",
			Host:         "127.0.0.1",
			ReadyTimeout: 60 * time.Second,
			StopTimeout:  60 * time.Second,
		},
		HAProxy: HAProxyConfig{Timeout: 5 * time.Second},
	}
}

// LoadConfig reads the YAML file at path over the defaults and validates
// the result. An unknown key is an error.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("autoscale config: %w", err)
	}
	cfg := defaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("autoscale config: parse %s: %w", path, err)
	}
	for i := range cfg.HAProxy.Backends {
		if cfg.HAProxy.Backends[i].Options == "" {
			cfg.HAProxy.Backends[i].Options = "check"
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("autoscale config: %s: %w", path, err)
	}
	return &cfg, nil
}

// Validate checks every key and returns an error naming the first invalid
// one.
func (c *Config) Validate() error {
	checks := []func() error{c.validateLog, c.validatePolicy, c.validateNodes, c.validateLaunch, c.validateHAProxy}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validateLog() error {
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: %q is not one of debug, info, warn, error", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "console" {
		return fmt.Errorf("log.format: %q is not json or console", c.Log.Format)
	}
	return nil
}

func (c *Config) validatePolicy() error {
	durations := []struct {
		key string
		d   time.Duration
	}{
		{"interval", c.Interval}, {"scrape_timeout", c.ScrapeTimeout},
		{"scale_out.window", c.ScaleOut.Window}, {"scale_in.window", c.ScaleIn.Window},
		{"launch.ready_timeout", c.Launch.ReadyTimeout}, {"launch.stop_timeout", c.Launch.StopTimeout},
		{"haproxy.timeout", c.HAProxy.Timeout},
	}
	for _, d := range durations {
		if d.d <= 0 {
			return fmt.Errorf("%s: %s must be above zero", d.key, d.d)
		}
	}
	if c.Cooldown < 0 || c.Launch.Settle < 0 {
		return fmt.Errorf("cooldown and launch.settle must not be negative")
	}
	if c.MinNodes < 1 || c.MaxNodes < c.MinNodes {
		return fmt.Errorf("min_nodes %d and max_nodes %d: need 1 <= min_nodes <= max_nodes",
			c.MinNodes, c.MaxNodes)
	}
	if c.ScaleIn.Threshold < 0 || c.ScaleIn.Threshold >= c.ScaleOut.Threshold {
		return fmt.Errorf("scale_in.threshold %g must be at least 0 and below scale_out.threshold %g",
			c.ScaleIn.Threshold, c.ScaleOut.Threshold)
	}
	return nil
}

func (c *Config) validateNodes() error {
	for i, addr := range c.Nodes {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("nodes[%d]: %q is not host:port: %w", i, addr, err)
		}
	}
	if len(c.Nodes) > c.MaxNodes {
		return fmt.Errorf("nodes: %d static nodes are more than max_nodes %d", len(c.Nodes), c.MaxNodes)
	}
	return nil
}

func (c *Config) validateLaunch() error {
	l := c.Launch
	if len(l.Command) == 0 {
		return errors.New("launch.command: missing")
	}
	for i, arg := range l.Command {
		if err := checkTemplate(arg); err != nil {
			return fmt.Errorf("launch.command[%d]: %w", i, err)
		}
	}
	if l.BaseConfig == "" {
		return errors.New("launch.base_config: missing; give the node configuration that every started node extends")
	}
	if l.Dir == "" {
		return errors.New("launch.dir: missing")
	}
	if !nodeIDPattern.MatchString(l.NamePrefix + "-1") {
		return fmt.Errorf("launch.name_prefix: %q makes invalid node ids; use letters, digits, '.', '_' or '-'",
			l.NamePrefix)
	}
	if net.ParseIP(l.Host) == nil {
		return fmt.Errorf("launch.host: %q is not an IP address", l.Host)
	}
	for i, s := range l.Seeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return fmt.Errorf("launch.seeds[%d]: %q is not host:port: %w", i, s, err)
		}
	}
	return nil
}

func (c *Config) validateHAProxy() error {
	h := c.HAProxy
	if h.Socket == "" {
		return errors.New("haproxy.socket: missing; give the path of the stats socket with level admin")
	}
	if len(h.Backends) == 0 {
		return errors.New("haproxy.backends: missing; list every backend that nodes serve in")
	}
	for i, b := range h.Backends {
		if b.Name == "" || strings.ContainsAny(b.Name, unsafeCommandChars) {
			return fmt.Errorf("haproxy.backends[%d].name: %q is empty or contains a space, ';' or a line break",
				i, b.Name)
		}
		if err := checkTemplate(b.Options); err != nil {
			return fmt.Errorf("haproxy.backends[%d].options: %w", i, err)
		}
	}
	return nil
}
