package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esh3artech/esh3artech/hub/signalr"
)

// The tests in this file run real relay processes behind a real HAProxy
// configured from deploy/haproxy.cfg, and drive deploy/local-cluster.sh.

const (
	haproxyTemplate = "deploy/haproxy.cfg"
	frontHubPath    = "/online-mobile-user"
	// statusDeliveredCode is the REST API's status of an acknowledged message.
	statusDeliveredCode = 2
	// clusterTestSecret is cluster.secret of the test nodes.
	clusterTestSecret = "cluster-e2e-secret-0123456789abcdef-0123456789"
)

// requireHAProxy returns the path of the haproxy binary, failing the test
// when it is not installed.
func requireHAProxy(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("haproxy")
	require.NoError(t, err, "haproxy is not on the PATH: install the Debian package haproxy "+
		"(apt-get install haproxy); the cluster tests run the relay behind it")
	return path
}

// freeLoopbackPort returns a port of 127.0.0.1 that is free for TCP and UDP
// (gossip uses both) at the time of the call.
func freeLoopbackPort(t *testing.T) int {
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

// clusterNode is one relay of a test cluster: fixed addresses and a data
// folder, so that it can be killed and started again as the same node.
type clusterNode struct {
	name       string
	httpAddr   string
	agentPort  int
	gossipAddr string
	configPath string
	proc       *nodeProc
}

// newClusterNode writes the configuration of a node that joins seed (none
// for "").
func newClusterNode(t *testing.T, name, seed string) *clusterNode {
	t.Helper()
	dir := t.TempDir()
	n := &clusterNode{
		name:       name,
		httpAddr:   fmt.Sprintf("127.0.0.1:%d", freeLoopbackPort(t)),
		agentPort:  freeLoopbackPort(t),
		gossipAddr: fmt.Sprintf("127.0.0.1:%d", freeLoopbackPort(t)),
	}
	seeds := "[]"
	if seed != "" {
		seeds = fmt.Sprintf("[%q]", seed)
	}
	sum := apiKeyHash(testAPIKey)
	config := fmt.Sprintf(`
log: {level: info, format: json}
http: {listen: %q}
storage: {dir: %q}
health: {agent_listen: "127.0.0.1:%d"}
auth:
  jwt: {hs256_secret: %q}
  clients:
    - {id: acme, api_key_sha256: %q, admin: true}
# A lost send is repeated after 1 to 3 s, and never dead-lettered during
# the test.
delivery: {retry_base: 1s, retry_max: 3s, max_attempts: 100}
# Membership keeps its default timers: with 100 ms probes, busy nodes on two
# cores declared each other failed.
cluster:
  node_id: %q
  gossip_listen: %q
  peer_listen: "127.0.0.1:%d"
  seeds: %s
  secret: %q
`, n.httpAddr, filepath.Join(dir, "data"), n.agentPort, testSecret, sum, name, n.gossipAddr,
		freeLoopbackPort(t), seeds, clusterTestSecret)
	n.configPath = filepath.Join(dir, "config.yaml")
	require.NoError(t, os.WriteFile(n.configPath, []byte(config), 0o600))
	return n
}

// apiKeyHash returns the hex SHA-256 of an API key, as auth.clients stores it.
func apiKeyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// start runs the node, or runs it again on the same data and ports.
func (n *clusterNode) start(t *testing.T) {
	t.Helper()
	n.proc = startTestNode(t, n.configPath)
	require.Equal(t, n.httpAddr, n.proc.addr)
}

// serverLine is the HAProxy server line of the node, in the format that
// deploy/haproxy.cfg documents.
func (n *clusterNode) serverLine() string {
	return fmt.Sprintf("server %s %s agent-port %d", n.name, n.httpAddr, n.agentPort)
}

// ringSize returns the member count of the last "cluster ring changed"
// line in the node's log, or 0 before the first.
func (n *clusterNode) ringSize() int {
	size := 0
	for _, line := range strings.Split(n.proc.logText(), "\n") {
		var ev struct {
			Msg     string `json:"msg"`
			Members int    `json:"members"`
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Msg == "cluster ring changed" {
			size = ev.Members
		}
	}
	return size
}

// waitRing waits until each node's last ring has the given member count.
func waitRing(t *testing.T, members int, nodes ...*clusterNode) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, n := range nodes {
			if n.ringSize() != members {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "the nodes never had a ring of %d members", members)
}

// apiRequests returns how many REST requests the node served since it
// started, from its esh3artech_api_answer_seconds histogram.
func (n *clusterNode) apiRequests(t *testing.T) int {
	t.Helper()
	return int(n.metric(t, "esh3artech_api_answer_seconds_count"))
}

// metric returns the sum of every series of a metric in the node's
// /metrics.
func (n *clusterNode) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + n.httpAddr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (!strings.HasPrefix(rest, " ") && !strings.HasPrefix(rest, "{")) {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		require.NoError(t, err, "metric line %q", line)
		total += v
	}
	require.NoError(t, sc.Err())
	return total
}

// haproxyFront is a running HAProxy in front of test nodes.
type haproxyFront struct {
	url      string // http://127.0.0.1:PORT
	socket   string // runtime API socket
	template string // deploy/haproxy.cfg
	cmd      *exec.Cmd
	logs     lockedBuffer
}

// lockedBuffer is a bytes.Buffer that a process may write to while a test
// reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fillHAProxyTemplate replaces every "# @servers@" line of the template
// with the nodes' server lines, at the same indentation.
func fillHAProxyTemplate(template string, nodes []*clusterNode) string {
	marker := regexp.MustCompile(`(?m)^([ \t]*)# @servers@[ \t]*$`)
	return marker.ReplaceAllStringFunc(template, func(line string) string {
		indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
		var lines []string
		for _, n := range nodes {
			lines = append(lines, indent+n.serverLine())
		}
		return strings.Join(lines, "\n")
	})
}

// startHAProxy checks and starts HAProxy with deploy/haproxy.cfg filled in
// for nodes, and waits until the front returns 200 for /health/ready.
func startHAProxy(t *testing.T, nodes []*clusterNode) *haproxyFront {
	t.Helper()
	haproxy := requireHAProxy(t)
	template, err := os.ReadFile(haproxyTemplate)
	require.NoError(t, err)
	dir := t.TempDir()
	cfg := fillHAProxyTemplate(string(template), nodes)
	require.Equal(t, 2, strings.Count(cfg, nodes[0].serverLine()+"\n"),
		"deploy/haproxy.cfg must have one server marker in each backend")
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o600))

	front := &haproxyFront{
		url:      fmt.Sprintf("http://127.0.0.1:%d", freeLoopbackPort(t)),
		socket:   filepath.Join(dir, "haproxy.sock"),
		template: string(template),
	}
	env := append(os.Environ(), "RELAY_FRONT_BIND="+strings.TrimPrefix(front.url, "http://"),
		"RELAY_STATS_SOCKET="+front.socket)
	check := exec.Command(haproxy, "-c", "-f", cfgPath)
	check.Env = env
	out, err := check.CombinedOutput()
	require.NoError(t, err, "haproxy -c rejected the filled-in %s:\n%s", haproxyTemplate, out)

	front.cmd = exec.Command(haproxy, "-db", "-f", cfgPath)
	front.cmd.Env = env
	front.cmd.Stdout, front.cmd.Stderr = &front.logs, &front.logs
	require.NoError(t, front.cmd.Start())
	t.Cleanup(func() {
		_ = front.cmd.Process.Signal(syscall.SIGKILL)
		_ = front.cmd.Wait()
		if t.Failed() {
			t.Logf("haproxy output (last 4 KiB):\n%s", lastBytes(front.logs.String(), 4096))
		}
	})
	ready := pollUntil(30*time.Second, 50*time.Millisecond, func() bool {
		resp, err := http.Get(front.url + "/health/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	require.True(t, ready, "the front never answered /health/ready with 200")
	return front
}

func lastBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// command sends one command to HAProxy's runtime API and returns its
// response.
func (h *haproxyFront) command(t *testing.T, command string) string {
	t.Helper()
	conn, err := net.DialTimeout("unix", h.socket, 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = io.WriteString(conn, command+"\n")
	require.NoError(t, err)
	out, err := io.ReadAll(conn)
	require.NoError(t, err, "runtime API command %q", command)
	return string(out)
}

// serverStats returns the "show stat" fields of every server, keyed by
// backend/server and then by field name.
func (h *haproxyFront) serverStats(t *testing.T) map[string]map[string]string {
	t.Helper()
	out := strings.TrimPrefix(h.command(t, "show stat"), "# ")
	records, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	require.NoError(t, err, "show stat output:\n%s", out)
	require.NotEmpty(t, records)
	header := records[0]
	stats := map[string]map[string]string{}
	for _, rec := range records[1:] {
		fields := map[string]string{}
		for i, name := range header {
			if i < len(rec) {
				fields[name] = rec[i]
			}
		}
		if fields["svname"] != "FRONTEND" && fields["svname"] != "BACKEND" {
			stats[fields["pxname"]+"/"+fields["svname"]] = fields
		}
	}
	return stats
}

// waitServers waits until every named server is in a state that matches
// in both backends, such as "UP" or "DOWN".
func (h *haproxyFront) waitServers(t *testing.T, state string, names ...string) {
	t.Helper()
	var states []string
	reached := pollUntil(30*time.Second, 50*time.Millisecond, func() bool {
		stats := h.serverStats(t)
		states = states[:0]
		ok := true
		for _, name := range names {
			for _, backend := range []string{"be_api", "be_hub"} {
				status := stats[backend+"/"+name]["status"]
				states = append(states, backend+"/"+name+" "+status)
				// "UP 1/2" is a server that failed a check and may go down.
				if !strings.HasPrefix(status, state) || (state == "UP" && status != "UP") {
					ok = false
				}
			}
		}
		return ok
	})
	require.True(t, reached, "servers %v never became %s; last states: %v", names, state, states)
}

// waitAPIWeights waits until the agents of the named servers reported full
// weight (the configured 100) to the REST backend.
func (h *haproxyFront) waitAPIWeights(t *testing.T, names ...string) {
	t.Helper()
	require.Eventually(t, func() bool {
		stats := h.serverStats(t)
		for _, name := range names {
			if stats["be_api/"+name]["weight"] != "100" {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "the agents of %v never reported full weight", names)
}

// defaultServerOptions returns the options of the default-server line of
// a backend in deploy/haproxy.cfg. Servers added through the runtime API
// do not inherit them, so they are passed to "add server".
func (h *haproxyFront) defaultServerOptions(t *testing.T, backend string) string {
	t.Helper()
	section := regexp.MustCompile(`(?ms)^backend ` + backend + `\n(.*?)(?:^\S|\z)`).FindStringSubmatch(h.template)
	require.NotNil(t, section, "backend %s not found in %s", backend, haproxyTemplate)
	line := regexp.MustCompile(`(?m)^\s*default-server (.*)$`).FindStringSubmatch(section[1])
	require.NotNil(t, line, "backend %s of %s has no default-server line", backend, haproxyTemplate)
	return strings.TrimSpace(line[1])
}

// addServer adds a node to both backends through the runtime API, with
// the backends' default-server options, and enables its checks.
func (h *haproxyFront) addServer(t *testing.T, n *clusterNode) {
	t.Helper()
	for _, backend := range []string{"be_api", "be_hub"} {
		options := h.defaultServerOptions(t, backend)
		ref := backend + "/" + n.name
		out := h.command(t, fmt.Sprintf("add server %s %s %s agent-port %d", ref, n.httpAddr, options, n.agentPort))
		require.Contains(t, out, "New server registered", "add server %s", ref)
		if strings.Contains(options, "agent-check") {
			require.Equal(t, "", strings.TrimSpace(h.command(t, "enable agent "+ref)), "enable agent %s", ref)
		}
		require.Equal(t, "", strings.TrimSpace(h.command(t, "enable health "+ref)), "enable health %s", ref)
		require.Equal(t, "", strings.TrimSpace(h.command(t, "enable server "+ref)), "enable server %s", ref)
	}
}

// recipientUser is one entry of the USERS_FILE of cluster-recipients.mjs.
type recipientUser struct {
	Phone     string `json:"phone"`
	Token     string `json:"token"`
	Transport string `json:"transport"`
}

// recipientEvent is one output line of cluster-recipients.mjs. The script's
// header comment describes each event.
type recipientEvent struct {
	Event     string `json:"event"`
	User      string `json:"user"`
	ID        string `json:"id"`
	Transport string `json:"transport"`
	Error     string `json:"error"`
	At        int64  `json:"at"`
	AckedAt   int64  `json:"ackedAt"`
}

// recipients is a running cluster-recipients.mjs process.
type recipients struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr lockedBuffer
	exited chan struct{}

	mu        sync.Mutex
	connected map[string]string   // user -> transport
	connects  int                 // connected events, reconnections included
	received  map[string][]string // message id -> users that received it
	acked     map[string]string   // message id -> user whose ack completed
	again     []recipientEvent
	ackFailed int // ackFailed events
	done      *recipientEvent
}

// startRecipients connects users through the front with the official
// JavaScript client.
func startRecipients(t *testing.T, front string, users []recipientUser) *recipients {
	t.Helper()
	requireNodeModules(t)
	b, err := json.Marshal(users)
	require.NoError(t, err)
	usersPath := filepath.Join(t.TempDir(), "users.json")
	require.NoError(t, os.WriteFile(usersPath, b, 0o600))

	r := &recipients{
		connected: map[string]string{}, received: map[string][]string{}, acked: map[string]string{},
		exited: make(chan struct{}),
	}
	r.cmd = exec.Command("node", "cluster-recipients.mjs", front+frontHubPath, usersPath, "300")
	r.cmd.Dir = e2eScripts
	r.cmd.Stderr = &r.stderr
	r.stdin, err = r.cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := r.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, r.cmd.Start())
	go func() {
		defer close(r.exited)
		r.read(stdout)
		_ = r.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		<-r.exited
		if t.Failed() {
			t.Logf("cluster-recipients.mjs stderr (last 4 KiB):\n%s", lastBytes(r.stderr.String(), 4096))
		}
	})
	return r
}

func (r *recipients) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var ev recipientEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		r.mu.Lock()
		switch ev.Event {
		case "connected":
			r.connected[ev.User] = ev.Transport
			r.connects++
		case "received":
			r.received[ev.ID] = append(r.received[ev.ID], ev.User)
		case "acked":
			r.acked[ev.ID] = ev.User
		case "again":
			r.again = append(r.again, ev)
		case "ackFailed":
			r.ackFailed++
		case "done":
			r.done = &ev
		}
		r.mu.Unlock()
	}
}

// transports returns how many users connected with each transport.
func (r *recipients) transports() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	counts := map[string]int{}
	for _, tr := range r.connected {
		counts[tr]++
	}
	return counts
}

// checkReceived returns the ids of want that their recipient did not
// receive, and the ids that another user received.
func (r *recipients) checkReceived(want map[string]string) (missing, misrouted []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, phone := range want {
		users := r.received[id]
		if !slices.Contains(users, phone) {
			missing = append(missing, id)
		}
		if slices.ContainsFunc(users, func(u string) bool { return u != phone }) {
			misrouted = append(misrouted, id)
		}
	}
	return missing, misrouted
}

// ackCount returns how many messages had an ack complete.
func (r *recipients) ackCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.acked)
}

// stop closes the script's standard input, waits for its final line and
// returns the messages received again after their ack completed, in the
// form of problems.
func (r *recipients) stop(t *testing.T) []string {
	t.Helper()
	require.NoError(t, r.stdin.Close())
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("cluster-recipients.mjs did not exit within 30s of its input closing")
	}
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	require.NotNil(t, done, "cluster-recipients.mjs exited without its done line")
	again, _ := r.problems()
	return again
}

// problems returns the messages received again after their ack completed,
// as "id to user: received N ms after its ack", and how many acks failed.
func (r *recipients) problems() (again []string, ackFailed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range r.again {
		again = append(again, fmt.Sprintf("%s to %s: received %d ms after its ack", ev.ID, ev.User,
			ev.At-ev.AckedAt))
	}
	return again, r.ackFailed
}

// answeredSet records the id and recipient of every message the front
// answered with 202.
type answeredSet struct {
	mu  sync.Mutex
	ids map[string]string // message id -> recipient phone
}

func (a *answeredSet) add(id, phone string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ids[id] = phone
}

func (a *answeredSet) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ids)
}

func (a *answeredSet) snapshot() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.ids)
}

// clusterLoad sends messages through the front from several goroutines
// until stopped or until they have sent limit messages together. Each
// sender sends at most 50 a second, which leaves the two cores to the nodes
// and clients.
type clusterLoad struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	failed  atomic.Int64 // requests without a 202
	counter atomic.Int64 // requests started
}

func startClusterLoad(front string, users []recipientUser, answered *answeredSet, senders, limit int) *clusterLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &clusterLoad{cancel: cancel}
	for s := range senders {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				i := l.counter.Add(1)
				if i > int64(limit) {
					return
				}
				phone := users[int(i)%len(users)].Phone
				status, id, err := sendMessage(ctx, client, front, phone, fmt.Sprintf("load %d from sender %d", i, s))
				if err == nil && status == http.StatusAccepted {
					answered.add(id, phone)
				} else {
					l.failed.Add(1)
				}
			}
		}()
	}
	return l
}

// stop stops the senders and waits for them.
func (l *clusterLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

// wait waits until the senders have sent limit messages.
func (l *clusterLoad) wait() {
	l.wg.Wait()
	l.cancel()
}

// waitAnswered waits until answered holds at least n messages.
func waitAnswered(t *testing.T, answered *answeredSet, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return answered.len() >= n }, 60*time.Second,
		10*time.Millisecond, "the front answered fewer than %d messages", n)
}

// messageStatus reads a message's status through the front, or -1 when the
// request fails.
func messageStatus(client *http.Client, front, id string) int {
	req, err := http.NewRequest(http.MethodGet, front+"/api/v1/messages/"+id, nil)
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
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&m) != nil {
		return -1
	}
	return m.Status
}

// clusterUsers returns count mobile users with tokens, cycling through the
// three transports.
func clusterUsers(t *testing.T, count int) []recipientUser {
	t.Helper()
	transports := []string{"WebSockets", "ServerSentEvents", "LongPolling"}
	var users []recipientUser
	for i := range count {
		phone := fmt.Sprintf("7791%05d", i)
		users = append(users, recipientUser{
			Phone: phone, Token: mobileToken(t, phone), Transport: transports[i%len(transports)],
		})
	}
	return users
}

// TestClusterBehindHAProxy runs three nodes behind HAProxy and measures how
// REST requests spread. Then it kills one node with SIGKILL, restarts it and
// adds a fourth node through the runtime API, while business clients send
// and JavaScript clients on all three transports acknowledge.
func TestClusterBehindHAProxy(t *testing.T) {
	nodes := []*clusterNode{newClusterNode(t, "n1", "")}
	for _, name := range []string{"n2", "n3", "n4"} {
		nodes = append(nodes, newClusterNode(t, name, nodes[0].gossipAddr))
	}
	for _, n := range nodes[:3] {
		n.start(t)
	}
	waitRing(t, 3, nodes[:3]...)
	front := startHAProxy(t, nodes[:3])
	front.waitServers(t, "UP", "n1", "n2", "n3")
	front.waitAPIWeights(t, "n1", "n2", "n3")

	users := clusterUsers(t, 30)
	recv := startRecipients(t, front.url, users)
	require.Eventually(t, func() bool {
		counts := recv.transports()
		return counts["WebSockets"]+counts["ServerSentEvents"]+counts["LongPolling"] == len(users)
	}, 60*time.Second, 50*time.Millisecond, "not every user connected through the front")
	require.Equal(t, map[string]int{"WebSockets": 10, "ServerSentEvents": 10, "LongPolling": 10},
		recv.transports())

	// Steady phase: three equal nodes, no failure. Round robin with equal
	// agent weights gives each node a third of the REST requests.
	answered := &answeredSet{ids: map[string]string{}}
	before := make([]int, 3)
	for i, n := range nodes[:3] {
		before[i] = n.apiRequests(t)
	}
	const steady = 900
	steadyLoad := startClusterLoad(front.url, users, answered, 6, steady)
	steadyLoad.wait()
	require.Zero(t, steadyLoad.failed.Load(), "requests failed with three healthy nodes")
	require.Equal(t, steady, answered.len())
	shares := make([]int, 3)
	total := 0
	pollUntil(10*time.Second, 10*time.Millisecond, func() bool {
		total = 0
		for i, n := range nodes[:3] {
			shares[i] = n.apiRequests(t) - before[i]
			total += shares[i]
		}
		return total == steady
	})
	require.Equal(t, steady, total, "REST requests counted by the nodes")
	even := float64(total) / 3
	for i, got := range shares {
		require.LessOrEqual(t, math.Abs(float64(got)-even), 0.1*even,
			"node %s answered %d of %d REST requests; an even share is %.0f (all: %v)",
			nodes[i].name, got, total, even, shares)
	}
	t.Logf("REST requests per node in the steady phase: %v", shares)

	// Failure phase: a node dies mid-stream and comes back on the same data
	// and ports, and a fourth node joins.
	//
	// The node comes back and the fourth joins while messages still wait
	// for acknowledgement, so inboxes move between owners with acks in
	// flight.
	load := startClusterLoad(front.url, users, answered, 4, 20000)
	waitAnswered(t, answered, steady+300)
	nodes[1].proc.kill()
	front.waitServers(t, "DOWN", "n2")
	waitAnswered(t, answered, answered.len()+300)
	load.stop()
	failed := load.failed.Load()
	nodes[1].start(t)
	waitRing(t, 3, nodes[:3]...)
	front.waitServers(t, "UP", "n2")
	load = startClusterLoad(front.url, users, answered, 4, 20000)
	waitAnswered(t, answered, answered.len()+300)
	load.stop()
	failed += load.failed.Load()

	nodes[3].start(t)
	front.addServer(t, nodes[3])
	waitRing(t, 4, nodes...)
	front.waitServers(t, "UP", "n4")
	load = startClusterLoad(front.url, users, answered, 4, 20000)
	require.Eventually(t, func() bool { return nodes[3].apiRequests(t) > 0 }, 30*time.Second,
		10*time.Millisecond, "HAProxy never sent a REST request to the added node")
	waitAnswered(t, answered, answered.len()+300)
	load.stop()
	failed += load.failed.Load()
	t.Logf("%d messages answered; %d requests failed, while a node was down or the load stopped",
		answered.len(), failed)

	// Every answered message reads Delivered through the front, and reached
	// its recipient and no one else. An ack whose completion was lost with
	// its connection still marks the message Delivered, so a few messages may
	// have no completed ack in the script.
	want := answered.snapshot()
	client := &http.Client{Timeout: 10 * time.Second}
	pending := slices.Collect(maps.Keys(want))
	pollUntil(60*time.Second, 100*time.Millisecond, func() bool {
		pending = slices.DeleteFunc(pending, func(id string) bool {
			return messageStatus(client, front.url, id) == statusDeliveredCode
		})
		return len(pending) == 0
	})
	require.Zero(t, len(pending), "answered messages not Delivered through the front, of %d; "+
		"the first with their status: %v", len(want), describeMessages(client, front.url, want, pending, 5))
	missing, misrouted := recv.checkReceived(want)
	require.Zero(t, len(missing), "Delivered messages that the script never received for their "+
		"recipient: %v", firstItems(missing, 5))
	require.Zero(t, len(misrouted), "messages received by a user other than their recipient: %v",
		firstItems(misrouted, 5))

	again := recv.stop(t)
	require.Empty(t, again, "messages received again after their acknowledgement completed")
	t.Logf("%d users connected %d times, reconnections included; %d acks completed for %d answered messages",
		len(users), recv.connects, recv.ackCount(), len(want))
}

// pollUntil calls cond every interval until it returns true or timeout
// passes, and returns its last result.
func pollUntil(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}

func firstItems(s []string, n int) []string {
	return s[:min(n, len(s))]
}

// describeMessages returns "id to phone: status" for up to n of ids, with
// the status read through the front.
func describeMessages(client *http.Client, front string, recipients map[string]string, ids []string, n int) []string {
	var out []string
	for _, id := range ids[:min(n, len(ids))] {
		out = append(out, fmt.Sprintf("%s to %s: %d", id, recipients[id], messageStatus(client, front, id)))
	}
	return out
}

// clusterScript is a running deploy/local-cluster.sh.
type clusterScript struct {
	cmd    *exec.Cmd
	lines  []string // standard output up to the "mobile token" line
	stderr lockedBuffer
	exited chan struct{}
	pids   []int // nodes and HAProxy, as printed
}

// startClusterScript runs deploy/local-cluster.sh with the test binary and
// waits for its report.
func startClusterScript(t *testing.T, args ...string) *clusterScript {
	t.Helper()
	requireHAProxy(t)
	s := &clusterScript{exited: make(chan struct{})}
	s.cmd = exec.Command("bash", append([]string{"deploy/local-cluster.sh", "--bin", binPath}, args...)...)
	s.cmd.Stderr = &s.stderr
	stdout, err := s.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, s.cmd.Start())

	report := make(chan []string, 1)
	go func() {
		defer close(s.exited)
		var lines []string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if strings.HasPrefix(sc.Text(), "mobile token:") {
				report <- lines
			}
		}
		_ = s.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		for _, pid := range s.pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		<-s.exited
		if t.Failed() {
			t.Logf("local-cluster.sh stderr:\n%s", s.stderr.String())
		}
	})
	select {
	case s.lines = <-report:
	case <-s.exited:
		t.Fatalf("local-cluster.sh exited before its report; stderr:\n%s", s.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("local-cluster.sh printed no report within 60s; stderr:\n%s", s.stderr.String())
	}
	pidPattern := regexp.MustCompile(`pid (\d+)`)
	for _, line := range s.lines {
		if m := pidPattern.FindStringSubmatch(line); m != nil {
			pid, err := strconv.Atoi(m[1])
			require.NoError(t, err)
			s.pids = append(s.pids, pid)
		}
	}
	return s
}

// value returns the text after "prefix: " of the first report line that
// starts with it.
func (s *clusterScript) value(t *testing.T, prefix string) string {
	t.Helper()
	for _, line := range s.lines {
		if v, ok := strings.CutPrefix(line, prefix+": "); ok {
			return v
		}
	}
	t.Fatalf("local-cluster.sh printed no %q line; output:\n%s", prefix, strings.Join(s.lines, "\n"))
	return ""
}

// waitExit waits for the script to exit and for every process it started
// to be gone, and returns the script's exit code.
func (s *clusterScript) waitExit(t *testing.T) int {
	t.Helper()
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("local-cluster.sh did not exit within 30s; stderr:\n%s", s.stderr.String())
	}
	for _, pid := range s.pids {
		require.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "process %d outlived local-cluster.sh", pid)
	}
	return s.cmd.ProcessState.ExitCode()
}

// TestClusterScriptStopsOnSignal starts two nodes with a --config file,
// delivers a message through the printed front, then stops the script with
// SIGTERM.
func TestClusterScriptStopsOnSignal(t *testing.T) {
	dir := t.TempDir()
	base := writeConfig(t, testConfig(filepath.Join(dir, "ignored"),
		"cluster: {probe_interval: 100ms, probe_timeout: 50ms, gossip_interval: 20ms}\n"))
	s := startClusterScript(t, "2", "--dir", dir, "--config", base)

	firstURL := slices.IndexFunc(s.lines, func(l string) bool { return strings.Contains(l, "http://") })
	require.GreaterOrEqual(t, firstURL, 0)
	require.Regexp(t, `^front: http://127\.0\.0\.1:\d+$`, s.lines[firstURL], "the first URL line")
	front := s.value(t, "front")
	require.Len(t, s.pids, 3, "two nodes and HAProxy")

	// Each node's config keeps the keys of the --config file and adds its own.
	merged, err := os.ReadFile(filepath.Join(dir, "n2", "config.yaml"))
	require.NoError(t, err)
	require.Contains(t, string(merged), "probe_interval: 100ms")
	require.Contains(t, string(merged), "node_id: n2")
	require.Contains(t, string(merged), apiKeyHash(testAPIKey))

	phone := "775265496"
	box := new(inbox)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := signalr.Dial(ctx, front+frontHubPath, signalr.Options{
		AccessToken: mobileToken(t, phone),
		Handlers: map[string]signalr.Handler{
			"ReceiveMessage":         func(args []json.RawMessage) { box.add(args[0], false) },
			"ReceivePendingMessages": func(args []json.RawMessage) { box.add(args[0], true) },
		},
	})
	require.NoError(t, err)
	defer c.Close()
	status, id, err := sendMessage(ctx, http.DefaultClient, front, phone, "through the front")
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, status)
	require.Eventually(t, func() bool { return slices.Contains(box.received(), id) }, 20*time.Second,
		10*time.Millisecond, "the message never reached the client")
	_, err = c.Invoke(ctx, "AcknowledgeMessage", id)
	require.NoError(t, err)
	require.Equal(t, statusDeliveredCode, messageStatus(http.DefaultClient, front, id))
	require.NoError(t, c.Close())

	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, s.waitExit(t), "exit code after SIGTERM")
}

// TestClusterScriptStopsWhenNodeDies starts two nodes with generated keys,
// sends with the printed API key, then kills a node: the script stops the
// rest and fails.
func TestClusterScriptStopsWhenNodeDies(t *testing.T) {
	s := startClusterScript(t, "2")
	front := s.value(t, "front")
	key := s.value(t, "api key")
	require.Regexp(t, `^[0-9a-f]{48}$`, key)
	require.Len(t, s.pids, 3, "two nodes and HAProxy")

	req, err := http.NewRequest(http.MethodPost, front+"/api/v1/messages",
		strings.NewReader(`{"recipientPhoneNumber": "775265496", "messageContent": "generated key"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", key)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)

	require.NoError(t, syscall.Kill(s.pids[1], syscall.SIGKILL))
	require.NotEqual(t, 0, s.waitExit(t), "exit code after a node died")
	require.Contains(t, s.stderr.String(), "node n2")
}
