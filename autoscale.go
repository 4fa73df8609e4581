package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/esh3artech/esh3artech/app"
	"github.com/esh3artech/esh3artech/app/autoscale"
)

// autoscaleCmd runs the supervisor that adds and removes nodes by their
// load. The first SIGINT or SIGTERM stops deciding and drains every node
// it started; a second one kills those nodes at once.
func autoscaleCmd(args []string, _, stderr io.Writer) error {
	fs := newFlags("autoscale", "autoscale --config FILE", stderr)
	configPath := fs.String("config", "", "the supervisor's YAML `file`; see docs/autoscale.md")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *configPath == "" {
		fs.Usage()
		return errors.New("--config is required")
	}

	cfg, err := autoscale.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	log, err := newLogger(app.LogConfig{Level: cfg.Log.Level, Format: cfg.Log.Format})
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	binary, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this executable for launch.binary: %w", err)
	}
	sup, err := autoscale.New(cfg, log, autoscale.Options{
		Binary:          binary,
		CheckNodeConfig: checkAutoscaledNodeConfig,
	})
	if err != nil {
		return err
	}
	return runSupervisor(sup, log)
}

// checkAutoscaledNodeConfig loads a started node's configuration file as
// the node will, environment included.
func checkAutoscaledNodeConfig(path string) error {
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	return autoscale.CheckSharedSettings(cfg)
}

// runSupervisor runs sup until the first signal, then shuts it down; a
// second signal ends the shutdown's wait for each node's drain.
func runSupervisor(sup *autoscale.Supervisor, log *zap.Logger) error {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	shutdownCtx, stopShutdown := context.WithCancel(context.Background())
	defer stopShutdown()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case sig := <-sigs:
			log.Info("signal received, stopping started nodes", zap.String("signal", sig.String()))
			stopRun()
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			log.Warn("second signal received, killing started nodes", zap.String("signal", sig.String()))
			stopShutdown()
		case <-done:
		}
	}()
	err := sup.Run(runCtx)
	sup.Shutdown(shutdownCtx)
	return err
}
