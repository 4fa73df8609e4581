package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esh3artech/esh3artech/hub/signalr"
)

func TestHandshakeErrors(t *testing.T) {
	cases := map[string]struct {
		request string
		errText string
	}{
		"unsupported protocol": {`{"protocol":"messagepack","version":1}`,
			"Requested protocol 'messagepack' is not available."},
		"unsupported version": {`{"protocol":"json","version":3}`,
			"The server does not support version 3 of the 'json' protocol."},
		"version zero": {`{"protocol":"json","version":0}`,
			"The server does not support version 0 of the 'json' protocol."},
		"not a handshake": {`{"type":6}`, "Handshake request is invalid."},
		"not json":        {"garbage", "Handshake request is invalid."},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ts := newTestServer(t, nil)
			c := dialRaw(t, ts.url, aliceToken)
			c.send(tc.request)
			resp, err := signalr.ParseHandshakeResponse(c.nextRecord())
			require.NoError(t, err)
			require.Equal(t, tc.errText, resp.Error)
			require.Empty(t, c.expectEnd(), "the server closes after a failed handshake")
			require.Empty(t, ts.events.connectedInfos())
			waitFor(t, "the connection to be removed", func() bool {
				return len(ts.hub.reg.all(nil)) == 0
			})
		})
	}
}

func TestHandshakeFollowedByMessageInSameFrame(t *testing.T) {
	ts := newTestServer(t, nil)
	c := dialRaw(t, ts.url, aliceToken)
	c.send(`{"protocol":"json","version":1}`, invocation("1", "AcknowledgeMessage", `"m"`))
	resp, err := signalr.ParseHandshakeResponse(c.nextRecord())
	require.NoError(t, err)
	require.Empty(t, resp.Error)
	m := c.next()
	require.Equal(t, signalr.TypeCompletion, m.Type)
	require.Equal(t, "1", m.InvocationID)
	require.Equal(t, []string{"m"}, ts.events.ackIDs())
}

func TestAcknowledgeMessageCompletion(t *testing.T) {
	ts := newTestServer(t, nil)
	c, neg := ts.connectRaw(t, aliceToken)
	c.send(invocation("7", "AcknowledgeMessage", `"msg-1"`))
	m := c.next()
	require.Equal(t, signalr.Message{Type: signalr.TypeCompletion, InvocationID: "7"}, m)
	require.Equal(t, []string{"msg-1"}, ts.events.ackIDs())
	connected := ts.events.connectedInfos()
	require.Len(t, connected, 1)
	require.Equal(t, neg.ConnectionID, connected[0].ID)
	require.Equal(t, alicePhone, connected[0].User)
}

func TestMethodNamesCaseInsensitive(t *testing.T) {
	ts := newTestServer(t, nil)
	c, _ := ts.connectRaw(t, aliceToken)
	for i, name := range []string{"acknowledgemessage", "ACKNOWLEDGEMESSAGE", "AcKnOwLeDgEmEsSaGe"} {
		id := fmt.Sprint(i)
		c.send(invocation(id, name, `"m`+id+`"`))
		m := c.next()
		require.Equal(t, id, m.InvocationID)
		require.Empty(t, m.Error, name)
	}
	require.Equal(t, []string{"m0", "m1", "m2"}, ts.events.ackIDs())
}

func TestInvocationErrorsKeepConnection(t *testing.T) {
	cases := map[string]struct {
		frame   string
		errText string
	}{
		"unknown method": {invocation("1", "NoSuchMethod", `1`),
			"Unknown hub method 'NoSuchMethod'."},
		"too few arguments": {invocation("1", "AcknowledgeMessage"),
			"Invocation provides 0 argument(s) but hub method 'AcknowledgeMessage' expects 1."},
		"too many arguments": {invocation("1", "AcknowledgeMessage", `"a"`, `"b"`),
			"Invocation provides 2 argument(s) but hub method 'AcknowledgeMessage' expects 1."},
		"number argument": {invocation("1", "AcknowledgeMessage", `42`),
			"Failed to invoke 'AcknowledgeMessage': argument 1 must be a string."},
		"null argument": {invocation("1", "AcknowledgeMessage", `null`),
			"Failed to invoke 'AcknowledgeMessage': argument 1 must be a string."},
		"object argument": {invocation("1", "AcknowledgeMessage", `{"id":"x"}`),
			"Failed to invoke 'AcknowledgeMessage': argument 1 must be a string."},
		"streams": {`{"type":1,"invocationId":"1","target":"AcknowledgeMessage",` +
			`"arguments":[],"streamIds":["s1"]}`,
			"Hub method 'AcknowledgeMessage' takes no streams, but the client sent 1."},
		"stream invocation": {`{"type":4,"invocationId":"1","target":"AcknowledgeMessage",` +
			`"arguments":["a"]}`,
			"Hub method 'AcknowledgeMessage' is not a streaming method."},
		"unknown stream invocation": {`{"type":4,"invocationId":"1","target":"Feed","arguments":[]}`,
			"Unknown hub method 'Feed'."},
	}
	ts := newTestServer(t, nil)
	c, _ := ts.connectRaw(t, aliceToken)
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c.send(tc.frame)
			m := c.next()
			require.Equal(t, signalr.TypeCompletion, m.Type)
			require.Equal(t, "1", m.InvocationID)
			require.Equal(t, tc.errText, m.Error)
		})
	}
	require.Empty(t, ts.events.ackIDs())
	c.send(invocation("ok", "AcknowledgeMessage", `"m"`))
	require.Equal(t, "ok", c.next().InvocationID, "the connection still works")
}

func TestNonBlockingInvocationGetsNoCompletion(t *testing.T) {
	ts := newTestServer(t, nil)
	c, _ := ts.connectRaw(t, aliceToken)
	c.send(invocation("", "AcknowledgeMessage", `"fire"`), invocation("", "Nope"),
		invocation("2", "AcknowledgeMessage", `"after"`))
	m := c.next()
	require.Equal(t, "2", m.InvocationID, "only the blocking invocation is answered")
	require.Equal(t, []string{"fire", "after"}, ts.events.ackIDs())
}

func TestStreamMessagesIgnored(t *testing.T) {
	ts := newTestServer(t, nil)
	c, _ := ts.connectRaw(t, aliceToken)
	c.send(`{"type":2,"invocationId":"s1","item":1}`,
		`{"type":3,"invocationId":"s1"}`,
		`{"type":5,"invocationId":"1"}`,
		`{"type":6}`,
		`{"type":8,"sequenceId":4}`,
		`{"type":77}`,
		invocation("after", "AcknowledgeMessage", `"m"`))
	m := c.next()
	require.Equal(t, "after", m.InvocationID)
	require.Empty(t, m.Error)
}

func TestAcknowledgeErrorTexts(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.events.setOnAck(func(_ context.Context, _ ConnInfo, id string) error {
		switch id {
		case "client-error":
			return fmt.Errorf("lookup: %w", &ClientError{Message: "message not found"})
		case "visible":
			return fmt.Errorf("%w: message already acknowledged", ErrClientVisible)
		default:
			return errors.New("storage: disk on fire at /var/lib/node")
		}
	})
	c, _ := ts.connectRaw(t, aliceToken)
	for id, want := range map[string]string{
		"client-error": "message not found",
		"visible":      "message already acknowledged",
		"internal":     genericAckError,
	} {
		c.send(invocation(id, "AcknowledgeMessage", `"`+id+`"`))
		m := c.next()
		require.Equal(t, id, m.InvocationID)
		require.Equal(t, want, m.Error)
	}
}

func TestMalformedMessageClosesWithError(t *testing.T) {
	for name, payload := range map[string]string{
		"invalid json":    "{\"type\":1,\x1e",
		"missing target":  "{\"type\":1,\"arguments\":[]}\x1e",
		"no separator":    "{\"type\":6}",
		"bad sequence id": "{\"type\":8}\x1e",
	} {
		t.Run(name, func(t *testing.T) {
			ts := newTestServer(t, nil)
			c, _ := ts.connectRaw(t, aliceToken)
			c.sendBytes([]byte(payload))
			seen := c.expectEnd()
			require.Len(t, seen, 1)
			require.Equal(t, signalr.TypeClose, seen[0].Type)
			require.Equal(t, "Connection closed with an error: invalid message.", seen[0].Error)
			require.False(t, seen[0].AllowReconnect)
			waitFor(t, "Disconnected", func() bool {
				return len(ts.events.disconnectedInfos()) == 1
			})
		})
	}
}

func TestOversizeMessageClosesWithError(t *testing.T) {
	ts := newTestServer(t, func(cfg *Config) { cfg.MaxMessageSize = 1024 })
	c, _ := ts.connectRaw(t, aliceToken)
	c.send(invocation("1", "AcknowledgeMessage", `"`+strings.Repeat("x", 900)+`"`))
	require.Equal(t, "1", c.next().InvocationID, "a message under the limit is fine")
	c.send(invocation("2", "AcknowledgeMessage", `"`+strings.Repeat("x", 1100)+`"`))
	seen := c.expectEnd()
	require.Len(t, seen, 1)
	require.Equal(t, signalr.TypeClose, seen[0].Type)
	require.Equal(t, "Connection closed with an error: a message exceeds the maximum size "+
		"of 1024 bytes.", seen[0].Error)
}

func TestClientCloseMessageEndsConnection(t *testing.T) {
	ts := newTestServer(t, nil)
	c, neg := ts.connectRaw(t, aliceToken)
	c.send(`{"type":7}`)
	require.Empty(t, c.expectEnd())
	waitFor(t, "Disconnected", func() bool { return len(ts.events.disconnectedInfos()) == 1 })
	require.Equal(t, neg.ConnectionID, ts.events.disconnectedInfos()[0].ID)
	require.Equal(t, 0, ts.hub.ConnCount())
}

func TestGoClientInvokeAndReceive(t *testing.T) {
	ts := newTestServer(t, nil)
	received := make(chan []json.RawMessage, 1)
	c := ts.dialClient(t, aliceToken, signalr.Options{Handlers: map[string]signalr.Handler{
		"receivemessage": func(args []json.RawMessage) { received <- args },
	}})
	require.NotEmpty(t, c.ConnectionID())

	result, err := c.Invoke(context.Background(), "AcknowledgeMessage", "m1")
	require.NoError(t, err)
	require.Nil(t, result)

	_, err = c.Invoke(context.Background(), "Missing")
	var invErr *signalr.InvocationError
	require.ErrorAs(t, err, &invErr)
	require.Equal(t, "Unknown hub method 'Missing'.", invErr.Message)

	require.NoError(t, c.Send(context.Background(), "AcknowledgeMessage", "m2"))
	waitFor(t, "the non-blocking acknowledge", func() bool { return len(ts.events.ackIDs()) == 2 })

	require.NoError(t, ts.hub.SendMessage(c.ConnectionID(), MobileMessage{ID: "x"}))
	args := <-received
	require.Len(t, args, 1)
}
