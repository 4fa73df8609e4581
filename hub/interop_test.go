package hub

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// interopDir holds the scripts that drive the hub with the official @microsoft/signalr
// JavaScript client. The tests need node and npm on PATH, and TestMain runs npm ci there
// when node_modules is missing.
const interopDir = "testdata/interop"

// nodeTimeout bounds one interop script run, and npmTimeout the dependency install.
const (
	nodeTimeout = 60 * time.Second
	npmTimeout  = 5 * time.Minute
)

func TestMain(m *testing.M) {
	if err := installInteropDeps(); err != nil {
		fmt.Fprintln(os.Stderr, "interop setup failed:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// installInteropDeps runs npm ci when the interop scripts' node_modules is missing.
func installInteropDeps() error {
	installed := filepath.Join(interopDir, "node_modules", "@microsoft", "signalr")
	if _, err := os.Stat(installed); err == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), npmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = interopDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("npm ci in %s: %w\n%s", interopDir, err, out)
	}
	return nil
}

// nodeEvent is one JSON line that an interop script printed.
type nodeEvent map[string]any

func (e nodeEvent) str(key string) string {
	s, _ := e[key].(string)
	return s
}

// nodeScript is a running interop script.
type nodeScript struct {
	cmd    *exec.Cmd
	events chan nodeEvent
	stderr *syncBuffer
	done   chan error
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
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

// startNode runs node with script and args in the interop folder. The process is
// killed when the test ends if it is still running.
func startNode(t *testing.T, script string, args ...string) *nodeScript {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	cmd.Dir = interopDir
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	ns := &nodeScript{cmd: cmd, events: make(chan nodeEvent, 256), stderr: &syncBuffer{},
		done: make(chan error, 1)}
	cmd.Stderr = ns.stderr
	require.NoError(t, cmd.Start(), "starting node")
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			var ev nodeEvent
			if json.Unmarshal(scanner.Bytes(), &ev) != nil {
				ev = nodeEvent{"event": "unparsed", "line": scanner.Text()}
			}
			ns.events <- ev
		}
		close(ns.events)
		ns.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cancel()
		<-ns.done
	})
	return ns
}

// next returns the next event, failing the test on a fatal event or when the script
// ends first.
func (ns *nodeScript) next(t *testing.T) nodeEvent {
	t.Helper()
	ev, ok := <-ns.events
	require.True(t, ok, "node exited early; stderr:\n%s", ns.stderr.String())
	require.NotEqual(t, "fatal", ev.str("event"), "node failed: %v\nstderr:\n%s", ev["message"],
		ns.stderr.String())
	return ev
}

// expect returns the next event and checks its name.
func (ns *nodeScript) expect(t *testing.T, name string) nodeEvent {
	t.Helper()
	ev := ns.next(t)
	require.Equal(t, name, ev.str("event"), "event %v", ev)
	return ev
}

// expectSet reads len(names) events, in any order, checks that their names are names,
// and returns them by name.
func (ns *nodeScript) expectSet(t *testing.T, names ...string) map[string]nodeEvent {
	t.Helper()
	got := make(map[string]nodeEvent, len(names))
	var seen []string
	for range names {
		ev := ns.next(t)
		got[ev.str("event")] = ev
		seen = append(seen, ev.str("event"))
	}
	require.ElementsMatch(t, names, seen)
	return got
}

// wait checks that the script exits with status 0 after printing nothing more.
func (ns *nodeScript) wait(t *testing.T) {
	t.Helper()
	for ev := range ns.events {
		require.Fail(t, "unexpected event", "%v\nstderr:\n%s", ev, ns.stderr.String())
	}
	require.NoError(t, <-ns.done, "node exit; stderr:\n%s", ns.stderr.String())
	ns.done <- nil
}

func TestInteropTransports(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.events.setOnConnected(func(c ConnInfo) {
		msg := MobileMessage{ID: "msg-" + c.Transport, CreatorID: "shop", RecipientPhoneNumber: c.User,
			MessageContent: "Hello \"phone\" ✓", Status: 1, From: "Shop"}
		require.NoError(t, ts.hub.SendMessage(c.ID, msg))
	})
	ts.events.setOnAck(func(_ context.Context, _ ConnInfo, id string) error {
		if id == "fail-me" {
			return &ClientError{Message: "Message fail-me is unknown."}
		}
		return nil
	})
	node := startNode(t, "transports.mjs", ts.url, aliceToken)
	wantKeys := []string{"AccessUrl", "CreatorId", "From", "Id", "MessageContent",
		"RecipientPhoneNumber", "Status", "UrlExpiresAt"}
	for _, mode := range []string{"WebSockets", "ServerSentEvents", "LongPolling", "SkipNegotiation"} {
		transport := mode
		if mode == "SkipNegotiation" {
			transport = TransportWebSockets
		}
		started := node.expect(t, "started")
		require.Equal(t, mode, started.str("mode"))
		received := node.expect(t, "received")
		require.Equal(t, float64(1), received["argCount"], mode)
		require.Equal(t, "string", received["argType"], mode)
		payload, ok := received["payload"].(map[string]any)
		require.True(t, ok, mode)
		keys := make([]string, 0, len(payload))
		for k := range payload {
			keys = append(keys, k)
		}
		require.ElementsMatch(t, wantKeys, keys, mode)
		require.Equal(t, "msg-"+transport, payload["Id"], mode)
		require.Equal(t, "Hello \"phone\" ✓", payload["MessageContent"], mode)
		require.Equal(t, alicePhone, payload["RecipientPhoneNumber"], mode)
		acked := node.expect(t, "acknowledged")
		require.Equal(t, "undefined", acked["result"], "%s: void completion", mode)
		ackErr := node.expect(t, "ackError")
		require.Equal(t, "Message fail-me is unknown.", ackErr.str("message"), mode)
		node.expect(t, "stopped")
	}
	node.wait(t)

	var transports []string
	for _, c := range ts.events.connectedInfos() {
		transports = append(transports, c.Transport)
	}
	require.Equal(t, []string{TransportWebSockets, TransportServerSentEvents,
		TransportLongPolling, TransportWebSockets}, transports)
	require.Equal(t, []string{"msg-WebSockets", "fail-me", "msg-ServerSentEvents", "fail-me",
		"msg-LongPolling", "fail-me", "msg-WebSockets", "fail-me"}, ts.events.ackIDs())
	waitFor(t, "every connection to be reported gone", func() bool {
		return len(ts.events.disconnectedInfos()) == 4
	})
	require.Equal(t, 0, ts.hub.ConnCount())
}

func TestInteropAutomaticReconnect(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.events.setOnConnected(func(c ConnInfo) {
		n := len(ts.events.connectedInfos())
		require.NoError(t, ts.hub.SendMessage(c.ID, MobileMessage{ID: fmt.Sprint("m", n)}))
	})
	node := startNode(t, "reconnect.mjs", ts.url, aliceToken)
	// The message sent from Connected may arrive before start() resolves.
	events := node.expectSet(t, "started", "received", "acknowledged")
	require.Equal(t, "m1", events["received"].str("id"))
	require.Equal(t, "m1", events["acknowledged"].str("id"))
	first := ts.events.connectedInfos()[0]
	require.NoError(t, ts.hub.CloseConn(first.ID, "Server is restarting."))

	reconnecting := node.expect(t, "reconnecting")
	require.Contains(t, reconnecting.str("error"), "Server is restarting.")
	events = node.expectSet(t, "reconnected", "received", "acknowledged")
	reconnected := events["reconnected"]
	require.Equal(t, "m2", events["received"].str("id"))
	node.expect(t, "stopped")
	node.wait(t)

	connected := ts.events.connectedInfos()
	require.Len(t, connected, 2)
	require.Equal(t, connected[1].ID, reconnected.str("connectionId"))
	require.NotEqual(t, first.ID, connected[1].ID)
	require.Equal(t, []string{"m1", "m2"}, ts.events.ackIDs())
}

func TestInteropStatefulReconnect(t *testing.T) {
	const batch = 20
	core, logs := observer.New(zap.InfoLevel)
	ts := newTestServer(t, func(cfg *Config) { cfg.Logger = zap.New(core) })
	node := startNode(t, "stateful.mjs", ts.url, aliceToken, fmt.Sprint(2*batch))
	node.expect(t, "started")
	waitFor(t, "the connection to open", func() bool { return ts.hub.ConnCount() == 1 })
	id := ts.events.connectedInfos()[0].ID

	for i := range batch {
		require.NoError(t, ts.hub.SendMessage(id, MobileMessage{ID: fmt.Sprint("a", i)}))
	}
	// Drop the socket once the client has seen the first batch but, with its one-second
	// Ack timer, most likely not acknowledged it, so the server replays it.
	for range batch {
		node.expect(t, "received")
	}
	ts.dropTransport(t, id)
	for i := range batch {
		require.NoError(t, ts.hub.SendMessage(id, MobileMessage{ID: fmt.Sprint("b", i)}))
	}
	var done nodeEvent
	for done == nil {
		if ev := node.next(t); ev.str("event") == "done" {
			done = ev
		}
	}
	require.Equal(t, float64(2*batch), done["distinct"])
	require.Empty(t, done["duplicates"], "every message is delivered exactly once")
	require.Nil(t, node.expect(t, "closed")["error"], "the client stopped cleanly")
	node.wait(t)

	acks := ts.events.ackIDs()
	require.Len(t, acks, 2*batch, "the server ran each acknowledgement once")
	seen := make(map[string]bool)
	for _, a := range acks {
		require.False(t, seen[a], "duplicate acknowledgement of %s", a)
		seen[a] = true
	}
	require.Len(t, ts.events.connectedInfos(), 1, "a stateful reconnect is not a new connection")
	resumed := logs.FilterMessage("stateful connection resumed").All()
	require.Len(t, resumed, 1)
	t.Logf("frames replayed after the reconnect: %v", resumed[0].ContextMap()["replayed_frames"])
	waitFor(t, "Disconnected after the client stopped", func() bool {
		return len(ts.events.disconnectedInfos()) == 1
	})
}

func TestInteropUnauthorized(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	ts := newTestServer(t, func(cfg *Config) { cfg.Logger = zap.New(core) })
	node := startNode(t, "unauthorized.mjs", ts.url)
	negotiate := node.expect(t, "rejected")
	require.Equal(t, "negotiate", negotiate.str("mode"))
	require.Contains(t, negotiate.str("message"), "401")
	// The client hides the status of a failed WebSocket upgrade, so the test reads the
	// 401 responses from the server log.
	ws := node.expect(t, "rejected")
	require.Equal(t, "SkipNegotiation", ws.str("mode"))
	require.Contains(t, ws.str("message"), "WebSocket failed to connect")
	node.wait(t)
	require.Equal(t, 2, logs.FilterMessage("request not authenticated").Len())
	require.Empty(t, ts.events.connectedInfos())
	require.Empty(t, ts.hub.reg.all(nil))
}
