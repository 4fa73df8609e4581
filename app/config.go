package app

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts the name of every environment variable that overrides a
// configuration key.
const EnvPrefix = "ESH3ARTECH_"

// Config is a node's configuration. The defaults, with a comment on every
// key, are in config.yaml at the root of the repository, which is embedded
// in the binary.
type Config struct {
	Log      LogConfig      `yaml:"log"`
	HTTP     HTTPConfig     `yaml:"http"`
	Storage  StorageConfig  `yaml:"storage"`
	Phone    PhoneConfig    `yaml:"phone"`
	Auth     AuthConfig     `yaml:"auth"`
	Limits   LimitsConfig   `yaml:"limits"`
	Health   HealthConfig   `yaml:"health"`
	Hub      HubConfig      `yaml:"hub"`
	Delivery DeliveryConfig `yaml:"delivery"`
	Cluster  ClusterConfig  `yaml:"cluster"`
}

// ClusterConfig configures membership and the peer link. The node runs
// alone when NodeID is empty.
type ClusterConfig struct {
	NodeID           string        `yaml:"node_id"`
	GossipListen     string        `yaml:"gossip_listen"`
	GossipAdvertise  string        `yaml:"gossip_advertise"`
	PeerListen       string        `yaml:"peer_listen"`
	PeerAdvertise    string        `yaml:"peer_advertise"`
	Seeds            []string      `yaml:"seeds"`
	Secret           string        `yaml:"secret"`
	VirtualNodes     int           `yaml:"virtual_nodes"`
	ProbeInterval    time.Duration `yaml:"probe_interval"`
	ProbeTimeout     time.Duration `yaml:"probe_timeout"`
	SuspicionMult    int           `yaml:"suspicion_mult"`
	GossipInterval   time.Duration `yaml:"gossip_interval"`
	PushPullInterval time.Duration `yaml:"push_pull_interval"`
	JoinTimeout      time.Duration `yaml:"join_timeout"`
	DrainTimeout     time.Duration `yaml:"drain_timeout"`
}

// Enabled reports whether the node is part of a cluster.
func (c ClusterConfig) Enabled() bool { return c.NodeID != "" }

// LogConfig selects the level and encoding of the node's logs.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn or error
	Format string `yaml:"format"` // json or console
}

// HTTPConfig configures the API listener.
type HTTPConfig struct {
	Listen            string        `yaml:"listen"`
	MaxBodyBytes      int64         `yaml:"max_body_bytes"`
	BodyTimeout       time.Duration `yaml:"body_timeout"`
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	ShutdownTimeout   time.Duration `yaml:"shutdown_timeout"`
}

// StorageConfig configures the Pebble store.
type StorageConfig struct {
	Dir            string        `yaml:"dir"`
	MaxOpenFiles   int           `yaml:"max_open_files"`
	MinFreeDisk    uint64        `yaml:"min_free_disk"`
	IdempotencyTTL time.Duration `yaml:"idempotency_ttl"`
}

// PhoneConfig defines which phone numbers are valid recipients.
type PhoneConfig struct {
	CountryCode  string `yaml:"country_code"`
	LocalPattern string `yaml:"local_pattern"`
}

// AuthConfig holds the credentials of business clients and mobile users.
type AuthConfig struct {
	JWT     JWTConfig      `yaml:"jwt"`
	Clients []ClientConfig `yaml:"clients"`
}

// JWTConfig configures HS256 tokens for business clients and mobile users.
type JWTConfig struct {
	HS256Secret string        `yaml:"hs256_secret"`
	Leeway      time.Duration `yaml:"leeway"`
	PhoneClaim  string        `yaml:"phone_claim"`
}

// ClientConfig is one business client.
type ClientConfig struct {
	ID           string  `yaml:"id"`
	APIKeySHA256 string  `yaml:"api_key_sha256"`
	Admin        bool    `yaml:"admin,omitempty"`
	Rate         float64 `yaml:"rate,omitempty"`  // messages per second; 0: limits.rate
	Burst        int     `yaml:"burst,omitempty"` // 0: limits.burst
}

// LimitsConfig bounds the load a node takes. Every field is reloadable.
type LimitsConfig struct {
	Rate           float64 `yaml:"rate"`
	Burst          int     `yaml:"burst"`
	MaxInFlight    int     `yaml:"max_in_flight"`
	QueueHighWater int64   `yaml:"queue_high_water"`
	InboxCap       int     `yaml:"inbox_cap"`
	MaxConnections int     `yaml:"max_connections"`
	// ConnectionCap rejects hub connections past it.
	ConnectionCap int `yaml:"connection_cap"`
	// MaxConnectionsPerUser caps one user's hub connections.
	MaxConnectionsPerUser int `yaml:"max_connections_per_user"`
}

// HealthConfig configures the HAProxy agent-check listener.
type HealthConfig struct {
	AgentListen string `yaml:"agent_listen"`
	PprofListen string `yaml:"pprof_listen"`
}

// HubConfig configures the SignalR hub.
type HubConfig struct {
	Path                 string        `yaml:"path"`
	HandshakeTimeout     time.Duration `yaml:"handshake_timeout"`
	KeepAliveInterval    time.Duration `yaml:"keep_alive_interval"`
	ClientTimeout        time.Duration `yaml:"client_timeout"`
	MaxMessageBytes      int           `yaml:"max_message_bytes"`
	NegotiateTimeout     time.Duration `yaml:"negotiate_timeout"`
	LongPollTimeout      time.Duration `yaml:"long_poll_timeout"`
	SendQueue            int           `yaml:"send_queue"`
	ReconnectBufferBytes int           `yaml:"reconnect_buffer_bytes"`
	ReconnectWindow      time.Duration `yaml:"reconnect_window"`
	AllowedOrigins       []string      `yaml:"allowed_origins"`
}

// DeliveryConfig configures routing, retries and the dead-letter queue.
type DeliveryConfig struct {
	BatchSize   int           `yaml:"batch_size"`
	BatchWait   time.Duration `yaml:"batch_wait"`
	PageSize    int           `yaml:"page_size"`
	MaxAttempts int           `yaml:"max_attempts"`
	RetryBase   time.Duration `yaml:"retry_base"`
	RetryMax    time.Duration `yaml:"retry_max"`
	TTL         time.Duration `yaml:"ttl"`
	AckBatch    int           `yaml:"ack_batch"`
}

// LoadConfig builds a Config from the embedded defaults, the file at path
// (skipped when path is empty) and the environment variables in environ
// (as os.Environ returns them), in that order of precedence, and validates
// it. Errors name the offending key.
func LoadConfig(defaults []byte, path string, environ []string) (*Config, error) {
	merged, err := parseTree(defaults, "embedded defaults")
	if err != nil {
		return nil, err
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: read %s: %w", path, err)
		}
		file, err := parseTree(b, path)
		if err != nil {
			return nil, err
		}
		mergeTree(merged, file)
	}
	if err := applyEnv(merged, environ); err != nil {
		return nil, err
	}
	cfg, err := decodeTree(merged)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func parseTree(b []byte, source string) (map[string]any, error) {
	tree := map[string]any{}
	if err := yaml.Unmarshal(b, &tree); err != nil {
		return nil, fmt.Errorf("config: parse %s: %w", source, err)
	}
	if tree == nil {
		tree = map[string]any{}
	}
	return tree, nil
}

// mergeTree copies src over dst key by key. Maps merge recursively; any
// other value, lists included, replaces the value in dst.
func mergeTree(dst, src map[string]any) {
	for k, v := range src {
		sm, sok := v.(map[string]any)
		dm, dok := dst[k].(map[string]any)
		if sok && dok {
			mergeTree(dm, sm)
			continue
		}
		dst[k] = v
	}
}

// applyEnv sets every key that has an ESH3ARTECH_ variable. A variable that
// matches no key is an error, so that a typo does not go unnoticed. The
// value of a string key is taken verbatim, because parsing it as YAML would
// turn a secret such as "#..." into nothing and "123..." into a number.
// Values of other keys are parsed as YAML.
func applyEnv(tree map[string]any, environ []string) error {
	keys := map[string]envKey{}
	collectKeys(reflect.TypeOf(Config{}), nil, keys)
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		key, known := keys[name]
		if !known {
			return fmt.Errorf("config: environment variable %s matches no configuration key", name)
		}
		if key.kind == reflect.String {
			setPath(tree, key.path, value)
			continue
		}
		var v any
		if err := yaml.Unmarshal([]byte(value), &v); err != nil {
			return fmt.Errorf("config: %s (%s): %w", name, strings.Join(key.path, "."), err)
		}
		setPath(tree, key.path, v)
	}
	return nil
}

// envKey is the configuration key that an environment variable sets.
type envKey struct {
	path []string
	kind reflect.Kind
}

// collectKeys maps the environment variable name of every leaf key of t to
// its key path and kind.
func collectKeys(t reflect.Type, prefix []string, out map[string]envKey) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		path := append(append([]string(nil), prefix...), name)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
			collectKeys(f.Type, path, out)
			continue
		}
		out[EnvPrefix+strings.ToUpper(strings.Join(path, "_"))] = envKey{path: path, kind: f.Type.Kind()}
	}
}

func setPath(tree map[string]any, path []string, v any) {
	for _, k := range path[:len(path)-1] {
		next, ok := tree[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			tree[k] = next
		}
		tree = next
	}
	tree[path[len(path)-1]] = v
}

// decodeTree decodes the merged tree into a Config, naming the key of the
// first unknown key or invalid value.
func decodeTree(tree map[string]any) (*Config, error) {
	cfg := new(Config)
	if err := decodeStruct(reflect.ValueOf(cfg).Elem(), tree, ""); err != nil {
		return nil, err
	}
	return cfg, nil
}

func decodeStruct(v reflect.Value, tree map[string]any, prefix string) error {
	t := v.Type()
	known := map[string]bool{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		known[name] = true
		raw, ok := tree[name]
		if !ok || raw == nil {
			continue
		}
		if err := decodeField(v.Field(i), raw, prefix+name); err != nil {
			return err
		}
	}
	for k := range tree {
		if !known[k] {
			return fmt.Errorf("config: unknown key %s%s", prefix, k)
		}
	}
	return nil
}

func decodeField(f reflect.Value, raw any, key string) error {
	if f.Kind() == reflect.Struct && f.Type() != reflect.TypeOf(time.Duration(0)) {
		sub, ok := raw.(map[string]any)
		if !ok {
			return fmt.Errorf("config: %s: expected a mapping of keys, got %v", key, raw)
		}
		return decodeStruct(f, sub, key+".")
	}
	b, err := yaml.Marshal(raw)
	if err != nil {
		return fmt.Errorf("config: %s: %w", key, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(f.Addr().Interface()); err != nil {
		if hint := typeHint(f.Type()); hint != "" {
			return fmt.Errorf("config: %s: %v is not %s", key, raw, hint)
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return fmt.Errorf("config: %s: %s", key, stripLine(strings.Join(te.Errors, "; ")))
		}
		return fmt.Errorf("config: %s: %w", key, err)
	}
	return nil
}

// stripLine removes the "line N: " prefix of YAML errors, whose line numbers
// refer to a re-encoded value rather than to the user's file.
func stripLine(s string) string {
	if strings.HasPrefix(s, "line ") {
		if _, rest, ok := strings.Cut(s, ": "); ok {
			return rest
		}
	}
	return s
}

// typeHint describes the values a key of type t takes, for errors.
func typeHint(t reflect.Type) string {
	switch {
	case t == reflect.TypeOf(time.Duration(0)):
		return "a duration; use a number with a unit, such as 5s, 100ms or 24h"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "a whole number; sizes are in bytes, without a unit"
	case t.Kind() == reflect.Float64 || t.Kind() == reflect.Float32:
		return "a number"
	case t.Kind() == reflect.Bool:
		return "true or false"
	}
	return ""
}
