package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// binPath is the relay binary built once for the end-to-end tests, without
// the race detector so that the tests measure the product as shipped.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "esh3artech-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "esh3artech")
	build := exec.Command("go", "build", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build relay binary:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// testAPIKey is the API key of client "acme" in testConfig.
const testAPIKey = "test-key-acme-0123456789abcdef"

const testSecret = "test-secret-0123456789abcdef-0123456789"

// testConfig returns the YAML of a node on a free loopback port with data
// in dir, followed by extra YAML lines.
func testConfig(dir, extra string) string {
	sum := sha256.Sum256([]byte(testAPIKey))
	return fmt.Sprintf(`
log: {level: info, format: json}
http: {listen: "127.0.0.1:0"}
storage: {dir: %q}
auth:
  jwt: {hs256_secret: %q}
  clients:
    - {id: acme, api_key_sha256: %q, admin: true}
%s`, dir, testSecret, hex.EncodeToString(sum[:]), extra)
}

// nodeProc is a relay process started by a test.
type nodeProc struct {
	cmd  *exec.Cmd
	addr string
	logs *bytes.Buffer
	mu   sync.Mutex
}

// startTestNode runs the binary with the given config file and waits until it
// logs its listening address.
func startTestNode(t *testing.T, configPath string) *nodeProc {
	t.Helper()
	cmd := exec.Command(binPath, "serve", "--config", configPath)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	cmd.Stdout = io.Discard
	require.NoError(t, cmd.Start())
	p := &nodeProc{cmd: cmd, logs: new(bytes.Buffer)}
	addrc := make(chan string, 1)
	go p.scanLogs(stderr, addrc)
	t.Cleanup(func() { p.kill() })
	select {
	case p.addr = <-addrc:
	case <-time.After(30 * time.Second):
		t.Fatalf("node did not start within 30s; logs:\n%s", p.logText())
	}
	return p
}

func (p *nodeProc) scanLogs(r io.Reader, addrc chan<- string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		p.logs.WriteString(line + "\n")
		p.mu.Unlock()
		var ev struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Msg == "node listening" {
			addrc <- ev.Addr
		}
	}
}

func (p *nodeProc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func (p *nodeProc) url(path string) string { return "http://" + p.addr + path }

// kill stops the process with SIGKILL and waits for it.
func (p *nodeProc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	return path
}

// sendMessage posts one message and returns the status and the id of the
// answer (empty unless the status is 202).
func sendMessage(ctx context.Context, client *http.Client, base, phone, content string) (int, string, error) {
	body := fmt.Sprintf(`{"recipientPhoneNumber":%q,"messageContent":%q}`, phone, content)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/messages",
		strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", testAPIKey)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var out struct {
		ID string `json:"id"`
	}
	if resp.StatusCode == http.StatusAccepted {
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return resp.StatusCode, "", err
		}
	}
	return resp.StatusCode, out.ID, nil
}

// getMessage reads a message through the API.
func getMessage(t *testing.T, base, id string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/api/v1/messages/"+id, nil)
	require.NoError(t, err)
	req.Header.Set("X-Api-Key", testAPIKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// e2eScripts is the folder of the official-client scripts and their npm
// package.
const e2eScripts = "testdata/e2e"

var npmOnce sync.Once
var npmErr error

// requireNodeModules installs the pinned npm packages of the official
// client once per test binary.
func requireNodeModules(t *testing.T) {
	t.Helper()
	npmOnce.Do(func() {
		if _, err := os.Stat(filepath.Join(e2eScripts, "node_modules", "@microsoft", "signalr")); err == nil {
			return
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = e2eScripts
		out, err := cmd.CombinedOutput()
		if err != nil {
			npmErr = fmt.Errorf("npm ci in %s: %w\n%s", e2eScripts, err, out)
		}
	})
	require.NoError(t, npmErr)
}

// runNode runs a script of testdata/e2e with node and returns its standard
// output; the script fails the test by exiting non-zero.
func runNode(t *testing.T, timeout time.Duration, script string, args ...string) string {
	t.Helper()
	requireNodeModules(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	cmd.Dir = e2eScripts
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, err, "node %s failed:\nstdout:\n%s\nstderr:\n%s", script, stdout.String(), stderr.String())
	return stdout.String()
}
