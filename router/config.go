package router

import (
	"time"

	"go.uber.org/zap"
)

// Config configures a Router. New fills zero fields with the defaults given
// per field.
type Config struct {
	// BatchSize is the most queue entries the processor routes in one
	// batch. Default 256.
	BatchSize int
	// BatchWait is how long the processor waits after waking for more
	// messages to join a batch. Zero routes at once. Default 0.
	BatchWait time.Duration
	// PageSize is the most messages in one ReceivePendingMessages call.
	// Default 50.
	PageSize int
	// MaxAttempts is how many sends a message gets before it is
	// dead-lettered. Default 5.
	MaxAttempts int
	// RetryBase is the wait for an acknowledgement after the first send;
	// each later send doubles it. Default 5s.
	RetryBase time.Duration
	// RetryMax caps the wait between sends. Default 300s.
	RetryMax time.Duration
	// TTL is how long a message may wait for its acknowledgement after it
	// was accepted before it is dead-lettered. Default 168h (7 days).
	TTL time.Duration
	// AckBatch is the most acknowledgements written in one batch.
	// Default 256.
	AckBatch int
	// Metrics receives the router's figures. Default: collectors that no
	// registry reads.
	Metrics *Metrics
	// Placement maps recipients to nodes. Default: this node owns every
	// recipient.
	Placement Placement
	// PeerSecret authenticates the peer link between nodes. Required with
	// a Placement other than the default.
	PeerSecret []byte
	// PeerTimeout bounds one request to a peer. Default 10s.
	PeerTimeout time.Duration
	// AttachRefresh is how often a node re-sends the connections it keeps
	// attached to other nodes, which restores them on an owner that lost
	// them by restarting. Default 5s.
	AttachRefresh time.Duration
	// Logger receives the router's logs. Default: none.
	Logger *zap.Logger
	// Now returns the current time; tests replace it. Default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	setInt(&c.BatchSize, 256)
	setInt(&c.PageSize, 50)
	setInt(&c.MaxAttempts, 5)
	setInt(&c.AckBatch, 256)
	setDuration(&c.RetryBase, 5*time.Second)
	setDuration(&c.RetryMax, 300*time.Second)
	setDuration(&c.TTL, 7*24*time.Hour)
	setDuration(&c.PeerTimeout, 10*time.Second)
	setDuration(&c.AttachRefresh, 5*time.Second)
	if c.Placement == nil {
		c.Placement = standalone{}
	}
	if c.Metrics == nil {
		c.Metrics = newDiscardMetrics()
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
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

// backoff returns how long to wait for an acknowledgement after the given
// attempt (1 for the first send): RetryBase doubled per earlier attempt,
// capped at RetryMax.
func (c Config) backoff(attempt int) time.Duration {
	d := c.RetryBase
	for i := 1; i < attempt && d < c.RetryMax; i++ {
		d *= 2
	}
	return min(d, c.RetryMax)
}
