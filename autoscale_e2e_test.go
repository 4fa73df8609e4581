package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/esh3artech/esh3artech/app/autoscale"
	"github.com/esh3artech/esh3artech/hub/signalr"
	"github.com/esh3artech/esh3artech/router/cluster"
)

// autoscaleClusterSecret is cluster.secret of the autoscale test's nodes.
const autoscaleClusterSecret = "autoscale-e2e-secret-0123456789abcdef-0123456789"

// autoscaleMaxConnections is limits.max_connections of every node in the
// autoscale test: ten hub connections are a node's full capacity, so that
// a few connections drive the load past the scale-out threshold.
const autoscaleMaxConnections = 10

// supervisorProc is a running "esh3artech autoscale" process and its JSON
// log lines.
type supervisorProc struct {
	cmd    *exec.Cmd
	exited chan struct{}

	mu     sync.Mutex
	events []map[string]any
	text   strings.Builder
}

// startSupervisor runs the autoscale command with the config at path. The
// cleanup stops it with SIGTERM, which drains the nodes it started, and
// kills whatever is left after 60 seconds.
func startSupervisor(t *testing.T, path string) *supervisorProc {
	t.Helper()
	s := &supervisorProc{exited: make(chan struct{})}
	s.cmd = exec.Command(binPath, "autoscale", "--config", path)
	s.cmd.Stdout = io.Discard
	stderr, err := s.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, s.cmd.Start())
	go func() {
		defer close(s.exited)
		s.read(stderr)
		_ = s.cmd.Wait()
	}()
	t.Cleanup(func() { s.cleanup(t) })
	return s
}

func (s *supervisorProc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev map[string]any
		_ = json.Unmarshal(sc.Bytes(), &ev)
		s.mu.Lock()
		s.text.WriteString(sc.Text() + "\n")
		if ev != nil {
			s.events = append(s.events, ev)
		}
		s.mu.Unlock()
	}
}

func (s *supervisorProc) cleanup(t *testing.T) {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	// A node outlives a killed supervisor, because it runs in a process
	// group of its own.
	for _, ev := range s.find("node starting") {
		if pid, ok := ev["pid"].(float64); ok && isRelayProcess(int(pid)) {
			_ = syscall.Kill(int(pid), syscall.SIGKILL)
		}
	}
	if t.Failed() {
		t.Logf("supervisor log (last 8 KiB):\n%s", lastText(s.logText(), 8192))
	}
}

// isRelayProcess reports whether pid runs the test's relay binary.
func isRelayProcess(pid int) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.HasPrefix(string(cmdline), binPath+"\x00")
}

func (s *supervisorProc) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.text.String()
}

// find returns the log lines whose message is msg.
func (s *supervisorProc) find(msg string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, ev := range s.events {
		if ev["msg"] == msg {
			out = append(out, ev)
		}
	}
	return out
}

// waitFor waits until the log has a line with message msg and returns the
// first one.
func (s *supervisorProc) waitFor(t *testing.T, msg string, timeout time.Duration) map[string]any {
	t.Helper()
	require.Eventually(t, func() bool { return len(s.find(msg)) > 0 }, timeout, 20*time.Millisecond,
		"the supervisor never logged %q", msg)
	return s.find(msg)[0]
}

// scaledNode is a static node of the autoscale test: fixed addresses, so
// that HAProxy's configuration and the supervisor's can name them.
type scaledNode struct {
	name       string
	httpAddr   string
	agentPort  int
	gossipAddr string
	configPath string
	proc       *nodeProc
}

// scalePort returns a loopback port free for TCP and UDP (gossip uses both)
// at the time of the call.
func scalePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		port := ln.Addr().(*net.TCPAddr).Port
		udp, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		_ = ln.Close()
		if err == nil {
			_ = udp.Close()
			return port
		}
	}
	t.Fatal("no loopback port free for both TCP and UDP after 50 tries")
	return 0
}

// newScaledNode writes the configuration of a node that joins seed (none
// for ""), with fast membership timers, short retries and a capacity of
// autoscaleMaxConnections hub connections.
func newScaledNode(t *testing.T, name, seed string) *scaledNode {
	t.Helper()
	dir := t.TempDir()
	n := &scaledNode{
		name:       name,
		httpAddr:   fmt.Sprintf("127.0.0.1:%d", scalePort(t)),
		agentPort:  scalePort(t),
		gossipAddr: fmt.Sprintf("127.0.0.1:%d", scalePort(t)),
		configPath: filepath.Join(dir, "config.yaml"),
	}
	seeds := []string{}
	if seed != "" {
		seeds = []string{seed}
	}
	sum := sha256.Sum256([]byte(testAPIKey))
	cfg := map[string]any{
		"log":     map[string]any{"level": "info", "format": "json"},
		"http":    map[string]any{"listen": n.httpAddr, "shutdown_timeout": "5s"},
		"storage": map[string]any{"dir": filepath.Join(dir, "data")},
		"health":  map[string]any{"agent_listen": fmt.Sprintf("127.0.0.1:%d", n.agentPort)},
		"auth": map[string]any{
			"jwt": map[string]any{"hs256_secret": testSecret},
			"clients": []any{map[string]any{
				"id": "acme", "api_key_sha256": hex.EncodeToString(sum[:]), "admin": true,
			}},
		},
		"limits":   map[string]any{"max_connections": autoscaleMaxConnections},
		"delivery": map[string]any{"retry_base": "1s", "retry_max": "2s", "max_attempts": 100},
		"cluster": map[string]any{
			"node_id": name, "gossip_listen": n.gossipAddr, "seeds": seeds,
			"peer_listen": fmt.Sprintf("127.0.0.1:%d", scalePort(t)), "secret": autoscaleClusterSecret,
			"probe_interval": "100ms", "probe_timeout": "50ms", "gossip_interval": "20ms",
			"push_pull_interval": "1s", "drain_timeout": "10s",
		},
	}
	b, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(n.configPath, b, 0o600))
	return n
}

// scaleFront is HAProxy started from deploy/haproxy.cfg.
type scaleFront struct {
	url    string // http://127.0.0.1:PORT
	socket string // runtime API socket
	cmd    *exec.Cmd
	logs   syncBuffer
}

// syncBuffer is a strings.Builder that a process may write to while the
// test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func lastText(s string, n int) string {
	return s[max(0, len(s)-n):]
}

// startScaleFront fills deploy/haproxy.cfg with a server line per node in
// place of each "# @servers@" line, as the template's header describes,
// starts HAProxy and waits until the front answers /health/ready.
func startScaleFront(t *testing.T, nodes []*scaledNode) *scaleFront {
	t.Helper()
	haproxy, err := exec.LookPath("haproxy")
	require.NoError(t, err, "haproxy is not on the PATH: install the Debian package haproxy "+
		"(apt-get install haproxy); the autoscale test runs the relay behind it")
	template, err := os.ReadFile("deploy/haproxy.cfg")
	require.NoError(t, err)
	marker := regexp.MustCompile(`(?m)^([ \t]*)# @servers@[ \t]*$`)
	require.Len(t, marker.FindAllIndex(template, -1), 2, "server markers in deploy/haproxy.cfg")
	cfg := marker.ReplaceAllStringFunc(string(template), func(line string) string {
		indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
		var lines []string
		for _, n := range nodes {
			lines = append(lines, fmt.Sprintf("%sserver %s %s agent-port %d", indent, n.name, n.httpAddr, n.agentPort))
		}
		return strings.Join(lines, "\n")
	})
	dir, err := os.MkdirTemp("", "esh3artech-as-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))

	front := &scaleFront{url: fmt.Sprintf("http://127.0.0.1:%d", scalePort(t)), socket: filepath.Join(dir, "admin.sock")}
	front.cmd = exec.Command(haproxy, "-db", "-f", cfgPath)
	front.cmd.Env = append(os.Environ(), "RELAY_FRONT_BIND="+strings.TrimPrefix(front.url, "http://"),
		"RELAY_STATS_SOCKET="+front.socket)
	front.cmd.Stdout, front.cmd.Stderr = &front.logs, &front.logs
	require.NoError(t, front.cmd.Start())
	t.Cleanup(func() {
		_ = front.cmd.Process.Kill()
		_ = front.cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy output (last 4 KiB):\n%s", lastText(front.logs.String(), 4096))
		}
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get(front.url + "/health/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond, "the front never answered /health/ready")
	return front
}

// scaleSender posts messages through the front from several goroutines,
// each paced by a ticker, until stopped or until max messages were sent.
type scaleSender struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sent   atomic.Int64
	failed atomic.Int64 // requests without a 202

	mu       sync.Mutex
	answered map[string]string // message id -> recipient phone
}

func startScaleSender(front string, phones []string, senders, max int) *scaleSender {
	ctx, cancel := context.WithCancel(context.Background())
	s := &scaleSender{cancel: cancel, answered: map[string]string{}}
	for range senders {
		s.wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				i := s.sent.Add(1)
				if i > int64(max) {
					return
				}
				phone := phones[int(i)%len(phones)]
				status, id, err := sendMessage(ctx, client, front, phone, fmt.Sprintf("autoscale %d", i))
				if err != nil || status != http.StatusAccepted {
					s.failed.Add(1)
					continue
				}
				s.mu.Lock()
				s.answered[id] = phone
				s.mu.Unlock()
			}
		})
	}
	return s
}

func (s *scaleSender) stop() {
	s.cancel()
	s.wg.Wait()
}

func (s *scaleSender) answeredIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.answered))
	for id := range s.answered {
		ids = append(ids, id)
	}
	return ids
}

// waitAnsweredMore waits until n more messages than now were answered.
func (s *scaleSender) waitAnsweredMore(t *testing.T, n int) {
	t.Helper()
	want := len(s.answeredIDs()) + n
	require.Eventually(t, func() bool { return len(s.answeredIDs()) >= want }, 30*time.Second,
		10*time.Millisecond, "the front answered fewer than %d messages", want)
}

// scaleMessageStatus reads a message's status. It returns the HTTP status
// negated when it is not 200, and -1 when the request fails.
func scaleMessageStatus(client *http.Client, base, id string) int {
	req, err := http.NewRequest(http.MethodGet, base+"/api/v1/messages/"+id, nil)
	if err != nil {
		return -1
	}
	req.Header.Set("X-Api-Key", testAPIKey)
	resp, err := client.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var m struct {
		Status int `json:"status"`
	}
	if resp.StatusCode != http.StatusOK {
		return -resp.StatusCode
	}
	if json.NewDecoder(resp.Body).Decode(&m) != nil {
		return -1
	}
	return m.Status
}

// scalePending polls every id until settled accepts its status or the
// timeout passes, and returns the last status of each id that never
// settled.
func scalePending(client *http.Client, base string, ids []string, timeout time.Duration,
	settled func(id string, status int) bool) map[string]int {
	pending := map[string]int{}
	for _, id := range ids {
		pending[id] = 0
	}
	deadline := time.Now().Add(timeout)
	for len(pending) > 0 && time.Now().Before(deadline) {
		for id := range pending {
			if status := scaleMessageStatus(client, base, id); settled(id, status) {
				delete(pending, id)
			} else {
				pending[id] = status
			}
		}
		if len(pending) > 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	return pending
}

// describePending returns, for each pending message, its last status, its
// recipient, the recipient's owner in the ring with auto-1, and whether the
// recipient acknowledged it.
func describePending(pending map[string]int, sender *scaleSender, users map[string]*ackingUser,
	owned map[string][]string) []string {
	var out []string
	for id, status := range pending {
		sender.mu.Lock()
		phone := sender.answered[id]
		sender.mu.Unlock()
		owner := ""
		for node, phones := range owned {
			if slices.Contains(phones, phone) {
				owner = node
			}
		}
		_, acked := users[phone].acked.Load(id)
		out = append(out, fmt.Sprintf("%s: status %d, recipient %s owned by %s, acknowledged %t",
			id, status, phone, owner, acked))
	}
	return out
}

// isDelivered settles a message that reads Delivered.
func isDelivered(_ string, status int) bool { return status == 2 }

// writeSupervisorConfig writes deploy/autoscale.yaml with the test's
// nodes, socket and short windows, keeping its backend options.
func writeSupervisorConfig(t *testing.T, nodes []*scaledNode, socket, baseConfig, dir string) string {
	t.Helper()
	b, err := os.ReadFile("deploy/autoscale.yaml")
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal(b, &cfg))
	cfg["log"] = map[string]any{"level": "debug", "format": "json"}
	cfg["interval"] = "250ms"
	cfg["scrape_timeout"] = "1s"
	cfg["min_nodes"] = 2
	cfg["max_nodes"] = 3
	cfg["cooldown"] = "2s"
	cfg["scale_out"] = map[string]any{"threshold": 0.8, "window": "1s"}
	cfg["scale_in"] = map[string]any{"threshold": 0.3, "window": "2s"}
	cfg["nodes"] = []string{nodes[0].httpAddr, nodes[1].httpAddr}
	launch := cfg["launch"].(map[string]any)
	launch["base_config"] = baseConfig
	launch["dir"] = dir
	launch["seeds"] = []string{nodes[0].gossipAddr}
	launch["ready_timeout"] = "30s"
	launch["stop_timeout"] = "30s"
	cfg["haproxy"].(map[string]any)["socket"] = socket
	out, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "autoscale.yaml")
	require.NoError(t, os.WriteFile(path, out, 0o600))
	return path
}

// phonesByOwner returns perNode local phone numbers owned by each member of
// a ring of ids.
func phonesByOwner(ids []string, perNode int) map[string][]string {
	var members []cluster.Member
	for _, id := range ids {
		members = append(members, cluster.Member{ID: id})
	}
	ring := cluster.NewRing(members, 0)
	out := map[string][]string{}
	missing := func(id string) bool { return len(out[id]) < perNode }
	for i := 0; i < 100000 && slices.ContainsFunc(ids, missing); i++ {
		local := fmt.Sprintf("7762%05d", i)
		owner := ring.Owner("967" + local).ID
		if missing(owner) {
			out[owner] = append(out[owner], local)
		}
	}
	return out
}

// hubClients connects count idle mobile users through the front; each
// connection counts towards its node's load.
func hubClients(t *testing.T, front string, count int) []*signalr.Client {
	t.Helper()
	var clients []*signalr.Client
	for i := range count {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := signalr.Dial(ctx, front+"/online-mobile-user", signalr.Options{
			AccessToken: mobileToken(t, fmt.Sprintf("7763%05d", i)),
		})
		cancel()
		require.NoError(t, err, "load connection %d", i)
		t.Cleanup(func() { _ = c.Close() })
		clients = append(clients, c)
	}
	return clients
}

// nodeMetrics returns the metric families on a node's /metrics.
func nodeMetrics(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return families
}

// acceptedPosts returns how many POST /api/v1/messages the node answered
// with 202, from its esh3artech_api_answer_seconds histogram.
func acceptedPosts(t *testing.T, addr string) uint64 {
	t.Helper()
	var n uint64
	for _, m := range nodeMetrics(t, addr)["esh3artech_api_answer_seconds"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["route"] == "/api/v1/messages" && labels["status"] == "202" {
			n += m.GetHistogram().GetSampleCount()
		}
	}
	return n
}

// delivered returns the node's esh3artech_messages_delivered_total.
func delivered(t *testing.T, addr string) float64 {
	t.Helper()
	var sum float64
	for _, m := range nodeMetrics(t, addr)["esh3artech_messages_delivered_total"].GetMetric() {
		sum += m.GetCounter().GetValue()
	}
	return sum
}

// backendsWithServer returns the backends that list server name.
func backendsWithServer(t *testing.T, api *autoscale.RuntimeAPI, name string) []string {
	t.Helper()
	var out []string
	for _, backend := range []string{"be_api", "be_hub"} {
		names, err := api.ServerNames(context.Background(), backend)
		require.NoError(t, err)
		if slices.Contains(names, name) {
			out = append(out, backend)
		}
	}
	return out
}

// TestAutoscaleAddsAndRemovesNode runs two static nodes behind HAProxy and
// the autoscale supervisor. Idle hub connections through the front push
// the average load past 0.8, so the supervisor starts auto-1 and adds it
// to both backends; REST calls then reach it and it delivers for the
// recipients it owns. Closing the connections brings the load under 0.3,
// so the supervisor drains and removes auto-1. Business clients send
// through the front throughout, and every answered message must end
// Delivered.
func TestAutoscaleAddsAndRemovesNode(t *testing.T) {
	n1 := newScaledNode(t, "n1", "")
	n2 := newScaledNode(t, "n2", n1.gossipAddr)
	// The supervisor replaces every key that differs between nodes.
	base := newScaledNode(t, "unused", n1.gossipAddr)
	n1.proc = startTestNode(t, n1.configPath)
	n2.proc = startTestNode(t, n2.configPath)
	front := startScaleFront(t, []*scaledNode{n1, n2})
	api := autoscale.NewRuntimeAPI(front.socket, 5*time.Second)

	// Two recipients owned by each node of the ring that auto-1 joins, all
	// connected to n1, which never leaves. They are 6 of n1's capacity of 10.
	owned := phonesByOwner([]string{"n1", "n2", "auto-1"}, 2)
	var phones []string
	users := map[string]*ackingUser{}
	for _, id := range []string{"n1", "n2", "auto-1"} {
		for _, phone := range owned[id] {
			phones = append(phones, phone)
			users[phone] = connectAckingUser(t, n1.proc, phone)
		}
	}
	require.Len(t, phones, 6)
	sender := startScaleSender(front.url, phones, 2, 20000)
	defer sender.stop()

	launchDir := filepath.Join(t.TempDir(), "autoscale")
	sup := startSupervisor(t, writeSupervisorConfig(t, []*scaledNode{n1, n2}, front.socket, base.configPath,
		launchDir))
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(launchDir, "auto-1", "node.log"))
			t.Logf("auto-1 log (last 8 KiB):\n%s", lastText(string(b), 8192))
		}
	})
	sup.waitFor(t, "autoscale supervisor started", 30*time.Second)

	// 6 recipients and 14 idle connections on 2 nodes of capacity 10 make
	// an average load of 1.0; with auto-1 it falls to 0.67.
	idle := hubClients(t, front.url, 14)
	added := sup.waitFor(t, "node added", 60*time.Second)
	require.Equal(t, "auto-1", added["node"])
	autoAddr := added["addr"].(string)
	decisions := slices.DeleteFunc(sup.find("autoscale decision"), func(ev map[string]any) bool {
		return ev["action"] != "scale_out"
	})
	require.Len(t, decisions, 1, "scale-out decisions")
	require.Greater(t, decisions[0]["average"].(float64), 0.8)
	require.Contains(t, decisions[0]["loads"], n1.httpAddr)
	require.Contains(t, decisions[0]["loads"], n2.httpAddr)
	require.EqualValues(t, 2, decisions[0]["nodes"])
	require.Equal(t, []string{"be_api", "be_hub"}, backendsWithServer(t, api, "auto-1"))

	require.Eventually(t, func() bool { return acceptedPosts(t, autoAddr) > 0 }, 30*time.Second,
		20*time.Millisecond, "HAProxy never sent a REST request to auto-1")
	require.Eventually(t, func() bool { return delivered(t, autoAddr) > 0 }, 30*time.Second,
		20*time.Millisecond, "auto-1 never delivered a message to the recipients it owns")
	sender.waitAnsweredMore(t, 50)
	client := &http.Client{Timeout: 10 * time.Second}
	pending := scalePending(client, n1.proc.url(""), sender.answeredIDs(), 60*time.Second, isDelivered)
	require.Empty(t, pending, "messages not Delivered within 60s while auto-1 runs, with their status")

	// Closing the idle connections leaves 6 of 30: an average of 0.2.
	for _, c := range idle {
		require.NoError(t, c.Close())
	}
	removed := sup.waitFor(t, "node removed", 60*time.Second)
	require.Equal(t, "auto-1", removed["node"])
	require.Empty(t, backendsWithServer(t, api, "auto-1"))
	pid := int(sup.find("node starting")[0]["pid"].(float64))
	require.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "auto-1 still runs after its removal")
	require.Len(t, sup.find("node added"), 1, "nodes added")

	sender.waitAnsweredMore(t, 50)
	sender.stop()
	ids := sender.answeredIDs()
	t.Logf("%d messages answered, %d requests failed", len(ids), sender.failed.Load())

	// A node that leaves hands over its queue, its inboxes and the messages
	// it delivered, so every answered message reads Delivered without it.
	pending = scalePending(client, n1.proc.url(""), ids, 60*time.Second, isDelivered)
	require.Empty(t, describePending(pending, sender, users, owned),
		"answered messages not Delivered within 60s, of %d", len(ids))
	for _, phone := range phones {
		acked := 0
		users[phone].acked.Range(func(_, _ any) bool { acked++; return true })
		require.Positive(t, acked, "recipient %s acknowledged nothing", phone)
	}

	// A second scale-out starts auto-1 again on its data folder, and
	// stopping the supervisor drains and removes it.
	hubClients(t, front.url, 14)
	require.Eventually(t, func() bool { return len(sup.find("node added")) == 2 }, 60*time.Second,
		20*time.Millisecond, "the supervisor did not add a node again")
	require.Equal(t, "auto-1", sup.find("node added")[1]["node"])
	require.NoError(t, sup.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-sup.exited:
	case <-time.After(60 * time.Second):
		t.Fatal("the supervisor did not exit within 60s of SIGTERM")
	}
	require.Equal(t, 0, sup.cmd.ProcessState.ExitCode())
	require.Len(t, sup.find("node removed"), 2, "nodes removed")
	require.NotEmpty(t, sup.find("autoscale supervisor stopped"))
	require.Empty(t, backendsWithServer(t, api, "auto-1"))
	pid = int(sup.find("node starting")[1]["pid"].(float64))
	require.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "auto-1 outlived the supervisor")
}
