package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
)

// Child process limits.
const (
	// startTimeout bounds the wait for a child's listening log line.
	startTimeout = 60 * time.Second
	// stopTimeout is how long a child may drain after SIGTERM before it
	// gets SIGKILL. The node's own default shutdown_timeout is 15s.
	stopTimeout = 20 * time.Second
	// keptLogLines is how many of a child's last log lines an error shows.
	keptLogLines = 20
)

// child is a server process that the bench started: the node or the
// baseline server. Both log JSON lines on standard error and announce their
// address with a line whose msg is listenMsg.
type child struct {
	name   string
	cmd    *exec.Cmd
	addr   string
	exited chan struct{} // closed once the process has been reaped
	err    error         // set before exited is closed

	mu        sync.Mutex
	lastLines []string
	errorLogs int // lines logged at level error
}

// startChild starts cmd and waits until it logs listenMsg with its address.
func startChild(name string, cmd *exec.Cmd, listenMsg string) (*child, error) {
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd.Stdout = io.Discard
	// The kernel sends SIGTERM to the child if the bench dies first, so no
	// server outlives a killed bench.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, exited: make(chan struct{})}
	addrs := make(chan string, 1)
	go func() {
		c.scanLogs(stderr, listenMsg, addrs)
		c.err = cmd.Wait()
		close(c.exited)
	}()
	select {
	case c.addr = <-addrs:
		return c, nil
	case <-c.exited:
		return nil, fmt.Errorf("%s exited before listening (%v); its last logs:\n%s", name, c.err, c.logTail())
	case <-time.After(startTimeout):
		_ = c.stop()
		return nil, fmt.Errorf("%s did not log %q within %s; its last logs:\n%s",
			name, listenMsg, startTimeout, c.logTail())
	}
}

// scanLogs reads the child's log lines until the pipe closes, keeps the last
// few, counts errors and sends the address of the listening line.
func (c *child) scanLogs(r io.Reader, listenMsg string, addrs chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Addr  string `json:"addr"`
		}
		_ = json.Unmarshal(sc.Bytes(), &line)
		c.mu.Lock()
		c.lastLines = append(c.lastLines, sc.Text())
		if len(c.lastLines) > keptLogLines {
			c.lastLines = c.lastLines[1:]
		}
		if line.Level == "error" {
			c.errorLogs++
		}
		c.mu.Unlock()
		if line.Msg == listenMsg && line.Addr != "" {
			select {
			case addrs <- line.Addr:
			default:
			}
		}
	}
	// Drain what the scanner left, so the child never blocks on a full pipe.
	_, _ = io.Copy(io.Discard, r)
}

func (c *child) logTail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.lastLines, "\n")
}

func (c *child) errorLogCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errorLogs
}

// stop sends SIGTERM, waits up to stopTimeout for the child to exit, then
// sends SIGKILL. It returns an error when the child had to be killed or
// exited with a failure.
func (c *child) stop() error {
	select {
	case <-c.exited:
		return c.exitError()
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return c.exitError()
	case <-time.After(stopTimeout):
	}
	_ = c.cmd.Process.Kill()
	<-c.exited
	return fmt.Errorf("%s did not exit within %s of SIGTERM and was killed", c.name, stopTimeout)
}

func (c *child) exitError() error {
	if c.err != nil {
		return fmt.Errorf("%s exited with %w; its last logs:\n%s", c.name, c.err, c.logTail())
	}
	return nil
}

// processUsage is the resource use of a child process.
type processUsage struct {
	CPUSeconds   float64 `json:"cpu_seconds"`    // user + system time during the load
	CPUCores     float64 `json:"cpu_cores"`      // CPUSeconds divided by the load's wall time
	PeakRSSBytes uint64  `json:"peak_rss_bytes"` // VmHWM: the largest resident set since start
}

// cpuSeconds returns the user and system CPU time of the child so far, from
// /proc/PID/stat.
func (c *child) cpuSeconds() (float64, error) {
	p, err := procfs.NewProc(c.cmd.Process.Pid)
	if err != nil {
		return 0, fmt.Errorf("read %s process: %w", c.name, err)
	}
	st, err := p.Stat()
	if err != nil {
		return 0, fmt.Errorf("read %s CPU time: %w", c.name, err)
	}
	return st.CPUTime(), nil
}

// peakRSS returns the child's peak resident set size (VmHWM in
// /proc/PID/status) in bytes.
func (c *child) peakRSS() (uint64, error) {
	p, err := procfs.NewProc(c.cmd.Process.Pid)
	if err != nil {
		return 0, fmt.Errorf("read %s process: %w", c.name, err)
	}
	st, err := p.NewStatus()
	if err != nil {
		return 0, fmt.Errorf("read %s memory: %w", c.name, err)
	}
	return st.VmHWM, nil
}

// selfCPUSeconds returns the user and system CPU time of the bench process
// so far. The bench shares the machine's cores with the server it loads.
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
