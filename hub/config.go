package hub

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Defaults that New applies to zero Config fields.
const (
	DefaultPath                = "/online-mobile-user"
	DefaultHandshakeTimeout    = 15 * time.Second
	DefaultKeepAliveInterval   = 15 * time.Second
	DefaultClientTimeout       = 30 * time.Second
	DefaultMaxMessageSize      = 32 << 10
	DefaultNegotiateTimeout    = 15 * time.Second
	DefaultLongPollTimeout     = 90 * time.Second
	DefaultSendQueueSize       = 256
	DefaultReconnectBufferSize = 100 << 10
	DefaultReconnectWindow     = 30 * time.Second
	DefaultWriteTimeout        = 10 * time.Second
)

// Transport names, as negotiate lists them and as ConnInfo.Transport reports them.
const (
	TransportWebSockets       = "WebSockets"
	TransportServerSentEvents = "ServerSentEvents"
	TransportLongPolling      = "LongPolling"
)

var (
	// ErrConnNotFound means no open connection has the given ID.
	ErrConnNotFound = errors.New("hub: connection not found")
	// ErrConnClosing means the connection is closing and accepts no more messages.
	ErrConnClosing = errors.New("hub: connection is closing")
	// ErrSlowConsumer means the connection's send queue or replay buffer was full. The
	// hub closed the connection with allowReconnect, and the message was not queued.
	ErrSlowConsumer = errors.New("hub: client too slow: send queue or replay buffer full, " +
		"connection closed")
	// ErrClientVisible marks an Acknowledge error whose text is sent to the client.
	// Wrap it, as in fmt.Errorf("%w: unknown message", hub.ErrClientVisible).
	ErrClientVisible = errors.New("hub: client-visible error")
	// ErrInvalidConfig is wrapped by the errors of New.
	ErrInvalidConfig = errors.New("hub: invalid config")
)

// ClientError is an Acknowledge error whose Message is sent to the client as the
// completion error.
type ClientError struct {
	// Message is the completion error text sent to the client.
	Message string
}

// Error returns Message.
func (e *ClientError) Error() string { return e.Message }

// Authenticator returns the normalised phone number of the mobile user making r,
// or an error, for which the hub responds with 401. AccessToken extracts the token the official
// clients send.
type Authenticator func(r *http.Request) (user string, err error)

// Events receives connection lifecycle events and hub method calls. The router
// implements it. Connected and Disconnected run on connection goroutines and should
// return quickly.
type Events interface {
	// Connected is called once a connection completed its handshake. ctx is cancelled
	// when the connection ends.
	Connected(ctx context.Context, c ConnInfo)
	// Disconnected is called once when the connection is gone for good (not on a
	// stateful-reconnect gap). It is called only for connections that were reported
	// to Connected, and only after Connected returned.
	Disconnected(c ConnInfo)
	// Acknowledge handles AcknowledgeMessage(id). It blocks until the ack is durable.
	// A non-nil error is sent to the client as the invocation's completion error:
	// errors wrapping ErrClientVisible or a *ClientError show their text, and other
	// errors show a generic text and are logged. ctx is cancelled when the connection
	// ends.
	Acknowledge(ctx context.Context, c ConnInfo, messageID string) error
}

// ConnInfo describes one hub connection.
type ConnInfo struct {
	// ID is the public connection ID from negotiate, the key of SendMessage.
	ID string
	// User is the phone number the Authenticator returned at negotiate.
	User string
	// Transport is TransportWebSockets, TransportServerSentEvents or
	// TransportLongPolling.
	Transport string
	// RemoteAddr is the network address of the request that opened the transport.
	RemoteAddr string
}

// Config configures a Hub. New fills zero fields with the defaults given per field.
type Config struct {
	// Path is the hub endpoint. Default: "/online-mobile-user".
	Path string
	// HandshakeTimeout closes a transport whose client sends no handshake within it.
	// Default: 15s.
	HandshakeTimeout time.Duration
	// KeepAliveInterval is the idle time after which the server sends a Ping on
	// WebSockets and Server-Sent Events. Default: 15s.
	KeepAliveInterval time.Duration
	// ClientTimeout closes a connection whose client sent nothing for this long, and a
	// long polling connection that has had no poll for this long. A stateful connection
	// drops its transport instead and waits ReconnectWindow for the client.
	// Default: 30s.
	ClientTimeout time.Duration
	// MaxMessageSize is the maximum size in bytes of one incoming hub message. A larger
	// one closes the connection with an error. Default: 32 KiB.
	MaxMessageSize int
	// NegotiateTimeout drops a negotiated connection that never opened a transport.
	// Default: 15s.
	NegotiateTimeout time.Duration
	// LongPollTimeout is how long a poll waits for messages before it returns 200 with
	// an empty body. Default: 90s.
	LongPollTimeout time.Duration
	// SendQueueSize is the maximum number of frames queued for one connection. A send
	// that finds the queue full closes the connection with allowReconnect.
	// Default: 256 frames.
	SendQueueSize int
	// ReconnectBufferSize is the size in bytes of unacknowledged messages kept for
	// stateful reconnect. A send that finds the buffer at or over the limit closes the
	// connection, so one message larger than the limit still fits. Default: 100 KiB.
	ReconnectBufferSize int
	// ReconnectWindow is how long a stateful connection whose transport dropped waits
	// for its client to reconnect. Default: 30s.
	ReconnectWindow time.Duration
	// MaxConnections caps the live connections of the hub; a new one past
	// it is rejected with 503 and Retry-After, so that clients cannot use up
	// the process's open files. Zero means no cap. Default 0.
	MaxConnections int
	// MaxConnectionsPerUser caps the live connections of one user. Zero
	// means no cap. Default 0.
	MaxConnectionsPerUser int
	// WriteTimeout bounds each write to a client and the flush of a closing
	// connection. Default: 10s.
	WriteTimeout time.Duration
	// AllowedOrigins lists the browser origins, such as "https://app.example.com",
	// that may call the hub. A matching Origin is echoed with
	// Access-Control-Allow-Credentials: true. Default: none.
	AllowedOrigins []string
	// Auth authenticates every request. Required.
	Auth Authenticator
	// Events receives lifecycle events and hub method calls. Required.
	Events Events
	// Logger receives the hub's logs. Default: a no-op logger.
	Logger *zap.Logger
}

func (cfg Config) withDefaults() Config {
	setDuration := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setInt := func(n *int, def int) {
		if *n == 0 {
			*n = def
		}
	}
	if cfg.Path == "" {
		cfg.Path = DefaultPath
	}
	cfg.Path = strings.TrimSuffix(cfg.Path, "/")
	setDuration(&cfg.HandshakeTimeout, DefaultHandshakeTimeout)
	setDuration(&cfg.KeepAliveInterval, DefaultKeepAliveInterval)
	setDuration(&cfg.ClientTimeout, DefaultClientTimeout)
	setDuration(&cfg.NegotiateTimeout, DefaultNegotiateTimeout)
	setDuration(&cfg.LongPollTimeout, DefaultLongPollTimeout)
	setDuration(&cfg.ReconnectWindow, DefaultReconnectWindow)
	setDuration(&cfg.WriteTimeout, DefaultWriteTimeout)
	setInt(&cfg.MaxMessageSize, DefaultMaxMessageSize)
	setInt(&cfg.SendQueueSize, DefaultSendQueueSize)
	setInt(&cfg.ReconnectBufferSize, DefaultReconnectBufferSize)
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return cfg
}

func (cfg Config) validate() error {
	if !strings.HasPrefix(cfg.Path, "/") {
		return fmt.Errorf("%w: Path %q must start with /", ErrInvalidConfig, cfg.Path)
	}
	if cfg.Auth == nil {
		return fmt.Errorf("%w: Auth is required", ErrInvalidConfig)
	}
	if cfg.Events == nil {
		return fmt.Errorf("%w: Events is required", ErrInvalidConfig)
	}
	durations := map[string]time.Duration{
		"HandshakeTimeout": cfg.HandshakeTimeout, "KeepAliveInterval": cfg.KeepAliveInterval,
		"ClientTimeout": cfg.ClientTimeout, "NegotiateTimeout": cfg.NegotiateTimeout,
		"LongPollTimeout": cfg.LongPollTimeout, "ReconnectWindow": cfg.ReconnectWindow,
		"WriteTimeout": cfg.WriteTimeout,
	}
	for name, d := range durations {
		if d < 0 {
			return fmt.Errorf("%w: %s is negative (%s)", ErrInvalidConfig, name, d)
		}
	}
	if cfg.MaxMessageSize < 0 || cfg.SendQueueSize < 0 || cfg.ReconnectBufferSize < 0 {
		return fmt.Errorf("%w: MaxMessageSize, SendQueueSize and ReconnectBufferSize "+
			"must not be negative", ErrInvalidConfig)
	}
	return nil
}
