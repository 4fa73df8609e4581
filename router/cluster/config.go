package cluster

import (
	"errors"
	"fmt"
	"log"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
)

// Errors that Start returns for an invalid Config, wrapped with the value at
// fault.
var (
	ErrMissingNodeID    = errors.New("cluster: missing node ID")
	ErrInvalidAddress   = errors.New("cluster: invalid gossip address")
	ErrInvalidSecretKey = errors.New("cluster: invalid secret key")
	ErrInvalidTimers    = errors.New("cluster: invalid gossip timers")
	ErrMetaTooLarge     = errors.New("cluster: node metadata too large")
)

// deadNodeReclaimTime is how long after a node is declared dead another
// address may take over its name. It is short so that a crashed node that
// restarts on a new port is readmitted at once. Only dead or left names can
// be reclaimed, so a live node is never displaced.
const deadNodeReclaimTime = time.Millisecond

// Config configures a Membership. Start fills zero fields with the defaults
// given per field.
type Config struct {
	// Self is the local node. Self.GossipAddr is the IP:port that
	// memberlist binds for UDP and TCP. Port 0 picks a free port, which
	// LocalGossipAddr then returns. Required: Self.ID and Self.GossipAddr.
	Self Member
	// AdvertiseAddr is the IP:port that other nodes use to reach this
	// node's gossip listener, when that differs from Self.GossipAddr (NAT,
	// or a bind to 0.0.0.0). Default: Self.GossipAddr, with memberlist
	// choosing a private interface address for an unspecified IP.
	AdvertiseAddr string
	// Seeds are the gossip addresses (host:port) of other nodes to join.
	// Empty starts a new cluster.
	Seeds []string
	// SecretKey is the AES key (16, 24 or 32 bytes) that encrypts gossip.
	// Every node of a cluster needs the same key. Empty sends gossip in
	// clear text, which Start logs as a warning.
	SecretKey []byte
	// VirtualNodes is the number of ring points per member. Every node of a
	// cluster needs the same value. Default DefaultVirtualNodes.
	VirtualNodes int
	// ProbeInterval is the time between failure-detection probes of a
	// random node. Default 1s.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe waits for a direct ack before it
	// falls back to indirect probes through other nodes. It must be less than ProbeInterval.
	// Default: 500ms or half of ProbeInterval, whichever is less.
	ProbeTimeout time.Duration
	// SuspicionMult scales how long a suspected node has to refute before
	// it is declared dead. In memberlist v0.7.0 that time starts at 6 *
	// SuspicionMult * max(1, log10(nodes)) * ProbeInterval and shrinks to a
	// sixth of it as other nodes confirm the suspicion. Default 4.
	SuspicionMult int
	// GossipInterval is the time between gossip rounds. Default 200ms.
	GossipInterval time.Duration
	// PushPullInterval is the time between full state exchanges with a
	// random node. Default 15s.
	PushPullInterval time.Duration
	// RetransmitMult scales how many times a message is gossiped:
	// RetransmitMult * ceil(log10(nodes+1)). Default 4.
	RetransmitMult int
	// JoinRetry is the wait between join attempts while no join has
	// reached another node. Default 1s.
	JoinRetry time.Duration
	// Logger receives the membership's logs and memberlist's, the latter
	// at debug level or, for its warnings and errors, warn level.
	// Default: none.
	Logger *zap.Logger
	// OnChange, if set, receives the ring once after Start and again after
	// every membership change. Calls come from one goroutine, in order.
	// Changes that arrive during a call are merged, so the next call gets
	// only the latest ring. OnChange must not call Shutdown, which waits
	// for it.
	OnChange func(*Ring)
}

func (c Config) withDefaults() Config {
	setInt(&c.VirtualNodes, DefaultVirtualNodes)
	setInt(&c.SuspicionMult, 4)
	setInt(&c.RetransmitMult, 4)
	setDuration(&c.ProbeInterval, time.Second)
	setDuration(&c.ProbeTimeout, min(500*time.Millisecond, c.ProbeInterval/2))
	setDuration(&c.GossipInterval, 200*time.Millisecond)
	setDuration(&c.PushPullInterval, 15*time.Second)
	setDuration(&c.JoinRetry, time.Second)
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

func setInt(v *int, def int) {
	if *v <= 0 {
		*v = def
	}
}

func setDuration(v *time.Duration, def time.Duration) {
	if *v <= 0 {
		*v = def
	}
}

func (c Config) validate() error {
	if c.Self.ID == "" {
		return fmt.Errorf("%w: set Self.ID to the node's cluster.node_id", ErrMissingNodeID)
	}
	switch len(c.SecretKey) {
	case 0, 16, 24, 32:
	default:
		return fmt.Errorf("%w: %d bytes, expected 16, 24 or 32", ErrInvalidSecretKey, len(c.SecretKey))
	}
	if c.ProbeTimeout >= c.ProbeInterval {
		return fmt.Errorf("%w: ProbeTimeout %s must be less than ProbeInterval %s",
			ErrInvalidTimers, c.ProbeTimeout, c.ProbeInterval)
	}
	return nil
}

// memberlistConfig returns the memberlist configuration for c, with
// delegates d and memberlist's logs sent to logger.
func (c Config) memberlistConfig(d *delegate, logger *log.Logger) (*memberlist.Config, error) {
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.Self.ID
	var err error
	mc.BindAddr, mc.BindPort, err = splitIPPort(c.Self.GossipAddr)
	if err != nil {
		return nil, err
	}
	if c.AdvertiseAddr != "" {
		mc.AdvertiseAddr, mc.AdvertisePort, err = splitIPPort(c.AdvertiseAddr)
		if err != nil {
			return nil, err
		}
	} else {
		mc.AdvertisePort = mc.BindPort
	}
	if len(c.SecretKey) > 0 {
		mc.SecretKey = append([]byte(nil), c.SecretKey...)
	}
	mc.ProbeInterval = c.ProbeInterval
	mc.ProbeTimeout = c.ProbeTimeout
	mc.SuspicionMult = c.SuspicionMult
	mc.GossipInterval = c.GossipInterval
	mc.PushPullInterval = c.PushPullInterval
	mc.RetransmitMult = c.RetransmitMult
	mc.DeadNodeReclaimTime = deadNodeReclaimTime
	mc.Delegate = d
	mc.Events = d
	mc.Logger = logger
	return mc, nil
}

// splitIPPort splits an IP:port address. memberlist binds and advertises IP
// addresses only, so a host name is rejected here instead of failing later.
func splitIPPort(addr string) (string, int, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%w %q: %w", ErrInvalidAddress, addr, err)
	}
	if net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("%w %q: expected an IP address, not a host name", ErrInvalidAddress, addr)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("%w %q: port: %w", ErrInvalidAddress, addr, err)
	}
	return host, int(port), nil
}
