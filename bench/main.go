// Command bench is a load generator for the relay that measures what its users
// feel: how long business clients wait for an answer, how long a message takes
// to reach a mobile user, and whether any accepted message is lost.
//
// With no flags it builds the relay, starts it as a separate process on a
// temporary data folder, runs a short scenario against it, prints the results
// and stops it. With --target it loads a node or a load balancer that is
// already running on this machine.
//
// Usage:
//
//	go run ./bench [--clients N] [--rate R] [--duration D] [--users M] ...
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Exit statuses of the command.
const (
	exitOK    = 0 // every accepted message was delivered or dead-lettered
	exitLost  = 1 // at least one accepted message was lost
	exitSetup = 2 // invalid flags, or the run could not be set up
)

// maxSends bounds rate × duration, because the bench keeps about 100 bytes
// of state per scheduled send.
const maxSends = 10_000_000

// config holds the flags of one bench run.
type config struct {
	target        string
	apiKey        string
	jwtSecret     string
	hubPath       string
	nodeBin       string
	clients       int
	sources       int
	rate          float64
	duration      time.Duration
	timeout       time.Duration
	users         int
	offline       float64
	drain         time.Duration
	baseline      bool
	seed          int64
	jsonPath      string
	reportPath    string
	assetsHost    string
	quiet         bool
	lookupWorkers int
	idle          int           // --idle: connections of the idle connection mode, 0 for the load mode
	keepAlive     time.Duration // --keep-alive of the idle connection mode
	settle        time.Duration // --settle of the idle connection mode
	push          bool          // --push: the push mode
}

// sends returns how many messages the schedule sends.
func (c *config) sends() int64 {
	return int64(c.rate * c.duration.Seconds())
}

func main() {
	if isBaselineChild(os.Args[1:]) {
		os.Exit(serveBaseline(os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses args, runs the bench and writes its results. It returns the
// exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return exitSetup
	}
	switch {
	case cfg.idle > 0:
		return runIdleMode(ctx, cfg, stdout, stderr)
	case cfg.push:
		return runPushMode(ctx, cfg, stdout, stderr)
	}
	rep, err := execute(ctx, cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return exitSetup
	}
	if err := writeOutputs(cfg, rep, stdout); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return exitSetup
	}
	return exitCode(rep)
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: go run ./bench [flags]

Loads a relay node with business clients and mobile users on this machine
and reports answer latency, end-to-end latency and lost messages. Without
--target it builds the relay and starts it on a temporary data folder.
Exit status: 0 when no accepted message was lost, 1 when any was, 2 when
the run could not be set up.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.target, "target", "", "base `URL` of a running node or load balancer on this machine "+
		"(loopback addresses only); empty builds and starts a node")
	fs.StringVar(&c.apiKey, "api-key", "", "business client's API `key` for --target")
	fs.StringVar(&c.jwtSecret, "jwt-secret", "", "node's HS256 `secret`, to sign mobile users' tokens for --target")
	fs.StringVar(&c.hubPath, "hub-path", "/online-mobile-user", "`path` of the SignalR hub")
	fs.StringVar(&c.nodeBin, "node-bin", "", "relay `binary` to start instead of building one")
	fs.IntVar(&c.clients, "clients", 10_000, "concurrent keep-alive HTTP/1.1 `connections` of business clients")
	fs.IntVar(&c.sources, "sources", 0, "loopback source `addresses` to spread connections over "+
		"(127.0.0.2 and up); 0 uses as many as the ephemeral port range needs")
	fs.Float64Var(&c.rate, "rate", 10_000, "offered load in `messages` per second, over all connections")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long the schedule sends")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "maximum wait for one answer; "+
		"also how long after the schedule ends late sends may still start")
	fs.IntVar(&c.users, "users", 1_000, "mobile users connected over SignalR; 0 measures no delivery and no loss")
	fs.Float64Var(&c.offline, "offline", 0.1, "share of users, 0 to 1, that connect only after the load to fetch their backlog")
	fs.DurationVar(&c.drain, "drain", 10*time.Second, "maximum wait after the load for undelivered messages")
	fs.BoolVar(&c.baseline, "baseline", false, "first run the same load against a bare net/http server, "+
		"and report the node's figures as ratios to it")
	fs.Int64Var(&c.seed, "seed", 0, "seed of the recipients' random draw; 0 picks one")
	fs.StringVar(&c.jsonPath, "json", "", "write every figure as JSON to `file`")
	fs.StringVar(&c.reportPath, "report", "", "write an HTML report with latency charts to `file`")
	fs.StringVar(&c.assetsHost, "assets-host", "", "http(s) `URL` of a folder that the HTML report loads "+
		"echarts.min.js from; empty uses go-echarts' public assets host")
	fs.BoolVar(&c.quiet, "quiet", false, "do not draw the progress bar")
	fs.IntVar(&c.lookupWorkers, "lookup-workers", 64, "concurrent lookups of undelivered messages")
	fs.IntVar(&c.idle, "idle", 0, "idle connection mode: open this many `connections` to a node that the "+
		"bench starts, hold them through two keep-alive intervals and report the node's memory per "+
		"connection; exit status 1 when a connection failed, dropped or missed a keep-alive")
	fs.DurationVar(&c.keepAlive, "keep-alive", 15*time.Second, "with --idle: the node's hub.keep_alive_interval "+
		"and the clients' ping interval")
	fs.DurationVar(&c.settle, "settle", 5*time.Second, "with --idle: wait before measuring the node without "+
		"connections, and again after the hold")
	fs.BoolVar(&c.push, "push", false, "push mode: connect every user (--offline does not apply), run the load, "+
		"and report acknowledged messages per second next to accepted per second; exit status 1 when an "+
		"accepted message was not acknowledged within --drain")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q; see --help", fs.Arg(0))
	}
	return c, c.validate()
}

func (c *config) validate() error {
	if c.idle < 0 {
		return fmt.Errorf("--idle %d must not be negative", c.idle)
	}
	if c.idle > 0 {
		return c.validateIdle()
	}
	if c.push {
		if err := c.validatePush(); err != nil {
			return err
		}
	}
	switch {
	case c.clients < 1:
		return fmt.Errorf("--clients %d must be at least 1", c.clients)
	case c.sources < 0:
		return fmt.Errorf("--sources %d must not be negative", c.sources)
	case c.rate <= 0:
		return fmt.Errorf("--rate %g must be above zero", c.rate)
	case c.duration <= 0 || c.timeout <= 0:
		return errors.New("--duration and --timeout must be above zero")
	case c.users < 0:
		return fmt.Errorf("--users %d must not be negative", c.users)
	case c.offline < 0 || c.offline > 1:
		return fmt.Errorf("--offline %g must be between 0 and 1", c.offline)
	case c.drain < 0:
		return fmt.Errorf("--drain %s must not be negative", c.drain)
	case c.lookupWorkers < 1:
		return fmt.Errorf("--lookup-workers %d must be at least 1", c.lookupWorkers)
	}
	if c.assetsHost != "" {
		// html/template replaces other schemes, such as file://, with a
		// placeholder, so the page would load no script.
		if !strings.HasPrefix(c.assetsHost, "http://") && !strings.HasPrefix(c.assetsHost, "https://") {
			return fmt.Errorf("--assets-host %q must be an http:// or https:// URL", c.assetsHost)
		}
		if !strings.HasSuffix(c.assetsHost, "/") {
			c.assetsHost += "/"
		}
	}
	if n := c.sends(); n < 1 || n > maxSends {
		return fmt.Errorf("--rate × --duration is %d messages; give 1 to %d", n, maxSends)
	}
	if c.target != "" {
		if c.apiKey == "" {
			return errors.New("--target needs --api-key")
		}
		if c.users > 0 && c.jwtSecret == "" {
			return errors.New("--target with --users above 0 needs --jwt-secret; or set --users 0")
		}
	}
	return checkFileLimit(c.clients, c.users)
}

// exitCode returns the exit status for a finished run: non-zero when any
// accepted message was lost.
func exitCode(r *report) int {
	if r.Lost > 0 {
		return exitLost
	}
	return exitOK
}
