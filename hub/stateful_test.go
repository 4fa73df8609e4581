package hub

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/esh3artech/esh3artech/hub/signalr"
)

// connectStateful negotiates stateful reconnect and completes a version 2 handshake.
func (ts *testServer) connectStateful(t *testing.T) (*rawClient, signalr.NegotiateResponse) {
	t.Helper()
	neg := ts.negotiate(t, aliceToken, "&useStatefulReconnect=true")
	require.True(t, neg.UseStatefulReconnect)
	c := dialRaw(t, ts.connURL(neg.ConnectionToken), aliceToken)
	c.handshake(2)
	waitFor(t, "the connection to open", func() bool {
		return ts.hub.reg.byID(neg.ConnectionID) != nil
	})
	return c, neg
}

// receivedIDs returns the message IDs of ReceiveMessage invocations in ms.
func receivedIDs(t *testing.T, ms []signalr.Message) []string {
	t.Helper()
	var ids []string
	for _, m := range ms {
		if m.Type != signalr.TypeInvocation || m.Target != "ReceiveMessage" {
			continue
		}
		ids = append(ids, mobileMessageID(t, m))
	}
	return ids
}

func mobileMessageID(t *testing.T, m signalr.Message) string {
	t.Helper()
	require.Len(t, m.Arguments, 1)
	var text string
	require.NoError(t, json.Unmarshal(m.Arguments[0], &text))
	var mm MobileMessage
	require.NoError(t, json.Unmarshal([]byte(text), &mm))
	return mm.ID
}

func TestStatefulReconnectReplaysUnacked(t *testing.T) {
	ts := newTestServer(t, nil)
	c, neg := ts.connectStateful(t)
	for i := 1; i <= 3; i++ {
		require.NoError(t, ts.hub.SendMessage(neg.ConnectionID, MobileMessage{ID: fmt.Sprint("m", i)}))
	}
	require.Equal(t, []string{"m1"}, receivedIDs(t, []signalr.Message{c.next()}))
	// The client acknowledges the first message only.
	c.send(`{"type":8,"sequenceId":1}`)
	require.Equal(t, []string{"m2", "m3"}, receivedIDs(t, []signalr.Message{c.next(), c.next()}))
	waitFor(t, "the Ack to trim the replay buffer", func() bool {
		conn := ts.connByID(t, neg.ConnectionID)
		conn.mu.Lock()
		defer conn.mu.Unlock()
		return len(conn.replay.frames) == 2
	})

	ts.dropTransport(t, neg.ConnectionID)
	c.expectEnd()
	waitFor(t, "the connection to detach", func() bool {
		conn := ts.connByID(t, neg.ConnectionID)
		conn.mu.Lock()
		defer conn.mu.Unlock()
		return conn.state == stateDetached
	})
	require.NoError(t, ts.hub.SendMessage(neg.ConnectionID, MobileMessage{ID: "m4"}),
		"sends during the gap go to the replay buffer")
	require.Len(t, ts.hub.Connections(alicePhone), 1, "a detached connection is still open")

	c2 := dialRaw(t, ts.connURL(neg.ConnectionToken), aliceToken)
	first := c2.next()
	require.Equal(t, signalr.Message{Type: signalr.TypeSequence, SequenceID: 2}, first)
	require.Equal(t, []string{"m2", "m3", "m4"},
		receivedIDs(t, []signalr.Message{c2.next(), c2.next(), c2.next()}))
	require.Empty(t, ts.events.disconnectedInfos())
	require.Len(t, ts.events.connectedInfos(), 1, "a reconnect is not a new connection")
}

func TestStatefulReconnectDropsDuplicateInvocations(t *testing.T) {
	ts := newTestServer(t, nil)
	c, neg := ts.connectStateful(t)
	c.send(invocation("1", "AcknowledgeMessage", `"a"`))
	m := c.next()
	require.Equal(t, signalr.TypeCompletion, m.Type)
	ack := c.next()
	require.Equal(t, signalr.Message{Type: signalr.TypeAck, SequenceID: 1}, ack)

	ts.dropTransport(t, neg.ConnectionID)
	c.expectEnd()
	c2 := dialRaw(t, ts.connURL(neg.ConnectionToken), aliceToken)
	// The client did not see the server's Ack, so it sends its invocation again.
	c2.send(`{"type":9,"sequenceId":1}`, invocation("1", "AcknowledgeMessage", `"a"`),
		invocation("2", "AcknowledgeMessage", `"b"`))
	require.Equal(t, signalr.Message{Type: signalr.TypeSequence, SequenceID: 1}, c2.next())
	replayed := c2.next()
	require.Equal(t, signalr.TypeCompletion, replayed.Type)
	require.Equal(t, "1", replayed.InvocationID, "the unacknowledged completion is replayed")
	fresh := c2.next()
	require.Equal(t, "2", fresh.InvocationID)
	require.Equal(t, []string{"a", "b"}, ts.events.ackIDs(), "the duplicate ran once")
}

func TestStatefulSequenceBeyondNextIsProtocolError(t *testing.T) {
	ts := newTestServer(t, nil)
	c, _ := ts.connectStateful(t)
	c.send(`{"type":9,"sequenceId":5}`)
	seen := c.expectEnd()
	require.Len(t, seen, 1)
	require.Equal(t, signalr.TypeClose, seen[0].Type)
}

func TestStatefulWindowExpiryDisconnects(t *testing.T) {
	ts := newTestServer(t, fastTimers(nil))
	c, neg := ts.connectStateful(t)
	ts.dropTransport(t, neg.ConnectionID)
	c.expectEnd()
	waitFor(t, "Disconnected after ReconnectWindow", func() bool {
		return len(ts.events.disconnectedInfos()) == 1
	})
	_, status, err := tryDialRaw(ts.connURL(neg.ConnectionToken), aliceToken)
	require.Error(t, err)
	require.Equal(t, 404, status)
}

func TestStatefulTakeoverOfLiveSocket(t *testing.T) {
	ts := newTestServer(t, nil)
	old, neg := ts.connectStateful(t)
	// The client reconnects before the server noticed that its old socket died.
	c2 := dialRaw(t, ts.connURL(neg.ConnectionToken), aliceToken)
	require.Equal(t, signalr.Message{Type: signalr.TypeSequence, SequenceID: 1}, c2.next())
	old.expectEnd()
	c2.send(invocation("1", "AcknowledgeMessage", `"x"`))
	require.Equal(t, "1", c2.next().InvocationID)
	require.Empty(t, ts.events.disconnectedInfos())
}

func TestStatefulGracefulCloseEnds(t *testing.T) {
	ts := newTestServer(t, nil)
	c, _ := ts.connectStateful(t)
	require.NoError(t, c.ws.WriteMessage(8, []byte{0x03, 0xe8}))
	c.expectEnd()
	waitFor(t, "Disconnected after a normal WebSocket close", func() bool {
		return len(ts.events.disconnectedInfos()) == 1
	})
}

func TestStatefulNeedsProtocolVersion2(t *testing.T) {
	ts := newTestServer(t, nil)
	neg := ts.negotiate(t, aliceToken, "&useStatefulReconnect=true")
	c := dialRaw(t, ts.connURL(neg.ConnectionToken), aliceToken)
	c.handshake(1)
	waitFor(t, "the connection to open", func() bool { return ts.hub.ConnCount() == 1 })
	ts.dropTransport(t, neg.ConnectionID)
	c.expectEnd()
	waitFor(t, "Disconnected without stateful reconnect", func() bool {
		return len(ts.events.disconnectedInfos()) == 1
	})
}

func TestStatefulReplayBufferOverflowCloses(t *testing.T) {
	ts := newTestServer(t, func(cfg *Config) { cfg.ReconnectBufferSize = 1000 })
	c, neg := ts.connectStateful(t)
	ts.dropTransport(t, neg.ConnectionID)
	c.expectEnd()
	waitFor(t, "the connection to detach", func() bool {
		conn := ts.connByID(t, neg.ConnectionID)
		conn.mu.Lock()
		defer conn.mu.Unlock()
		return conn.state == stateDetached
	})
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		err = ts.hub.SendMessage(neg.ConnectionID, MobileMessage{ID: fmt.Sprint(i)})
	}
	require.ErrorIs(t, err, ErrSlowConsumer)
	waitFor(t, "Disconnected", func() bool { return len(ts.events.disconnectedInfos()) == 1 })
}

func TestReplayBuffer(t *testing.T) {
	b := newReplayBuffer(10)
	require.True(t, b.add([]byte("aaaa")))
	require.True(t, b.add([]byte("bbbbbbbbbbbb")), "a buffer below the limit takes any frame")
	require.False(t, b.add([]byte("c")), "a buffer at the limit takes nothing")
	b.ack(1)
	require.Equal(t, 12, b.bytes)
	require.Equal(t, int64(2), b.frames[0].seq)
	b.ack(5)
	require.Empty(t, b.frames)
	require.Equal(t, 0, b.bytes)
	resumed := b.resume(nil)
	require.Len(t, resumed, 1)
	require.Equal(t, "{\"type\":9,\"sequenceId\":3}\x1e", string(resumed[0]))
}

func TestInboundSequence(t *testing.T) {
	s := inboundSequence{next: 1}
	require.True(t, s.accept())
	require.True(t, s.accept())
	require.NoError(t, s.reset(2))
	require.False(t, s.accept(), "ID 2 is a duplicate")
	require.True(t, s.accept())
	require.Error(t, s.reset(9))
	require.Error(t, s.reset(0))
}
