package hub

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"
	"go.uber.org/zap"
)

// maxTickInterval bounds the period of the timer that enforces every timeout and sends
// keep-alive pings, so default timeouts are enforced to within a second.
const maxTickInterval = time.Second

// Hub serves the SignalR endpoint and tracks its connections. Create it with New and
// release it with Shutdown.
type Hub struct {
	cfg          Config
	log          *zap.Logger
	reg          *registry
	upgrader     websocket.Upgrader
	tickInterval time.Duration

	mu           sync.Mutex // guards closed and orders active.Add before active.Wait
	closed       bool
	active       sync.WaitGroup // request handlers, WebSocket readers and the heartbeat
	stop         chan struct{}  // closed when Shutdown starts
	shutdownOnce sync.Once
	drained      chan struct{} // closed when every goroutine has exited after Shutdown
}

// New returns a hub for cfg after filling zero fields with their defaults. It starts
// the heartbeat goroutine that enforces timeouts, which Shutdown stops.
func New(cfg Config) (*Hub, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	h := &Hub{
		cfg:          cfg,
		log:          cfg.Logger,
		reg:          newRegistry(),
		tickInterval: tickInterval(cfg),
		stop:         make(chan struct{}),
		drained:      make(chan struct{}),
	}
	h.upgrader = websocket.Upgrader{
		// A zero ReadBufferSize makes gorilla/websocket read through the small buffer
		// that upgradeWriter hands over, and pooled write buffers are held only while
		// writing, which keeps idle connections small.
		ReadBufferSize:  0,
		WriteBufferSize: 4096,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     h.checkWebSocketOrigin,
	}
	h.active.Add(1)
	go h.heartbeat()
	return h, nil
}

// tickInterval returns a quarter of the shortest timeout, between 1ms and
// maxTickInterval. A timeout therefore fires late by at most that interval.
func tickInterval(cfg Config) time.Duration {
	shortest := min(cfg.HandshakeTimeout, cfg.KeepAliveInterval, cfg.ClientTimeout,
		cfg.NegotiateTimeout, cfg.ReconnectWindow, cfg.WriteTimeout)
	return max(min(shortest/4, maxTickInterval), time.Millisecond)
}

// Register mounts negotiate and the transports on e, at Path and Path/negotiate. Keep
// request-timeout and body-limit middleware off these routes: polls wait up to
// LongPollTimeout, event streams and WebSockets stay open, and the hub limits message
// sizes itself.
func (h *Hub) Register(e *echo.Echo) {
	handler := echo.WrapHandler(h)
	e.Any(h.cfg.Path, handler)
	e.Any(h.cfg.Path+"/negotiate", handler)
}

// Connections returns the open connections of user: those that completed the handshake
// and were not yet reported to Events.Disconnected.
func (h *Hub) Connections(user string) []ConnInfo {
	return h.reg.user(user)
}

// ConnCount returns the number of open connections, counted as in Connections.
func (h *Hub) ConnCount() int {
	return int(h.reg.live.Load())
}

// CloseConn closes the connection with a Close message that carries reason and
// allowReconnect: true, so clients with automatic reconnect connect again.
func (h *Hub) CloseConn(connID, reason string) error {
	c := h.reg.byID(connID)
	if c == nil {
		return fmt.Errorf("hub: closing connection %s: %w", connID, ErrConnNotFound)
	}
	c.close(reason, true)
	return nil
}

// Shutdown closes every connection with a Close message that allows reconnect, wakes
// pending long polls, and waits until every hub goroutine has exited and every
// connection was reported to Events.Disconnected. When ctx ends first, it aborts the
// remaining transports and returns ctx's error. It is safe to call more than once.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.shutdownOnce.Do(h.beginShutdown)
	select {
	case <-h.drained:
		return nil
	case <-ctx.Done():
		h.finishAll()
		return fmt.Errorf("hub: shutdown: %w", ctx.Err())
	}
}

func (h *Hub) beginShutdown() {
	h.log.Info("hub shutting down", zap.Int("connections", h.ConnCount()))
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	close(h.stop)
	for _, c := range h.reg.all(nil) {
		c.close("Server is shutting down.", true)
	}
	go func() {
		h.active.Wait()
		// Connections without a running transport goroutine, such as long polling
		// between polls, end here.
		h.finishAll()
		close(h.drained)
		h.log.Info("hub shut down")
	}()
}

func (h *Hub) finishAll() {
	for _, c := range h.reg.all(nil) {
		c.finish()
	}
}

// enter registers a goroutine that Shutdown waits for. It returns false once Shutdown
// has started.
func (h *Hub) enter() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.active.Add(1)
	return true
}

func (h *Hub) leave() { h.active.Done() }

func (h *Hub) reportDisconnected(c *conn) {
	h.log.Info("connection closed", zap.String("conn_id", c.info.ID),
		zap.String("phone", c.info.User), zap.String("transport", c.info.Transport))
	h.cfg.Events.Disconnected(c.info)
}

// heartbeat enforces the timeouts of every connection and sends keep-alive pings.
func (h *Hub) heartbeat() {
	defer h.active.Done()
	ticker := time.NewTicker(h.tickInterval)
	defer ticker.Stop()
	var conns []*conn
	for {
		select {
		case <-h.stop:
			return
		case now := <-ticker.C:
			conns = h.reg.all(conns[:0])
			for _, c := range conns {
				c.tick(now)
			}
			clear(conns)
		}
	}
}

// checkWebSocketOrigin accepts requests without an Origin header, as native apps send
// them, requests from an allowed origin, and same-host requests.
func (h *Hub) checkWebSocketOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || h.originAllowed(origin) {
		return true
	}
	return originMatchesHost(origin, r.Host)
}
