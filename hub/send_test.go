package hub

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esh3artech/esh3artech/hub/signalr"
)

func TestSendMessagePayloadShape(t *testing.T) {
	ts := newTestServer(t, nil)
	c, neg := ts.connectRaw(t, aliceToken)
	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	require.NoError(t, ts.hub.SendMessage(neg.ConnectionID, MobileMessage{
		ID: "m-1", CreatorID: "shop", RecipientPhoneNumber: alicePhone,
		MessageContent: "Hi \"there\"\n\x1e<b>", Status: 2, From: "Shop",
		AccessURL: "https://example.com/a?b=c&d", URLExpiresAt: &expires,
	}))
	m := c.next()
	require.Equal(t, signalr.TypeInvocation, m.Type)
	require.Equal(t, "ReceiveMessage", m.Target)
	require.Empty(t, m.InvocationID, "server-to-client sends expect no completion")
	require.Len(t, m.Arguments, 1)
	var text string
	require.NoError(t, json.Unmarshal(m.Arguments[0], &text), "the argument is a JSON string")
	var fields map[string]any
	require.NoError(t, json.Unmarshal([]byte(text), &fields))
	require.Equal(t, map[string]any{
		"Id": "m-1", "CreatorId": "shop", "RecipientPhoneNumber": alicePhone,
		"MessageContent": "Hi \"there\"\n\x1e<b>", "Status": float64(2), "From": "Shop",
		"AccessUrl": "https://example.com/a?b=c&d", "UrlExpiresAt": "2030-01-02T03:04:05Z",
	}, fields)
}

func TestSendPendingPayloadShape(t *testing.T) {
	ts := newTestServer(t, nil)
	c, neg := ts.connectRaw(t, aliceToken)
	require.NoError(t, ts.hub.SendPending(neg.ConnectionID, []MobileMessage{{ID: "a"}, {ID: "b"}}))
	require.NoError(t, ts.hub.SendPending(neg.ConnectionID, nil))

	for _, want := range []int{2, 0} {
		m := c.next()
		require.Equal(t, "ReceivePendingMessages", m.Target)
		require.Len(t, m.Arguments, 1)
		var text string
		require.NoError(t, json.Unmarshal(m.Arguments[0], &text))
		var list []map[string]any
		require.NoError(t, json.Unmarshal([]byte(text), &list))
		require.Len(t, list, want)
		require.NotNil(t, list, "an empty list is [] and not null")
	}
}

func TestSendFromConnectedArrivesAfterHandshake(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.events.setOnConnected(func(c ConnInfo) {
		require.NoError(t, ts.hub.SendPending(c.ID, []MobileMessage{{ID: "backlog"}}))
	})
	c := dialRaw(t, ts.url, aliceToken)
	c.handshake(1)
	m := c.next()
	require.Equal(t, "ReceivePendingMessages", m.Target)
}

func TestSendMessageNullExpiry(t *testing.T) {
	payload, err := json.Marshal(MobileMessage{ID: "x"})
	require.NoError(t, err)
	require.JSONEq(t, `{"Id":"x","CreatorId":"","RecipientPhoneNumber":"","MessageContent":"",
		"Status":0,"From":"","AccessUrl":"","UrlExpiresAt":null}`, string(payload))
}
