package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/uuid"
)

// baselineFlag, as the first argument, makes the bench binary serve the
// baseline instead of running a bench. It is not listed in --help.
const baselineFlag = "-baseline-server"

// baselineListenMsg is the log message with which the baseline server
// announces its address.
const baselineListenMsg = "baseline listening"

// Limits of the baseline server, the same as the node's defaults.
const (
	baselineMaxBody           = 64 << 10
	baselineReadHeaderTimeout = 5 * time.Second
	baselineIdleTimeout       = 120 * time.Second
)

func isBaselineChild(args []string) bool {
	return len(args) > 0 && args[0] == baselineFlag
}

// startBaseline runs this binary again as the baseline server, a separate
// process with its own open file limit.
func startBaseline() (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the bench binary to start the baseline server: %w", err)
	}
	return startChild("baseline server", exec.Command(self, baselineFlag), baselineListenMsg)
}

// serveBaseline runs the baseline server until SIGTERM or SIGINT and
// returns the exit status. It logs JSON lines to w.
func serveBaseline(w io.Writer) int {
	log := slog.New(slog.NewJSONHandler(w, nil))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Error("listen failed", "error", err)
		return 1
	}

	srv := &http.Server{
		Handler:           baselineHandler(),
		ReadHeaderTimeout: baselineReadHeaderTimeout,
		IdleTimeout:       baselineIdleTimeout,
	}
	log.Info(baselineListenMsg, "addr", ln.Addr().String())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err = <-served:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = srv.Shutdown(sctx)
		cancel()
		<-served
	}

	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("server stopped", "error", err)
		return 1
	}
	log.Info("baseline stopped")
	return 0
}

// baselineHandler accepts POST /api/v1/messages the way the node's API
// does on the outside, without storing anything. It decodes the body's JSON
// and responds with 202 and a new id. It measures the ceiling that net/http
// and this machine put on the node.
func baselineHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/messages", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			RecipientPhoneNumber string          `json:"recipientPhoneNumber"`
			MessageContent       string          `json:"messageContent"`
			Subject              string          `json:"subject"`
			Priority             json.RawMessage `json:"priority"`
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, baselineMaxBody))
		if err == nil {
			err = json.Unmarshal(body, &req)
		}
		if err != nil || req.RecipientPhoneNumber == "" || req.MessageContent == "" {
			http.Error(w, `{"title":"invalid message"}`, http.StatusBadRequest)
			return
		}
		id, err := uuid.NewV7()
		if err != nil {
			http.Error(w, `{"title":"no id"}`, http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", "/api/v1/messages/"+id.String())
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]any{"id": id.String(), "status": 4})
	})
	return mux
}
