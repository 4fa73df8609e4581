package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"go.uber.org/zap"

	"github.com/esh3artech/esh3artech/hub"
	"github.com/esh3artech/esh3artech/router"
	"github.com/esh3artech/esh3artech/storage"
)

// Node is one relay process: its store, its HTTP listener and the
// components served on it.
type Node struct {
	cfg    *Config
	log    *zap.Logger
	store  *storage.Store
	auth   *Authenticator
	router *router.Router
	hub    *hub.Hub
	echo   *echo.Echo
	server *http.Server
	ln     net.Listener

	limits  *limiter
	metrics *metrics
	agentLn net.Listener
	cluster clusterState

	// reloadMu serialises reloads; cfg.Limits and clients change only
	// under it.
	reloadMu sync.Mutex
	source   ConfigSource
	clients  []ClientConfig

	ready    atomic.Bool
	draining atomic.Bool

	stop     chan struct{} // closed by Shutdown to stop background loops
	wg       sync.WaitGroup
	shutdown sync.Once
	err      error
}

// NewNode opens the store and prepares every component of a node, without
// serving yet. A node is ready once NewNode returns: opening the store
// replays Pebble's write-ahead log.
func NewNode(cfg *Config, log *zap.Logger, secret string, clients []ClientConfig) (*Node, error) {
	phones, err := NewPhoneNormalizer(cfg.Phone)
	if err != nil {
		return nil, err
	}
	auth, err := NewAuthenticator(secret, cfg.Auth.JWT, clients, phones)
	if err != nil {
		return nil, err
	}
	store, err := storage.Open(cfg.Storage.Dir, storage.Options{
		MaxOpenFiles: cfg.Storage.MaxOpenFiles,
		MinFreeDisk:  cfg.Storage.MinFreeDisk,
		Events:       storeEvents(log),
		Logf: func(format string, args ...any) {
			log.Error("pebble error", zap.String("detail", fmt.Sprintf(format, args...)))
		},
	})
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg: cfg, log: log, store: store, auth: auth, stop: make(chan struct{}),
		limits: newLimiter(cfg.Limits, clients), metrics: newMetrics(), clients: clients,
	}
	rc := routerConfig(cfg, log)
	rc.Metrics = n.metrics.router
	if cfg.Cluster.Enabled() {
		n.cluster.placement = &placement{self: cfg.Cluster.NodeID, vnodes: cfg.Cluster.VirtualNodes}
		rc.Placement = n.cluster.placement
		rc.PeerSecret = []byte(cfg.Cluster.Secret)
	}
	n.router = router.New(rc, store)
	n.hub, err = hub.New(hubConfig(cfg, log, auth, n.router))
	if err != nil {
		_ = store.Close()
		return nil, err
	}
	n.echo = n.newEcho(phones)
	n.registerNodeGauges()
	n.server = &http.Server{
		Handler:           n.echo,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	n.ready.Store(true)
	return n, nil
}

func storeEvents(log *zap.Logger) storage.EventListener {
	return storage.EventListener{
		WriteStallBegin: func(reason string) {
			log.Warn("storage write stall began", zap.String("reason", reason))
		},
		WriteStallEnd: func() { log.Info("storage write stall ended") },
		BackgroundError: limitedLog(10*time.Second, func(err error, repeats int) {
			log.Error("storage background error", zap.Error(err), zap.Int("repeats", repeats))
		}),
	}
}

func (n *Node) newEcho(phones *PhoneNormalizer) *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = n.handleEchoError
	e.Pre(lowercaseCompatPath)
	api := &API{
		cfg: n.cfg, store: n.store, auth: n.auth, phones: phones, delivery: n.router, log: n.log,
		limits: n.limits, metrics: n.metrics, reload: n.Reload,
	}
	api.Register(e)
	n.hub.Register(e)
	e.GET("/health/live", n.live)
	e.GET("/health/ready", n.readyCheck)
	e.GET("/openapi.json", serveOpenAPI)
	e.GET("/metrics", n.metrics.handler())
	return e
}

// lowercaseCompatPath matches the previous service's routes
// case-insensitively, as ASP.NET Core routing does.
func lowercaseCompatPath(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		u := c.Request().URL
		if len(u.Path) > 9 && strings.EqualFold(u.Path[:9], "/api/app/") {
			// ASP.NET Core also ignores a trailing slash. Echo routes on
			// RawPath when the path was percent-encoded, so that is
			// replaced by the decoded, lowercased path.
			u.Path = strings.TrimSuffix(strings.ToLower(u.Path), "/")
			u.RawPath = ""
		}
		return next(c)
	}
}

// handleEchoError writes the errors that echo itself raises (unknown route,
// wrong method) in the shape of the route's API.
func (n *Node) handleEchoError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var he *echo.HTTPError
	if !errors.As(err, &he) {
		n.log.Error("request failed", zap.String("path", c.Request().URL.Path), zap.Error(err))
		he = echo.NewHTTPError(http.StatusInternalServerError)
	}
	code := "internal_error"
	detail := "The request failed on the server."
	switch he.Code {
	case http.StatusNotFound:
		code, detail = "route_not_found", "No route matches "+c.Request().URL.Path+"; see /openapi.json."
	case http.StatusMethodNotAllowed:
		code, detail = "method_not_allowed", "Method "+c.Request().Method+" is not allowed on "+
			c.Request().URL.Path+"; see /openapi.json."
	default:
		if he.Code < 500 {
			code, detail = "bad_request", fmt.Sprint(he.Message)
		}
	}
	_ = writeAPIError(c, newAPIError(he.Code, code, detail))
}

// Serve listens on the configured address and serves until Shutdown. It
// returns once the listener is open, and reports a failure to open it.
func (n *Node) Serve() error {
	ln, err := net.Listen("tcp", n.cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("app: listen on http.listen %s: %w", n.cfg.HTTP.Listen, err)
	}
	n.ln = ln
	if err := n.listenAgent(); err != nil {
		_ = ln.Close()
		return err
	}
	if err := n.servePprof(); err != nil {
		_ = ln.Close()
		return err
	}
	if n.cfg.Cluster.Enabled() {
		if err := n.startCluster(); err != nil {
			_ = ln.Close()
			return err
		}
	}
	n.router.Start(n.hub)
	n.log.Info("node listening", zap.String("addr", ln.Addr().String()),
		zap.String("dir", n.cfg.Storage.Dir))
	n.goLoop(func() {
		if err := n.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("http server stopped", zap.Error(err))
		}
	})
	n.goLoop(n.sweepIdempotency)
	return nil
}

func (n *Node) listenAgent() error {
	if n.cfg.Health.AgentListen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", n.cfg.Health.AgentListen)
	if err != nil {
		return fmt.Errorf("app: listen on health.agent_listen %s: %w", n.cfg.Health.AgentListen, err)
	}
	n.agentLn = ln
	n.log.Info("agent check listening", zap.String("addr", ln.Addr().String()))
	n.goLoop(func() { n.serveAgentCheck(ln) })
	return nil
}

// AgentAddr returns the agent-check address, or "" when it is off.
func (n *Node) AgentAddr() string {
	if n.agentLn == nil {
		return ""
	}
	return n.agentLn.Addr().String()
}

// SetConfigSource sets where Reload reads the configuration from.
func (n *Node) SetConfigSource(src ConfigSource) { n.source = src }

// Addr returns the address the node listens on, once Serve returned.
func (n *Node) Addr() string { return n.ln.Addr().String() }

func (n *Node) goLoop(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// sweepIdempotency deletes expired idempotency keys every hour.
func (n *Node) sweepIdempotency() {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			deleted, err := n.store.SweepIdempotency(context.Background(), n.cfg.Storage.IdempotencyTTL)
			if err != nil {
				n.log.Warn("idempotency sweep failed", zap.Error(err))
				continue
			}
			n.log.Info("idempotency keys swept", zap.Int("deleted", deleted))
		}
	}
}

// Shutdown drains the node: it closes hub connections with reconnect
// allowed, stops accepting requests, waits up to ctx's deadline for requests
// in progress, stops the router and closes the store. It is safe to call more than once; later calls return the
// first call's result.
func (n *Node) Shutdown(ctx context.Context) error {
	n.shutdown.Do(func() {
		n.draining.Store(true)
		n.ready.Store(false)
		n.log.Info("node draining")
		n.leaveCluster(ctx)
		var errs []error
		// The hub goes first: its long polls and event streams would hold
		// the HTTP server's Shutdown, and its WebSockets are not covered by it.
		if err := n.hub.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("app: hub shutdown: %w", err))
		}
		if err := n.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("app: http shutdown: %w", err))
		}
		// The router gets its own deadline: requests that used up ctx are
		// not the router's doing.
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := n.router.Shutdown(rctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
		if err := n.stopCluster(ctx); err != nil {
			errs = append(errs, err)
		}
		close(n.stop)
		if n.agentLn != nil {
			_ = n.agentLn.Close()
		}
		n.wg.Wait()
		if err := n.store.Close(); err != nil {
			errs = append(errs, err)
		}
		n.err = errors.Join(errs...)
		n.log.Info("node stopped", zap.Error(n.err))
	})
	return n.err
}

func (n *Node) live(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "live"})
}

func (n *Node) readyCheck(c echo.Context) error {
	reasons := n.notReadyReasons()
	if len(reasons) > 0 {
		return c.JSON(http.StatusServiceUnavailable, map[string]any{
			"status": "not_ready", "reasons": reasons,
		})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// notReadyReasons lists why the node should not get new work.
func (n *Node) notReadyReasons() []string {
	var reasons []string
	if n.draining.Load() {
		reasons = append(reasons, "draining: the node is shutting down")
	} else if !n.ready.Load() {
		reasons = append(reasons, "starting: the store is not open yet")
	}
	if err := n.store.Failure(); err != nil {
		reasons = append(reasons, "storage failed: "+err.Error()+"; restart the node")
	}
	return append(reasons, n.pressureReasons()...)
}

// limitedLog returns a function that calls logf at most once per period,
// with the number of calls it left out since the last one.
func limitedLog(period time.Duration, logf func(err error, repeats int)) func(error) {
	var mu sync.Mutex
	var last time.Time
	skipped := 0
	return func(err error) {
		mu.Lock()
		if time.Since(last) < period {
			skipped++
			mu.Unlock()
			return
		}
		n := skipped
		last, skipped = time.Now(), 0
		mu.Unlock()
		logf(err, n)
	}
}
