package autoscale

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"time"
)

// ringChangedMsg is the message of the node's log line that reports a new
// ring, with the member count under "members".
const ringChangedMsg = "cluster ring changed"

// maxLogLine bounds the line the output watcher buffers. Longer lines are
// written to the log file but not parsed.
const maxLogLine = 64 << 10

// outputWatcher receives a node's standard output and error. It copies
// them to the node's log file and records the member count of the last
// "cluster ring changed" line.
type outputWatcher struct {
	file    io.Writer
	line    []byte
	members atomic.Int64
	changed chan struct{} // receives a value after members changes
}

func newOutputWatcher(file io.Writer) *outputWatcher {
	return &outputWatcher{file: file, changed: make(chan struct{}, 1)}
}

// Write implements io.Writer. exec.Cmd calls it from one goroutine at a
// time because the same watcher is both Stdout and Stderr.
func (w *outputWatcher) Write(p []byte) (int, error) {
	n := len(p)
	_, _ = w.file.Write(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(w.line)+len(p) <= maxLogLine {
				w.line = append(w.line, p...)
			}
			break
		}
		if len(w.line)+i <= maxLogLine {
			w.parse(append(w.line, p[:i]...))
		}
		w.line = w.line[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (w *outputWatcher) parse(line []byte) {
	var ev struct {
		Msg     string `json:"msg"`
		Members *int64 `json:"members"`
	}
	if json.Unmarshal(line, &ev) != nil || ev.Msg != ringChangedMsg || ev.Members == nil {
		return
	}
	w.members.Store(*ev.Members)
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// nodeProcess is a node started by the supervisor.
type nodeProcess struct {
	spec    NodeSpec
	cmd     *exec.Cmd
	output  *outputWatcher
	logFile *os.File
	done    chan struct{} // closed once the process has exited
	waitErr error         // the exit status; read only after done is closed
	// servers lists the backends the node was added to.
	servers []addedServer
}

// addedServer is a server the supervisor added to one backend.
type addedServer struct {
	backend string
	health  bool // the options enable a health check
	agent   bool // the options enable an agent check
}

// startProcess runs args in a process group of its own, so that a Ctrl-C
// at the supervisor's terminal reaches only the supervisor, which then
// drains each node in turn.
func startProcess(spec NodeSpec, args []string) (*nodeProcess, error) {
	logFile, err := os.OpenFile(spec.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open node log: %w", err)
	}
	p := &nodeProcess{spec: spec, output: newOutputWatcher(logFile), logFile: logFile, done: make(chan struct{})}
	p.cmd = exec.Command(args[0], args[1:]...)
	p.cmd.Stdout = p.output
	p.cmd.Stderr = p.output
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A child of the node that keeps the output open must not hold Wait.
	p.cmd.WaitDelay = 5 * time.Second
	if err := p.cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start node %s: %w", spec.NodeID, err)
	}
	// This goroutine ends when the process exits; the supervisor stops
	// every process it started before it returns.
	go func() {
		p.waitErr = p.cmd.Wait()
		_ = p.logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has exited.
func (p *nodeProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, which drains the node, and waits up to timeout for
// the process to exit. It kills the process if the timeout passes or ctx
// ends first. It reports whether the process exited on its own.
func (p *nodeProcess) stop(ctx context.Context, timeout time.Duration) bool {
	if p.exited() {
		return true
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return true
	case <-timer.C:
	case <-ctx.Done():
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return false
}

// waitReady polls the node's /health/ready until it returns 200, the
// process exits or ctx ends.
func (p *nodeProcess) waitReady(ctx context.Context, client *http.Client) error {
	url := "http://" + p.spec.HTTPAddr() + "/health/ready"
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if ready(ctx, client, url) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s not ready at %s: %w", p.spec.NodeID, url, ctx.Err())
		case <-p.done:
			return fmt.Errorf("node %s exited before it was ready: %w", p.spec.NodeID, p.exitError())
		case <-tick.C:
		}
	}
}

func ready(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// waitRing waits until the node's log reports a ring of at least members
// nodes, the process exits or ctx ends.
func (p *nodeProcess) waitRing(ctx context.Context, members int) error {
	for {
		if got := p.output.members.Load(); got >= int64(members) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %s reported a ring of %d members, not %d: %w",
				p.spec.NodeID, p.output.members.Load(), members, ctx.Err())
		case <-p.done:
			return fmt.Errorf("node %s exited before it joined the ring: %w", p.spec.NodeID, p.exitError())
		case <-p.output.changed:
		}
	}
}

// exitError returns the process's exit status once it has exited.
func (p *nodeProcess) exitError() error {
	<-p.done
	if p.waitErr == nil {
		return errors.New("exit status 0")
	}
	return p.waitErr
}
