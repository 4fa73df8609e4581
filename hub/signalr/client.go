package signalr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Client defaults, applied by Dial to zero Options fields.
const (
	DefaultHandshakeTimeout  = 15 * time.Second
	DefaultKeepAliveInterval = 15 * time.Second
	DefaultServerTimeout     = 30 * time.Second
	DefaultMaxMessageSize    = 8 << 20
)

var (
	// ErrClosed is wrapped by errors of calls made on a closed client and by Err once
	// Close has been called.
	ErrClosed = errors.New("signalr: connection closed")
	// ErrNegotiate is wrapped by every negotiate failure of Dial.
	ErrNegotiate = errors.New("signalr: negotiate failed")
	// ErrHandshake is wrapped by every handshake failure of Dial.
	ErrHandshake = errors.New("signalr: handshake failed")
)

// HTTPError is an unexpected HTTP status from negotiate or the WebSocket upgrade.
type HTTPError struct {
	// StatusCode is the HTTP status code, such as 401.
	StatusCode int
	// URL is the request URL without its query.
	URL string
}

// Error returns a sentence naming the status and URL.
func (e *HTTPError) Error() string {
	return fmt.Sprintf("signalr: %s returned HTTP status %d", e.URL, e.StatusCode)
}

// InvocationError is the error text a hub method returned in its completion.
type InvocationError struct {
	// Method is the invoked hub method.
	Method string
	// Message is the error text from the server.
	Message string
}

// Error returns the method and the server's error text.
func (e *InvocationError) Error() string {
	return "signalr: invocation of " + e.Method + " failed: " + e.Message
}

// CloseError is the content of a Close message from the server.
type CloseError struct {
	// Message is the server's error text, empty for a normal close.
	Message string
	// AllowReconnect is true when the server allows the client to reconnect.
	AllowReconnect bool
}

// Error returns the server's reason for closing.
func (e *CloseError) Error() string {
	if e.Message == "" {
		return "signalr: server closed the connection"
	}
	return "signalr: server closed the connection: " + e.Message
}

// Handler handles one server-to-client invocation. It runs on the connection's reader
// goroutine and must return quickly. The arguments stay valid after it returns.
type Handler func(args []json.RawMessage)

// Options configures Dial. Zero fields take the defaults given for each field.
type Options struct {
	// AccessToken, if set, is sent as "Authorization: Bearer" on negotiate and on the
	// WebSocket request.
	AccessToken string
	// Header holds extra request headers for negotiate and the WebSocket request.
	Header http.Header
	// SkipNegotiation connects the WebSocket directly, without POST /negotiate.
	SkipNegotiation bool
	// HTTPClient sends the negotiate request. Default: http.DefaultClient.
	HTTPClient *http.Client
	// Dialer opens the WebSocket. Default: a dialer with a 1 KiB read buffer and a
	// write buffer pool shared by all clients, so idle connections hold little memory.
	Dialer *websocket.Dialer
	// HandshakeTimeout bounds the wait for the handshake response. Default: 15s.
	HandshakeTimeout time.Duration
	// KeepAliveInterval is the idle time after which the client sends a Ping.
	// Default: 15s.
	KeepAliveInterval time.Duration
	// ServerTimeout closes the connection when the server sends nothing for this long.
	// It also bounds each write. Default: 30s.
	ServerTimeout time.Duration
	// MaxMessageSize is the maximum size in bytes of one incoming record.
	// Default: 8 MiB.
	MaxMessageSize int
	// Handlers maps server-to-client method names, compared case-insensitively, to
	// their handlers. Handlers given here see messages that arrive right after the
	// handshake, which handlers added later with On may miss.
	Handlers map[string]Handler
}

// maxRedirects bounds negotiate redirects, as the official JavaScript client does.
const maxRedirects = 100

// maxNegotiateBody bounds the negotiate response body in bytes.
const maxNegotiateBody = 1 << 20

var defaultDialer = &websocket.Dialer{
	Proxy:            http.ProxyFromEnvironment,
	HandshakeTimeout: 45 * time.Second,
	ReadBufferSize:   1024,
	WriteBufferSize:  4096,
	WriteBufferPool:  &sync.Pool{},
}

func (o Options) withDefaults() Options {
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.Dialer == nil {
		o.Dialer = defaultDialer
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.KeepAliveInterval <= 0 {
		o.KeepAliveInterval = DefaultKeepAliveInterval
	}
	if o.ServerTimeout <= 0 {
		o.ServerTimeout = DefaultServerTimeout
	}
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	return o
}

// Client is a hub connection over WebSockets. Its methods are safe for concurrent use.
type Client struct {
	ws           *websocket.Conn
	opts         Options
	connectionID string

	writeMu   sync.Mutex
	closed    bool // guarded by writeMu: set once no more writes may happen
	keepAlive *time.Timer

	handlersMu sync.RWMutex
	handlers   map[string]Handler

	pendingMu sync.Mutex
	pending   map[string]chan Message
	nextID    atomic.Uint64
	lastWrite atomic.Int64 // unix nanoseconds of the last write

	leftover   [][]byte // records that arrived with the handshake response
	errOnce    sync.Once
	err        error // set once, before done is closed
	done       chan struct{}
	readerDone chan struct{}
}

// Dial connects to the hub at endpoint (an http, https, ws or wss URL), negotiating
// first unless opts.SkipNegotiation is set, and completes the JSON protocol handshake.
// ctx bounds the whole setup but not the life of the returned client.
func Dial(ctx context.Context, endpoint string, opts Options) (*Client, error) {
	opts = opts.withDefaults()
	target, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("signalr: invalid endpoint URL %q: %w", endpoint, err)
	}
	var connectionID string
	if !opts.SkipNegotiation {
		neg, redirected, token, err := negotiate(ctx, target, opts)
		if err != nil {
			return nil, err
		}
		connectionID = neg.ConnectionID
		opts.AccessToken = token
		target = redirected
		query := target.Query()
		query.Set("id", neg.Token())
		target.RawQuery = query.Encode()
	}
	ws, err := dialWebSocket(ctx, target, opts)
	if err != nil {
		return nil, err
	}
	c := newClient(ws, connectionID, opts)
	if err := c.handshake(ctx); err != nil {
		_ = ws.Close()
		return nil, err
	}
	c.start()
	return c, nil
}

func dialWebSocket(ctx context.Context, target *url.URL, opts Options) (*websocket.Conn, error) {
	wsURL := *target
	switch wsURL.Scheme {
	case "http":
		wsURL.Scheme = "ws"
	case "https":
		wsURL.Scheme = "wss"
	}
	ws, resp, err := opts.Dialer.DialContext(ctx, wsURL.String(), requestHeader(opts))
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, &HTTPError{StatusCode: resp.StatusCode, URL: redactQuery(&wsURL)}
		}
		return nil, fmt.Errorf("signalr: WebSocket connection to %s failed: %w",
			redactQuery(&wsURL), err)
	}
	return ws, nil
}

// negotiate runs POST {endpoint}/negotiate and follows redirects. It returns the final
// response, the endpoint to connect to and the access token to use there.
func negotiate(ctx context.Context, endpoint *url.URL, opts Options) (
	*NegotiateResponse, *url.URL, string, error) {
	for range maxRedirects {
		neg, err := negotiateOnce(ctx, endpoint, opts)
		if err != nil {
			return nil, nil, "", err
		}
		if neg.URL == "" {
			if !neg.Offers(TransportWebSockets) {
				return nil, nil, "", fmt.Errorf("%w: the server does not offer WebSockets",
					ErrNegotiate)
			}
			return neg, endpoint, opts.AccessToken, nil
		}
		if endpoint, err = url.Parse(neg.URL); err != nil {
			return nil, nil, "", fmt.Errorf("%w: invalid redirect URL: %w", ErrNegotiate, err)
		}
		if neg.AccessToken != "" {
			opts.AccessToken = neg.AccessToken
		}
	}
	return nil, nil, "", fmt.Errorf("%w: more than %d redirects", ErrNegotiate, maxRedirects)
}

func negotiateOnce(ctx context.Context, endpoint *url.URL, opts Options) (
	*NegotiateResponse, error) {
	negURL := *endpoint
	negURL.Path = strings.TrimSuffix(negURL.Path, "/") + "/negotiate"
	query := negURL.Query()
	if !query.Has("negotiateVersion") {
		query.Set("negotiateVersion", "1")
	}
	negURL.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, negURL.String(), http.NoBody)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNegotiate, err)
	}
	req.Header = requestHeader(opts)
	resp, err := opts.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNegotiate, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %w", ErrNegotiate,
			&HTTPError{StatusCode: resp.StatusCode, URL: redactQuery(&negURL)})
	}
	var neg NegotiateResponse
	dec := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, maxNegotiateBody))
	if err := dec.Decode(&neg); err != nil {
		return nil, fmt.Errorf("%w: invalid response body: %w", ErrNegotiate, err)
	}
	if neg.Error != "" {
		return nil, fmt.Errorf("%w: server returned error: %s", ErrNegotiate, neg.Error)
	}
	return &neg, nil
}

func requestHeader(opts Options) http.Header {
	header := opts.Header.Clone()
	if header == nil {
		header = make(http.Header)
	}
	if opts.AccessToken != "" {
		header.Set("Authorization", "Bearer "+opts.AccessToken)
	}
	return header
}

// redactQuery returns u without its query, which may hold the connection token.
func redactQuery(u *url.URL) string {
	clean := *u
	clean.RawQuery = ""
	return clean.String()
}
