package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/procfs"
)

// Node settings of the idle connection mode.
const (
	// defaultClientTimeout is the node's default hub.client_timeout. The
	// idle mode raises it, and the clients' server timeout, to twice the
	// keep-alive interval when that is longer.
	defaultClientTimeout = 30 * time.Second
	// idleNodeRate is the rate limit input of the generated configuration.
	// The idle mode sends no messages, so its value does not matter.
	idleNodeRate = 1_000
	// hubConnectionsMetric is the node's gauge of live SignalR connections.
	hubConnectionsMetric = "esh3artech_hub_connections"
	// Go runtime gauges of the node, from client_golang's Go collector,
	// which reads them without a garbage collection.
	heapInuseMetric  = "go_memstats_heap_inuse_bytes"
	stackInuseMetric = "go_memstats_stack_inuse_bytes"
	goroutinesMetric = "go_goroutines"
	gcCyclesMetric   = "go_gc_duration_seconds_count"
	// metricsTimeout bounds one read of the node's /metrics.
	metricsTimeout = 10 * time.Second
)

// idleTimeout returns the client timeout that goes with keepAlive: the
// node's default, or twice keepAlive when that is longer, so that a side
// that pings every keepAlive is never taken for silent.
func idleTimeout(keepAlive time.Duration) time.Duration {
	return max(defaultClientTimeout, 2*keepAlive)
}

// idleConfig returns the node configuration of the idle mode: the bench's
// usual configuration with the given hub keep-alive interval.
func (s *nodeSetup) idleConfig(keepAlive time.Duration) string {
	return s.config(idleNodeRate) + fmt.Sprintf("hub: {keep_alive_interval: %s, client_timeout: %s}\n",
		keepAlive, idleTimeout(keepAlive))
}

// startWithConfig writes text as the node configuration and starts the
// node, without the environment's ESH3ARTECH_ variables, as start does.
func (s *nodeSetup) startWithConfig(text string) (*child, error) {
	path := filepath.Join(s.dir, "config.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return nil, fmt.Errorf("write the node configuration: %w", err)
	}
	cmd := exec.Command(s.binary, "serve", "--config", path)
	cmd.Dir = s.dir
	cmd.Env = []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ESH3ARTECH_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	return startChild("node", cmd, nodeListenMsg)
}

// residentSet returns the child's resident set size (VmRSS in
// /proc/PID/status) in bytes.
func (c *child) residentSet() (uint64, error) {
	p, err := procfs.NewProc(c.cmd.Process.Pid)
	if err != nil {
		return 0, fmt.Errorf("read %s process: %w", c.name, err)
	}
	st, err := p.NewStatus()
	if err != nil {
		return 0, fmt.Errorf("read %s memory: %w", c.name, err)
	}
	return st.VmRSS, nil
}

// openFiles returns how many files the child has open, as /proc/PID/fd
// lists them.
func (c *child) openFiles() (int, error) {
	p, err := procfs.NewProc(c.cmd.Process.Pid)
	if err != nil {
		return 0, fmt.Errorf("read %s process: %w", c.name, err)
	}
	n, err := p.FileDescriptorsLen()
	if err != nil {
		return 0, fmt.Errorf("count %s open files: %w", c.name, err)
	}
	return n, nil
}

// openFilesLimit returns the child's soft limit of open files.
func (c *child) openFilesLimit() (uint64, error) {
	p, err := procfs.NewProc(c.cmd.Process.Pid)
	if err != nil {
		return 0, fmt.Errorf("read %s process: %w", c.name, err)
	}
	l, err := p.Limits()
	if err != nil {
		return 0, fmt.Errorf("read %s limits: %w", c.name, err)
	}
	return l.OpenFiles, nil
}

// selfOpenFiles returns how many files the bench process has open.
func selfOpenFiles() (int, error) {
	p, err := procfs.Self()
	if err != nil {
		return 0, fmt.Errorf("read the bench process: %w", err)
	}
	return p.FileDescriptorsLen()
}

// readGauges returns the values of the unlabelled metrics names from the
// Prometheus text exposition at url. A metric that the exposition lacks is
// missing from the map.
func readGauges(ctx context.Context, client *http.Client, url string, names ...string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, metricsTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read %s: HTTP status %d", url, resp.StatusCode)
	}
	values := make(map[string]float64, len(names))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		for _, name := range names {
			if v, ok := parseGaugeLine(sc.Text(), name); ok {
				values[name] = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	return values, nil
}

// parseGaugeLine returns the value of line when it is a sample of the
// unlabelled metric name, such as "esh3artech_hub_connections 42".
func parseGaugeLine(line, name string) (float64, bool) {
	rest, ok := strings.CutPrefix(line, name+" ")
	if !ok {
		return 0, false
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return 0, false
	}
	return v, true
}
