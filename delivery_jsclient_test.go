package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests in this file drive the relay binary with the official SignalR
// JavaScript client through testdata/e2e/delivery-client.mjs.

const (
	hubPath = "/online-mobile-user"
	// testCountryCode is phone.country_code of the default configuration,
	// which the relay puts before every national number.
	testCountryCode = "967"
	// jsWait bounds each wait for output of the JavaScript client.
	jsWait = 20 * time.Second
	// jsTimeout is how long a delivery-client.mjs process started by
	// startJSClient may run before it fails by itself.
	jsTimeout = 90 * time.Second
)

// Message statuses of the REST API.
const (
	statusPending   = 0
	statusDelivered = 2
	statusQueued    = 4
	statusFailed    = 5
)

// jsEvent is one output line of delivery-client.mjs. The script's header
// comment describes each type.
type jsEvent struct {
	Type         string            `json:"type"`
	Client       string            `json:"client"`
	Method       string            `json:"method"`
	Args         []json.RawMessage `json:"args"`
	IDs          []string          `json:"ids"`
	ID           string            `json:"id"`
	ConnectionID string            `json:"connectionId"`
	Transport    string            `json:"transport"`
	Error        string            `json:"error"`
	AckedAt      float64           `json:"ackedAt"`
	T            float64           `json:"t"`
}

// jsClientOptions configures a delivery-client.mjs process.
type jsClientOptions struct {
	// Phones maps the name of each connection to its user's national phone
	// number. Two names with one number are two devices of one user.
	Phones map[string]string
	// Transport is WebSockets, ServerSentEvents or LongPolling. Default
	// WebSockets.
	Transport string
	// AutoAck names the connections that acknowledge every message as
	// soon as it arrives.
	AutoAck []string
	// Reconnect turns on the client's automatic reconnection for up to
	// this long after a connection is lost.
	Reconnect time.Duration
	// UntilAcked makes the script exit once it has acknowledged this many
	// distinct messages. The script then reads no commands, so it suits
	// runNode.
	UntilAcked int
	// Timeout is how long the script may run before it fails by itself.
	// Default jsTimeout.
	Timeout time.Duration
}

// jsClient is a running delivery-client.mjs process: connections of the
// official SignalR client, commanded through standard input.
type jsClient struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{} // closed once the process was waited for

	mu      sync.Mutex
	events  []jsEvent
	stderr  bytes.Buffer
	waitErr error
	killed  bool
}

// jsConfig returns the CONFIG argument of delivery-client.mjs for node's
// hub.
func jsConfig(t *testing.T, node *nodeProc, opts jsClientOptions) string {
	t.Helper()
	type clientConfig struct {
		Name    string `json:"name"`
		Token   string `json:"token"`
		AutoAck bool   `json:"autoAck"`
	}
	var clients []clientConfig
	for _, name := range slices.Sorted(maps.Keys(opts.Phones)) {
		clients = append(clients, clientConfig{
			Name: name, Token: mobileToken(t, opts.Phones[name]), AutoAck: slices.Contains(opts.AutoAck, name),
		})
	}
	config, err := json.Marshal(map[string]any{
		"url":         node.url(hubPath),
		"clients":     clients,
		"transport":   cmp.Or(opts.Transport, "WebSockets"),
		"reconnectMs": opts.Reconnect.Milliseconds(),
		"timeoutMs":   cmp.Or(opts.Timeout, jsTimeout).Milliseconds(),
		"untilAcked":  opts.UntilAcked,
	})
	require.NoError(t, err)
	return string(config)
}

// startJSClient runs delivery-client.mjs against node's hub and waits
// until every connection has started. The process stops with the test.
func startJSClient(t *testing.T, node *nodeProc, opts jsClientOptions) *jsClient {
	t.Helper()
	requireNodeModules(t)
	config := jsConfig(t, node, opts)

	cmd := exec.Command("node", "delivery-client.mjs", config)
	cmd.Dir = e2eScripts
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	c := &jsClient{t: t, cmd: cmd, stdin: stdin, exited: make(chan struct{})}
	var readers sync.WaitGroup
	readers.Go(func() { c.readEvents(stdout) })
	readers.Go(func() { c.readStderr(stderr) })
	go func() {
		// Wait closes the pipes, so it follows the readers.
		readers.Wait()
		err := cmd.Wait()
		c.mu.Lock()
		c.waitErr = err
		c.mu.Unlock()
		close(c.exited)
	}()
	t.Cleanup(c.stop)

	c.waitFor("every connection started", func(evs []jsEvent) bool {
		return countEvents(evs, "ready", "", "") > 0
	})
	return c
}

func (c *jsClient) readEvents(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		ev := parseEvent(sc.Bytes())
		c.mu.Lock()
		c.events = append(c.events, ev)
		c.mu.Unlock()
	}
}

// parseEvent decodes one output line. A line that is not a JSON event
// becomes an event of type "unparsable".
func parseEvent(line []byte) jsEvent {
	var ev jsEvent
	if err := json.Unmarshal(line, &ev); err != nil || ev.Type == "" {
		return jsEvent{Type: "unparsable", Error: string(line)}
	}
	return ev
}

// parseEvents decodes the output of a delivery-client.mjs run.
func parseEvents(output string) []jsEvent {
	var evs []jsEvent
	for line := range strings.Lines(output) {
		evs = append(evs, parseEvent([]byte(strings.TrimSuffix(line, "\n"))))
	}
	return evs
}

func (c *jsClient) readStderr(r io.Reader) {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		c.mu.Lock()
		c.stderr.Write(buf[:n])
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// stop sends the exit command and waits for the process, killing it if it
// does not exit within 10 seconds. A script that failed by itself fails
// the test, with its standard error unless the test failed already.
func (c *jsClient) stop() {
	_, _ = io.WriteString(c.stdin, `{"cmd":"exit"}`+"\n")
	_ = c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.mu.Lock()
		c.killed = true
		c.mu.Unlock()
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waitErr != nil && !c.killed && !c.t.Failed() {
		c.t.Errorf("delivery-client.mjs failed: %v\nstderr:\n%s", c.waitErr, c.stderr.String())
	}
}

func (c *jsClient) stderrText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}

func (c *jsClient) hasExited() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// view calls f with the events so far. f must not keep the slice.
func (c *jsClient) view(f func(evs []jsEvent)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c.events)
}

// check reports cond over the events so far.
func (c *jsClient) check(cond func(evs []jsEvent) bool) bool {
	var ok bool
	c.view(func(evs []jsEvent) { ok = cond(evs) })
	return ok
}

// waitFor polls the events until cond holds, and fails the test if the
// script exits or jsWait passes first.
func (c *jsClient) waitFor(what string, cond func(evs []jsEvent) bool) {
	c.t.Helper()
	require.EventuallyWithT(c.t, func(ct *assert.CollectT) {
		if c.hasExited() || c.check(cond) {
			return
		}
		ct.Errorf("waiting for %s; delivery-client.mjs stderr so far:\n%s", what, c.stderrText())
	}, jsWait, 10*time.Millisecond)
	if !c.check(cond) {
		c.mu.Lock()
		defer c.mu.Unlock()
		require.FailNow(c.t, "delivery-client.mjs exited before "+what,
			"exit: %v\nstderr:\n%s", c.waitErr, c.stderr.String())
	}
}

// ack makes client acknowledge message id.
func (c *jsClient) ack(client, id string) {
	c.t.Helper()
	line, err := json.Marshal(map[string]string{"cmd": "ack", "client": client, "id": id})
	require.NoError(c.t, err)
	_, err = c.stdin.Write(append(line, '\n'))
	require.NoError(c.t, err, "writing to delivery-client.mjs")
}

// receipts returns the receive events of client that carry message id.
func (c *jsClient) receipts(client, id string) []jsEvent {
	var out []jsEvent
	c.view(func(evs []jsEvent) {
		for _, ev := range evs {
			if ev.Type == "receive" && ev.Client == client && slices.Contains(ev.IDs, id) {
				out = append(out, ev)
			}
		}
	})
	return out
}

// eventsOf returns the events of the given types, in output order.
func (c *jsClient) eventsOf(types ...string) []jsEvent {
	var out []jsEvent
	c.view(func(evs []jsEvent) { out = filterEvents(evs, types...) })
	return out
}

// requireNone fails the test if the script printed events of the given
// types.
func (c *jsClient) requireNone(types ...string) {
	c.t.Helper()
	requireNoEvents(c.t, c.eventsOf(types...))
}

// requireNoEvents fails the test if evs is not empty, listing the first
// ten events.
func requireNoEvents(t *testing.T, evs []jsEvent) {
	t.Helper()
	if len(evs) == 0 {
		return
	}
	var lines []string
	for _, ev := range evs[:min(len(evs), 10)] {
		lines = append(lines, ev.String())
	}
	require.FailNow(t, fmt.Sprintf("%d unexpected events of delivery-client.mjs", len(evs)),
		"first ones:\n%s", strings.Join(lines, "\n"))
}

func (e jsEvent) String() string {
	s := e.Type
	if e.Client != "" {
		s += " client=" + e.Client
	}
	if e.Method != "" {
		s += " method=" + e.Method
	}
	if e.ID != "" {
		s += " id=" + e.ID
	}
	if len(e.IDs) > 0 {
		s += " ids=" + strings.Join(e.IDs, ",")
	}
	if e.AckedAt != 0 {
		s += fmt.Sprintf(" %.1f ms after the ack completed", e.T-e.AckedAt)
	}
	if e.Error != "" {
		s += fmt.Sprintf(" error=%q", e.Error)
	}
	return s
}

// filterEvents returns the events of the given types, in output order.
func filterEvents(evs []jsEvent, types ...string) []jsEvent {
	var out []jsEvent
	for _, ev := range evs {
		if slices.Contains(types, ev.Type) {
			out = append(out, ev)
		}
	}
	return out
}

// countEvents counts the events of type typ, of client and about message id
// where those are not empty. A receive event is about every id it carries.
func countEvents(evs []jsEvent, typ, client, id string) int {
	n := 0
	for _, ev := range evs {
		if ev.Type != typ || (client != "" && ev.Client != client) {
			continue
		}
		if id != "" && ev.ID != id && !slices.Contains(ev.IDs, id) {
			continue
		}
		n++
	}
	return n
}

// waitConnectionsOpened waits until node has logged n hub connections of
// phone, so that live messages to phone reach each of them.
func waitConnectionsOpened(t *testing.T, node *nodeProc, phone string, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		return countConnectionsOpened(node.logText(), testCountryCode+phone) >= n
	}, jsWait, 10*time.Millisecond, "the node did not log %d hub connections of %s", n, phone)
}

func countConnectionsOpened(logs, phone string) int {
	n := 0
	for line := range strings.Lines(logs) {
		if !strings.Contains(line, "connection opened") {
			continue
		}
		var ev struct {
			Msg   string `json:"msg"`
			Phone string `json:"phone"`
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Msg == "connection opened" && ev.Phone == phone {
			n++
		}
	}
	return n
}

// postMessage sends one message through POST /api/v1/messages, with
// priority unless it is empty, and returns its id.
func postMessage(t *testing.T, base, phone, content, priority string) string {
	t.Helper()
	body := map[string]any{"recipientPhoneNumber": phone, "messageContent": content}
	if priority != "" {
		body["priority"] = priority
	}
	status, out := callAPI(t, http.MethodPost, base+"/api/v1/messages", body)
	require.Equal(t, http.StatusAccepted, status, "sending to %s: %v", phone, out)
	id, _ := out["id"].(string)
	require.NotEmpty(t, id, "answer without id: %v", out)
	return id
}

// callAPI sends a request with the test API key and a JSON body unless
// body is nil, and returns the status and the decoded JSON response.
func callAPI(t *testing.T, method, url string, body any) (int, map[string]any) {
	t.Helper()
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		require.NoError(t, err)
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, reader)
	require.NoError(t, err)
	req.Header.Set("X-Api-Key", testAPIKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// readMessage returns GET /api/v1/messages/{id}. Unlike getMessage it
// returns errors, so that conditions polled on other goroutines may call it.
func readMessage(base, id string) (map[string]any, error) {
	req, err := http.NewRequest(http.MethodGet, base+"/api/v1/messages/"+id, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Api-Key", testAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET message %s: status %d", id, resp.StatusCode)
	}
	var m map[string]any
	err = json.NewDecoder(resp.Body).Decode(&m)
	return m, err
}

// requireStatus reads message id once and requires the given status.
func requireStatus(t *testing.T, base, id string, status int, msgAndArgs ...any) map[string]any {
	t.Helper()
	code, m := getMessage(t, base, id)
	require.Equal(t, http.StatusOK, code, "GET message %s", id)
	require.EqualValues(t, status, m["status"], msgAndArgs...)
	return m
}

// waitStatus polls message id until it has the given status.
func waitStatus(t *testing.T, base, id string, status int) {
	t.Helper()
	require.Eventually(t, func() bool {
		m, err := readMessage(base, id)
		return err == nil && m["status"] == float64(status)
	}, jsWait, 10*time.Millisecond, "message %s never reached status %d", id, status)
}

// mobileMessage is the message object of ReceiveMessage and
// ReceivePendingMessages.
type mobileMessage struct {
	ID                   string  `json:"Id"`
	CreatorID            string  `json:"CreatorId"`
	RecipientPhoneNumber string  `json:"RecipientPhoneNumber"`
	MessageContent       string  `json:"MessageContent"`
	Status               int     `json:"Status"`
	From                 string  `json:"From"`
	AccessURL            *string `json:"AccessUrl"`
	URLExpiresAt         *string `json:"UrlExpiresAt"`
}

// mobileMessageKeys are the keys of a message object, as the apps read them.
var mobileMessageKeys = []string{
	"Id", "CreatorId", "RecipientPhoneNumber", "MessageContent", "Status", "From",
	"AccessUrl", "UrlExpiresAt",
}

// stringArgument requires that args is one JSON string and returns its text.
func stringArgument(t *testing.T, method string, args []json.RawMessage) string {
	t.Helper()
	require.Len(t, args, 1, "%s takes one argument", method)
	require.Equal(t, "string", jsonKind(args[0]), "the argument of %s is a JSON string: %s", method, args[0])
	var text string
	require.NoError(t, json.Unmarshal(args[0], &text))
	return text
}

// requireMobileMessage checks every key and type of the ReceiveMessage
// arguments args, and their values for message id.
func requireMobileMessage(t *testing.T, args []json.RawMessage, id, phone, content string) {
	t.Helper()
	text := stringArgument(t, "ReceiveMessage", args)
	var fields map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(text), &fields), "the argument is JSON text of an object: %s", text)
	require.ElementsMatch(t, mobileMessageKeys, slices.Collect(maps.Keys(fields)), "keys of %s", text)
	for _, key := range []string{"Id", "CreatorId", "RecipientPhoneNumber", "MessageContent", "From"} {
		require.Equal(t, "string", jsonKind(fields[key]), "type of %s in %s", key, text)
	}
	require.Equal(t, "number", jsonKind(fields["Status"]), "type of Status in %s", text)
	require.Contains(t, []string{"string", "null"}, jsonKind(fields["AccessUrl"]), "type of AccessUrl in %s", text)
	require.Equal(t, "null", jsonKind(fields["UrlExpiresAt"]), "a message without a link has no UrlExpiresAt: %s", text)

	var m mobileMessage
	require.NoError(t, json.Unmarshal([]byte(text), &m))
	require.Equal(t, id, m.ID)
	require.Equal(t, "acme", m.CreatorID)
	require.Equal(t, testCountryCode+phone, m.RecipientPhoneNumber)
	require.Equal(t, content, m.MessageContent)
	require.Equal(t, 1, m.Status, "a message on its way to a device reads Sent (1)")
	require.NotEmpty(t, m.From)
	if m.AccessURL != nil {
		require.Empty(t, *m.AccessURL, "a message without a link has an empty AccessUrl")
	}
}

// jsonKind returns the JSON type of raw: string, number, object, array,
// boolean or null.
func jsonKind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "missing"
	}
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// TestJSDeliveryOnline sends a message to a connected recipient over each
// transport of the official client and acknowledges it.
func TestJSDeliveryOnline(t *testing.T) {
	node := startTestNode(t, writeConfig(t, testConfig(t.TempDir(), "")))
	transportClass := map[string]string{
		"WebSockets":       "WebSocketTransport",
		"ServerSentEvents": "ServerSentEventsTransport",
		"LongPolling":      "LongPollingTransport",
	}
	for i, transport := range []string{"WebSockets", "ServerSentEvents", "LongPolling"} {
		t.Run(transport, func(t *testing.T) {
			phone := fmt.Sprintf("7752661%02d", i)
			js := startJSClient(t, node, jsClientOptions{
				Phones: map[string]string{"app": phone}, Transport: transport,
			})
			connected := js.eventsOf("connected")
			require.Len(t, connected, 1)
			require.Equal(t, transportClass[transport], connected[0].Transport)
			waitConnectionsOpened(t, node, phone, 1)

			content := "Your code is 4711 (" + transport + ")"
			id := postMessage(t, node.url(""), phone, content, "")
			isLive := func(ev jsEvent) bool { return ev.Method == "ReceiveMessage" }
			js.waitFor("ReceiveMessage of "+id, func(evs []jsEvent) bool {
				return slices.ContainsFunc(evs, func(ev jsEvent) bool {
					return ev.Type == "receive" && isLive(ev) && slices.Contains(ev.IDs, id)
				})
			})
			receipts := js.receipts("app", id)
			live := slices.IndexFunc(receipts, isLive)
			requireMobileMessage(t, receipts[live].Args, id, phone, content)

			js.ack("app", id)
			js.waitFor("acknowledgement of "+id, func(evs []jsEvent) bool {
				return countEvents(evs, "acked", "app", id) > 0
			})
			m := requireStatus(t, node.url(""), id, statusDelivered,
				"a message reads Delivered as soon as its acknowledgement completed")
			require.NotNil(t, m["deliveredAt"])
			js.requireNone("ackFailed", "invalid", "unparsable", "redelivered", "reconnecting", "closed")
		})
	}
}

// TestJSDeliveryBacklogPriority sends messages of mixed priorities to an
// offline recipient, which receives them in pages, highest priority first,
// when it connects.
func TestJSDeliveryBacklogPriority(t *testing.T) {
	node := startTestNode(t, writeConfig(t, testConfig(t.TempDir(), `
delivery: {page_size: 3}
`)))
	const phone = "775266200"
	sends := []struct{ content, priority string }{
		{"normal 1", ""}, {"low 1", "Low"}, {"high 1", "High"}, {"normal 2", "Normal"},
		{"urgent 1", "Urgent"}, {"high 2", "High"}, {"normal 3", ""}, {"urgent 2", "urgent"},
	}
	// Within a priority the backlog keeps the order of acceptance.
	wantOrder := []string{"urgent 1", "urgent 2", "high 1", "high 2", "normal 1", "normal 2", "normal 3", "low 1"}
	idOf := map[string]string{}
	contentOf := map[string]string{}
	for _, s := range sends {
		id := postMessage(t, node.url(""), phone, s.content, s.priority)
		idOf[s.content] = id
		contentOf[id] = s.content
	}
	for _, id := range idOf {
		waitStatus(t, node.url(""), id, statusPending)
	}

	// The script times out first, so that its own message explains a hang.
	output := runNode(t, jsWait+5*time.Second, "delivery-client.mjs", jsConfig(t, node, jsClientOptions{
		Phones: map[string]string{"app": phone}, AutoAck: []string{"app"}, UntilAcked: len(sends),
		Timeout: jsWait,
	}))
	evs := parseEvents(output)
	for content, id := range idOf {
		require.Positive(t, countEvents(evs, "acked", "app", id), "acknowledgement of %q", content)
	}

	var order []string
	pages := 0
	for _, ev := range filterEvents(evs, "receive") {
		require.Equal(t, "ReceivePendingMessages", ev.Method, "a backlog message arrived live: %v", ev.IDs)
		text := stringArgument(t, ev.Method, ev.Args)
		var page []mobileMessage
		require.NoError(t, json.Unmarshal([]byte(text), &page), "the argument is JSON text of an array: %s", text)
		require.LessOrEqual(t, len(page), 3, "page larger than delivery.page_size")
		pages++
		for _, m := range page {
			require.Equal(t, contentOf[m.ID], m.MessageContent, "content of %s", m.ID)
			require.Equal(t, testCountryCode+phone, m.RecipientPhoneNumber)
			if !slices.Contains(order, contentOf[m.ID]) {
				order = append(order, contentOf[m.ID])
			}
		}
	}
	require.Equal(t, wantOrder, order, "order of the backlog pages")
	require.GreaterOrEqual(t, pages, 3, "8 messages in pages of at most 3")

	for content, id := range idOf {
		m := requireStatus(t, node.url(""), id, statusDelivered, "status of %q", content)
		require.NotNil(t, m["deliveredAt"], "deliveredAt of %q", content)
	}
	requireNoEvents(t, filterEvents(evs, "ackFailed", "invalid", "unparsable", "redelivered", "reconnecting", "closed"))
}

// fastRetries makes retries and dead-lettering quick: sends at 0, 200 ms
// and 600 ms, and the dead-letter queue at 1 s without an acknowledgement.
const fastRetries = `
delivery: {retry_base: 200ms, retry_max: 400ms, max_attempts: 3}
`

// TestJSDeliveryTwoDevices connects two devices of one user: both receive a
// message, one acknowledgement delivers it, and neither receives it again.
func TestJSDeliveryTwoDevices(t *testing.T) {
	node := startTestNode(t, writeConfig(t, testConfig(t.TempDir(), fastRetries)))
	const phone = "775266300"
	js := startJSClient(t, node, jsClientOptions{
		Phones:  map[string]string{"phone": phone, "tablet": phone},
		AutoAck: []string{"phone"},
	})
	waitConnectionsOpened(t, node, phone, 2)

	id := postMessage(t, node.url(""), phone, "to both devices", "")
	js.waitFor("receipt on both devices and acknowledgement by one", func(evs []jsEvent) bool {
		return countEvents(evs, "acked", "phone", id) > 0 && countEvents(evs, "receive", "tablet", id) > 0
	})
	requireStatus(t, node.url(""), id, statusDelivered, "one device's acknowledgement delivers the message")

	// Without the acknowledgement the message would be sent again twice
	// within 600 ms, so the watch lasts more than three times that.
	phoneReceipts, tabletReceipts := len(js.receipts("phone", id)), len(js.receipts("tablet", id))
	require.Never(t, func() bool {
		return len(js.receipts("phone", id)) != phoneReceipts || len(js.receipts("tablet", id)) != tabletReceipts
	}, 2*time.Second, 100*time.Millisecond, "a device received the message again after its acknowledgement")
	requireStatus(t, node.url(""), id, statusDelivered)
	js.requireNone("ackFailed", "invalid", "unparsable", "redelivered", "reconnecting", "closed")
}

// TestJSDeliveryRetryDLQ never acknowledges a message until it is
// dead-lettered, then requeues it and acknowledges the new delivery.
func TestJSDeliveryRetryDLQ(t *testing.T) {
	node := startTestNode(t, writeConfig(t, testConfig(t.TempDir(), fastRetries)))
	const phone, maxAttempts = "775266400", 3
	js := startJSClient(t, node, jsClientOptions{Phones: map[string]string{"app": phone}})
	waitConnectionsOpened(t, node, phone, 1)
	id := postMessage(t, node.url(""), phone, "never acknowledged", "")

	// retryCounts lists each new retryCount value that GET returned. Only the
	// polling goroutine writes it, and the test reads it after the poll
	// succeeded.
	var retryCounts []float64
	require.Eventually(t, func() bool {
		m, err := readMessage(node.url(""), id)
		if err != nil {
			return false
		}
		if rc, ok := m["retryCount"].(float64); ok && (len(retryCounts) == 0 || retryCounts[len(retryCounts)-1] != rc) {
			retryCounts = append(retryCounts, rc)
		}
		return m["status"] == float64(statusFailed)
	}, jsWait, 10*time.Millisecond, "message %s was never dead-lettered", id)
	require.True(t, slices.IsSorted(retryCounts), "retryCount went down: %v", retryCounts)
	require.Greater(t, len(retryCounts), 1, "retryCount never increased: %v", retryCounts)
	require.Equal(t, float64(maxAttempts-1), retryCounts[len(retryCounts)-1], "retryCount when dead-lettered")

	js.waitFor(fmt.Sprintf("%d sends of %s", maxAttempts, id), func(evs []jsEvent) bool {
		return countEvents(evs, "receive", "app", id) >= maxAttempts
	})
	for _, ev := range js.receipts("app", id) {
		require.Equal(t, "ReceiveMessage", ev.Method)
	}
	require.Len(t, js.receipts("app", id), maxAttempts, "sends before dead-lettering")

	m := requireStatus(t, node.url(""), id, statusFailed)
	require.NotEmpty(t, m["failureReason"])
	require.NotNil(t, m["movedToDlqAt"])
	require.Contains(t, dlqIDs(t, node), id, "GET /api/v1/dlq lists the dead letter")

	status, out := callAPI(t, http.MethodPost, node.url("/api/v1/dlq/"+id+"/requeue"), nil)
	require.Equal(t, http.StatusAccepted, status, "requeue: %v", out)
	require.EqualValues(t, statusQueued, out["status"])
	require.EqualValues(t, 0, out["retryCount"])
	require.NotContains(t, dlqIDs(t, node), id, "a requeued message left the dead-letter queue")

	js.waitFor("delivery of "+id+" after the requeue", func(evs []jsEvent) bool {
		return countEvents(evs, "receive", "app", id) > maxAttempts
	})
	js.ack("app", id)
	js.waitFor("acknowledgement of "+id, func(evs []jsEvent) bool {
		return countEvents(evs, "acked", "app", id) > 0
	})
	m = requireStatus(t, node.url(""), id, statusDelivered, "a requeued message is delivered by its acknowledgement")
	require.Nil(t, m["failureReason"])
	require.Nil(t, m["movedToDlqAt"])
	js.requireNone("ackFailed", "invalid", "unparsable", "redelivered", "reconnecting", "closed")
}

// dlqIDs returns the ids of the first page of GET /api/v1/dlq.
func dlqIDs(t *testing.T, node *nodeProc) []string {
	t.Helper()
	status, page := callAPI(t, http.MethodGet, node.url("/api/v1/dlq"), nil)
	require.Equal(t, http.StatusOK, status, "GET /api/v1/dlq: %v", page)
	items, _ := page["items"].([]any)
	var ids []string
	for _, it := range items {
		m, _ := it.(map[string]any)
		id, _ := m["id"].(string)
		ids = append(ids, id)
	}
	return ids
}

// TestJSDeliveryKill sends thousands of messages from concurrent business
// clients to recipients that acknowledge everything and to offline ones.
// It kills the node with SIGKILL in the middle and restarts it on the same
// data folder and port. Every accepted message (202) must end Delivered,
// and none may arrive again after its acknowledgement completed.
func TestJSDeliveryKill(t *testing.T) {
	dir := t.TempDir()
	yaml := testConfig(dir, `
limits: {rate: 100000, burst: 100000}
delivery: {retry_base: 500ms, retry_max: 1s, max_attempts: 50}
`)
	node := startTestNode(t, writeConfig(t, yaml))

	online := map[string]string{}
	offline := map[string]string{}
	phoneOwner := map[string]string{} // phone -> client name
	var phones []string
	for i := range 6 {
		name, phone := fmt.Sprintf("online%d", i), fmt.Sprintf("7752665%02d", i)
		online[name], phoneOwner[phone] = phone, name
		phones = append(phones, phone)
	}
	for i := range 3 {
		name, phone := fmt.Sprintf("offline%d", i), fmt.Sprintf("7752666%02d", i)
		offline[name], phoneOwner[phone] = phone, name
		phones = append(phones, phone)
	}
	js := startJSClient(t, node, jsClientOptions{
		Phones: online, AutoAck: slices.Collect(maps.Keys(online)), Reconnect: 30 * time.Second,
	})
	for _, phone := range online {
		waitConnectionsOpened(t, node, phone, 1)
	}

	var accepted sync.Map // id -> phone
	var count atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var senders sync.WaitGroup
	for s := range 16 {
		senders.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			for i := 0; ctx.Err() == nil && i < 100000; i++ {
				phone := phones[(s+i)%len(phones)]
				status, id, err := sendMessage(ctx, client, node.url(""), phone, fmt.Sprintf("sender %d message %d", s, i))
				if err != nil {
					return // the node is gone
				}
				if status == http.StatusAccepted {
					accepted.Store(id, phone)
					count.Add(1)
				}
			}
		})
	}

	// Kill once thousands of messages were accepted and the clients are
	// acknowledging them, so that sends, deliveries and acks are in flight.
	require.Eventually(t, func() bool {
		return count.Load() >= 2000 && js.check(func(evs []jsEvent) bool {
			return countEvents(evs, "acked", "", "") >= 200
		})
	}, 50*time.Second, 10*time.Millisecond, "too few messages accepted and acknowledged before the kill")
	node.kill()
	senders.Wait()
	cancel()
	ackedBeforeKill := len(js.eventsOf("acked"))

	// NOTE: the port is reused after the kill, so that the client's automatic
	// reconnection finds the node. Another process taking it in between
	// would make the restart fail.
	restartYAML := strings.Replace(yaml, `"127.0.0.1:0"`, strconv.Quote(node.addr), 1)
	require.NotEqual(t, yaml, restartYAML, "testConfig no longer listens on 127.0.0.1:0")
	restarted := startTestNode(t, writeConfig(t, restartYAML))
	require.Equal(t, node.addr, restarted.addr)
	js.waitFor("reconnection of every online client", func(evs []jsEvent) bool {
		for name := range online {
			if countEvents(evs, "reconnected", name, "") == 0 {
				return false
			}
		}
		return true
	})
	// The hub closes a connection whose send queue overflows, which happens
	// to a starved client with a large backlog, and apps reconnect then.
	late := startJSClient(t, restarted, jsClientOptions{
		Phones: offline, AutoAck: slices.Collect(maps.Keys(offline)), Reconnect: 30 * time.Second,
	})

	// Every accepted message ends Delivered.
	remaining := map[string]bool{}
	accepted.Range(func(k, _ any) bool {
		remaining[k.(string)] = true
		return true
	})
	total := len(remaining)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		example, exampleStatus := "", any(nil)
		for id := range remaining {
			m, err := readMessage(restarted.url(""), id)
			if err == nil && m["status"] == float64(statusDelivered) {
				delete(remaining, id)
				continue
			}
			example, exampleStatus = id, m["status"]
			if err != nil {
				exampleStatus = err
			}
		}
		if len(remaining) > 0 {
			ct.Errorf("%d of %d accepted messages are not Delivered, such as %s (status %v)",
				len(remaining), total, example, exampleStatus)
		}
	}, 45*time.Second, 250*time.Millisecond)

	// Each message went only to its recipient, and no message arrived again
	// on a connection after that connection's acknowledgement completed.
	for _, c := range []*jsClient{js, late} {
		c.requireNone("invalid", "unparsable", "redelivered", "closed")
		for _, ev := range c.eventsOf("receive") {
			for _, id := range ev.IDs {
				if phone, ok := accepted.Load(id); ok {
					require.Equal(t, phoneOwner[phone.(string)], ev.Client, "recipient of %s", id)
				}
			}
		}
	}
	ackErrors := map[string]int{}
	for _, ev := range js.eventsOf("ackFailed") {
		ackErrors[ev.Error]++
	}
	receipts := map[string]int{}
	for _, ev := range js.eventsOf("receive") {
		for _, id := range ev.IDs {
			receipts[id]++
		}
	}
	repeated := 0
	for _, n := range receipts {
		if n > 1 {
			repeated++
		}
	}
	t.Logf("%d messages accepted, %d acknowledgements before the kill, %d messages received "+
		"more than once by the online clients, %d reconnections of the offline clients; "+
		"failed acknowledgements by error: %v",
		total, ackedBeforeKill, repeated, len(late.eventsOf("reconnecting")), ackErrors)
}
