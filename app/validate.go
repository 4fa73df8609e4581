package app

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"regexp"
	"time"
)

// Validate checks every key of c and returns an error naming the first
// invalid one and the reason.
func (c *Config) Validate() error {
	checks := []func() error{
		c.validateLog, c.validateHTTP, c.validateStorage, c.validatePhone,
		c.validateAuth, c.validateLimits, c.validateHub, c.validateDelivery, c.validateCluster,
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func invalid(key string, format string, args ...any) error {
	return fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...))
}

func (c *Config) validateLog() error {
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return invalid("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "console" {
		return invalid("log.format", "%q is not json or console", c.Log.Format)
	}
	return nil
}

func (c *Config) validateHTTP() error {
	if err := validateListen("http.listen", c.HTTP.Listen, false); err != nil {
		return err
	}
	if c.HTTP.MaxBodyBytes < 1024 {
		return invalid("http.max_body_bytes", "%d is below the minimum of 1024", c.HTTP.MaxBodyBytes)
	}
	return positive(map[string]time.Duration{
		"http.read_header_timeout": c.HTTP.ReadHeaderTimeout,
		"http.body_timeout":        c.HTTP.BodyTimeout,
		"http.idle_timeout":        c.HTTP.IdleTimeout,
		"http.shutdown_timeout":    c.HTTP.ShutdownTimeout,
	})
}

// validateListen checks a host:port address; an empty one is allowed only
// where the listener is optional.
func validateListen(key, addr string, optional bool) error {
	if addr == "" {
		if optional {
			return nil
		}
		return invalid(key, "missing; set a host:port such as 127.0.0.1:8080")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return invalid(key, "%q is not host:port: %v", addr, err)
	}
	return nil
}

func (c *Config) validateStorage() error {
	if c.Storage.Dir == "" {
		return invalid("storage.dir", "missing; set the folder for the node's data")
	}
	if c.Storage.MaxOpenFiles < 16 {
		return invalid("storage.max_open_files", "%d is below the minimum of 16", c.Storage.MaxOpenFiles)
	}
	return positive(map[string]time.Duration{"storage.idempotency_ttl": c.Storage.IdempotencyTTL})
}

var digits = regexp.MustCompile(`^[0-9]{1,4}$`)

func (c *Config) validatePhone() error {
	if !digits.MatchString(c.Phone.CountryCode) {
		return invalid("phone.country_code", "%q is not 1 to 4 digits", c.Phone.CountryCode)
	}
	if _, err := regexp.Compile(c.Phone.LocalPattern); err != nil {
		return invalid("phone.local_pattern", "invalid regular expression: %v", err)
	}
	return nil
}

func (c *Config) validateAuth() error {
	if s := c.Auth.JWT.HS256Secret; s != "" && len(s) < 32 {
		return invalid("auth.jwt.hs256_secret", "%d bytes is shorter than the minimum of 32;"+
			" leave it empty to have one generated", len(s))
	}
	if c.Auth.JWT.Leeway < 0 {
		return invalid("auth.jwt.leeway", "must not be negative")
	}
	if c.Auth.JWT.PhoneClaim == "" {
		return invalid("auth.jwt.phone_claim", "missing; the default is phone_number")
	}
	return validateClients(c.Auth.Clients)
}

var clientIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func validateClients(clients []ClientConfig) error {
	seen := map[string]bool{}
	for i, cl := range clients {
		key := fmt.Sprintf("auth.clients[%d]", i)
		if !clientIDPattern.MatchString(cl.ID) {
			return invalid(key+".id", "%q is not 1 to 64 letters, digits, '.', '_' or '-'", cl.ID)
		}
		if seen[cl.ID] {
			return invalid(key+".id", "%q is used by another client", cl.ID)
		}
		seen[cl.ID] = true
		if cl.Rate < 0 {
			return invalid(key+".rate", "%g must not be negative", cl.Rate)
		}
		if cl.Burst < 0 {
			return invalid(key+".burst", "%d must not be negative", cl.Burst)
		}
		if b, err := hex.DecodeString(cl.APIKeySHA256); err != nil || len(b) != 32 {
			return invalid(key+".api_key_sha256", "not 64 hex digits; "+
				"set it to the output of: printf %%s KEY | sha256sum")
		}
	}
	return nil
}

func (c *Config) validateHub() error {
	h := c.Hub
	if len(h.Path) < 2 || h.Path[0] != '/' {
		return invalid("hub.path", "%q must start with / and name the hub", h.Path)
	}
	if h.MaxMessageBytes < 1024 {
		return invalid("hub.max_message_bytes", "%d is below the minimum of 1024", h.MaxMessageBytes)
	}
	if h.SendQueue < 1 {
		return invalid("hub.send_queue", "%d must be at least 1", h.SendQueue)
	}
	if h.ReconnectBufferBytes < 0 {
		return invalid("hub.reconnect_buffer_bytes", "must not be negative")
	}
	if h.ClientTimeout <= h.KeepAliveInterval {
		return invalid("hub.client_timeout", "%s must be longer than hub.keep_alive_interval (%s)",
			h.ClientTimeout, h.KeepAliveInterval)
	}
	return positive(map[string]time.Duration{
		"hub.handshake_timeout":   h.HandshakeTimeout,
		"hub.keep_alive_interval": h.KeepAliveInterval,
		"hub.negotiate_timeout":   h.NegotiateTimeout,
		"hub.long_poll_timeout":   h.LongPollTimeout,
		"hub.reconnect_window":    h.ReconnectWindow,
	})
}

// positive checks that every duration is above zero.
func positive(durations map[string]time.Duration) error {
	var errs []error
	for key, d := range durations {
		if d <= 0 {
			errs = append(errs, invalid(key, "%s must be above zero", d))
		}
	}
	return errors.Join(errs...)
}

func (c *Config) validateDelivery() error {
	d := c.Delivery
	ints := []struct {
		key string
		v   int
		max int
	}{
		{"delivery.batch_size", d.BatchSize, 10000},
		{"delivery.page_size", d.PageSize, 1000},
		{"delivery.max_attempts", d.MaxAttempts, 100},
		{"delivery.ack_batch", d.AckBatch, 10000},
	}
	for _, n := range ints {
		if n.v < 1 || n.v > n.max {
			return invalid(n.key, "%d is not between 1 and %d", n.v, n.max)
		}
	}
	if d.BatchWait < 0 || d.BatchWait > time.Second {
		return invalid("delivery.batch_wait", "%s is not between 0s and 1s", d.BatchWait)
	}
	if d.RetryMax < d.RetryBase {
		return invalid("delivery.retry_max", "%s is shorter than delivery.retry_base (%s)",
			d.RetryMax, d.RetryBase)
	}
	return positive(map[string]time.Duration{
		"delivery.retry_base": d.RetryBase,
		"delivery.retry_max":  d.RetryMax,
		"delivery.ttl":        d.TTL,
	})
}

func (c *Config) validateLimits() error {
	l := c.Limits
	if l.Rate <= 0 {
		return invalid("limits.rate", "%g must be above zero", l.Rate)
	}
	checks := []struct {
		key string
		v   int64
	}{
		{"limits.burst", int64(l.Burst)},
		{"limits.max_in_flight", int64(l.MaxInFlight)},
		{"limits.queue_high_water", l.QueueHighWater},
		{"limits.inbox_cap", int64(l.InboxCap)},
		{"limits.max_connections", int64(l.MaxConnections)},
		{"limits.max_connections_per_user", int64(l.MaxConnectionsPerUser)},
		{"limits.connection_cap", int64(l.ConnectionCap)},
	}
	for _, ch := range checks {
		if ch.v < 1 {
			return invalid(ch.key, "%d must be at least 1", ch.v)
		}
	}
	if err := validateListen("health.agent_listen", c.Health.AgentListen, true); err != nil {
		return err
	}
	return validateListen("health.pprof_listen", c.Health.PprofListen, true)
}

func (c *Config) validateCluster() error {
	cl := c.Cluster
	if !cl.Enabled() {
		return nil
	}
	if !clientIDPattern.MatchString(cl.NodeID) {
		return invalid("cluster.node_id", "%q is not 1 to 64 letters, digits, '.', '_' or '-'", cl.NodeID)
	}
	for _, l := range []struct{ key, addr string }{
		{"cluster.gossip_listen", cl.GossipListen}, {"cluster.peer_listen", cl.PeerListen},
	} {
		if err := validateListen(l.key, l.addr, false); err != nil {
			return err
		}
	}
	for _, l := range []struct{ key, addr string }{
		{"cluster.gossip_advertise", cl.GossipAdvertise}, {"cluster.peer_advertise", cl.PeerAdvertise},
	} {
		if err := validateListen(l.key, l.addr, true); err != nil {
			return err
		}
	}
	for i, s := range cl.Seeds {
		if err := validateListen(fmt.Sprintf("cluster.seeds[%d]", i), s, false); err != nil {
			return err
		}
	}
	if len(cl.Secret) < 32 {
		return invalid("cluster.secret", "%d bytes is shorter than the minimum of 32; "+
			"give every node the same random secret", len(cl.Secret))
	}
	if cl.VirtualNodes < 0 || cl.SuspicionMult < 1 {
		return invalid("cluster", "virtual_nodes must not be negative and suspicion_mult must be at least 1")
	}
	return positive(map[string]time.Duration{
		"cluster.probe_interval": cl.ProbeInterval, "cluster.probe_timeout": cl.ProbeTimeout,
		"cluster.gossip_interval": cl.GossipInterval, "cluster.push_pull_interval": cl.PushPullInterval,
		"cluster.join_timeout": cl.JoinTimeout, "cluster.drain_timeout": cl.DrainTimeout,
	})
}
