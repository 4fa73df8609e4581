// Command esh3artech runs the Esh3arTech message relay and its tools.
//
// Usage:
//
//	esh3artech [serve] [--config FILE]   run a node (the default command)
//	esh3artech token --client ID | --phone NUMBER [--ttl 24h] [--config FILE]
//	esh3artech version
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/esh3artech/esh3artech/app"
)

//go:embed config.yaml
var defaultConfig []byte

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = "esh3artech: the Esh3arTech message relay\n\n" + commandList

const commandList = `Commands:
  serve     run a node (the default when no command is given)
  token     mint a JWT for a business client or a mobile user
  version   print the version
  autoscale add and remove nodes by their load (see docs/autoscale.md)

Run "esh3artech COMMAND --help" for the flags of a command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(args, stdout, stderr)
	case "token":
		err = token(args, stdout, stderr)
	case "version":
		err = printVersion(args, stdout, stderr)
	case "autoscale":
		err = autoscaleCmd(args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "esh3artech: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "esh3artech %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

// newFlags returns a flag set whose parse errors and help go to stderr.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: esh3artech %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func loadConfig(path string) (*app.Config, error) {
	return app.LoadConfig(defaultConfig, path, os.Environ())
}

func serve(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", "[serve] [--config FILE]", stderr)
	usage := fs.Usage
	fs.Usage = func() {
		usage()
		fmt.Fprintf(stderr, "\n%s", commandList)
	}
	configPath := fs.String("config", "", "YAML `file` merged over the embedded defaults")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	node, err := startNode(cfg, log, stdout)
	if err != nil {
		return err
	}
	node.SetConfigSource(func() (*app.Config, error) { return loadConfig(*configPath) })
	return waitForSignal(node, cfg, log)
}

func startNode(cfg *app.Config, log *zap.Logger, stdout io.Writer) (*app.Node, error) {
	secret, created, err := app.ResolveSecret(cfg)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("jwt secret generated", zap.String("dir", cfg.Storage.Dir))
	}
	clients, generated, err := app.ResolveClients(cfg)
	if err != nil {
		return nil, err
	}
	if generated != nil {
		// Shown before the node starts, so that a start that fails (a port
		// in use) does not lose the only copy of the key.
		printGeneratedClient(stdout, generated, cfg.HTTP.Listen)
	}
	node, err := app.NewNode(cfg, log, secret, clients)
	if err != nil {
		return nil, err
	}
	if err := node.Serve(); err != nil {
		_ = node.Shutdown(context.Background())
		return nil, err
	}
	return node, nil
}

// printGeneratedClient shows the key of a client created on first start. It
// goes to standard output, never to the logs, and is shown only this once.
func printGeneratedClient(w io.Writer, g *app.GeneratedClient, addr string) {
	fmt.Fprintf(w, `
No business client was configured, so client %q was created. Its API key,
shown only now (only its SHA-256 is stored), is:

    %s

Send it as a header, for example:

    curl -H 'X-Api-Key: %s' http://%s/api/v1/messages/...

`, g.ID, g.Key, g.Key, addr)
}

// waitForSignal reloads the configuration on SIGHUP and runs until SIGINT
// or SIGTERM, then drains the node. A second SIGINT or SIGTERM stops the
// process at once.
func waitForSignal(node *app.Node, cfg *app.Config, log *zap.Logger) error {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	sig := <-sigs
	for sig == syscall.SIGHUP {
		// Reload logs what changed, or why the new configuration was rejected.
		_, _, _ = node.Reload()
		sig = <-sigs
	}
	log.Info("signal received, draining", zap.String("signal", sig.String()))
	go func() {
		sig := <-sigs
		for sig == syscall.SIGHUP {
			sig = <-sigs
		}
		log.Warn("second signal received, exiting at once", zap.String("signal", sig.String()))
		_ = log.Sync()
		os.Exit(1)
	}()
	timeout := cfg.HTTP.ShutdownTimeout
	if cfg.Cluster.Enabled() {
		timeout += cfg.Cluster.DrainTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return node.Shutdown(ctx)
}

func newLogger(c app.LogConfig) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("config: log.level: %w", err)
	}
	zc := zap.NewProductionConfig()
	if c.Format == "console" {
		zc = zap.NewDevelopmentConfig()
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
	}
	zc.Level = zap.NewAtomicLevelAt(level)
	zc.EncoderConfig.TimeKey = "ts"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	zc.Sampling = nil
	return zc.Build()
}

func token(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("token", "token (--client ID | --phone NUMBER) [--ttl 24h] [--config FILE]", stderr)
	configPath := fs.String("config", "", "YAML `file` merged over the embedded defaults")
	client := fs.String("client", "", "business client `id` (the token's sub claim)")
	phone := fs.String("phone", "", "mobile user's phone `number` (the token's phone claim)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*client == "") == (*phone == "") {
		fs.Usage()
		return errors.New("give exactly one of --client and --phone")
	}
	if *ttl <= 0 {
		return fmt.Errorf("--ttl %s must be above zero", *ttl)
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	tok, err := mintToken(cfg, *client, *phone, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}

func mintToken(cfg *app.Config, client, phone string, ttl time.Duration) (string, error) {
	secret, _, err := app.ResolveSecret(cfg)
	if err != nil {
		return "", err
	}
	claims := map[string]any{}
	if client != "" {
		clients, _, err := app.ResolveClients(cfg)
		if err != nil {
			return "", err
		}
		if !hasClient(clients, client) {
			return "", fmt.Errorf("client %q is not configured; add it under auth.clients", client)
		}
		claims["sub"] = client
	} else {
		phones, err := app.NewPhoneNormalizer(cfg.Phone)
		if err != nil {
			return "", err
		}
		p, err := phones.Normalize(phone)
		if err != nil {
			return "", fmt.Errorf("--phone: %w", err)
		}
		claims[cfg.Auth.JWT.PhoneClaim] = p
		claims["sub"] = p
	}
	return app.MintToken(secret, claims, ttl)
}

func hasClient(clients []app.ClientConfig, id string) bool {
	for _, c := range clients {
		if c.ID == id {
			return true
		}
	}
	return false
}

func printVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", "version", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	v := version
	if info, ok := debug.ReadBuildInfo(); ok && v == "dev" {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v = "dev-" + s.Value[:12]
			}
		}
	}
	fmt.Fprintf(stdout, "esh3artech %s\n", v)
	return nil
}
