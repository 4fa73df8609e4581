package main

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esh3artech/esh3artech/app"
	"github.com/esh3artech/esh3artech/hub/signalr"
)

// mobileToken returns a hub token for phone signed with the test secret.
func mobileToken(t *testing.T, phone string) string {
	t.Helper()
	tok, err := app.MintToken(testSecret, map[string]any{"phone_number": phone}, time.Hour)
	require.NoError(t, err)
	return tok
}

// inbox collects what a Go SignalR client receives.
type inbox struct {
	mu  sync.Mutex
	ids []string
}

func (b *inbox) add(payload json.RawMessage, many bool) {
	ids := payloadIDs(payload, many)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ids = append(b.ids, ids...)
}

// payloadIDs returns the message ids of the one string argument of
// ReceiveMessage (many false) or ReceivePendingMessages (many true).
func payloadIDs(payload json.RawMessage, many bool) []string {
	var text string
	if json.Unmarshal(payload, &text) != nil {
		return nil
	}
	var msgs []struct{ Id string }
	if many {
		_ = json.Unmarshal([]byte(text), &msgs)
	} else {
		var one struct{ Id string }
		_ = json.Unmarshal([]byte(text), &one)
		msgs = append(msgs, one)
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.Id
	}
	return ids
}

func (b *inbox) received() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.ids...)
}

// connectGo connects a Go client for phone that collects its messages.
func connectGo(t *testing.T, node *nodeProc, phone string) (*signalr.Client, *inbox) {
	t.Helper()
	box := new(inbox)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := signalr.Dial(ctx, node.url("/online-mobile-user"), signalr.Options{
		AccessToken: mobileToken(t, phone),
		Handlers: map[string]signalr.Handler{
			"ReceiveMessage":         func(args []json.RawMessage) { box.add(args[0], false) },
			"ReceivePendingMessages": func(args []json.RawMessage) { box.add(args[0], true) },
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c, box
}

func TestDeliveryOnlineAndBacklogGoClient(t *testing.T) {
	dir := t.TempDir()
	node := startTestNode(t, writeConfig(t, testConfig(dir, "")))
	client := &http.Client{Timeout: 10 * time.Second}
	ctx := context.Background()

	// A message to an offline user waits for it.
	status, offlineID, err := sendMessage(ctx, client, node.url(""), "775265400", "backlog")
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, status)

	online, onlineBox := connectGo(t, node, "775265401")
	status, liveID, err := sendMessage(ctx, client, node.url(""), "775265401", "live")
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, status)
	require.Eventually(t, func() bool { return len(onlineBox.received()) == 1 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, []string{liveID}, onlineBox.received())
	_, err = online.Invoke(ctx, "AcknowledgeMessage", liveID)
	require.NoError(t, err)
	_, m := getMessage(t, node.url(""), liveID)
	require.EqualValues(t, 2, m["status"], "an acknowledged message reads Delivered at once")

	late, lateBox := connectGo(t, node, "775265400")
	require.Eventually(t, func() bool { return len(lateBox.received()) == 1 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, []string{offlineID}, lateBox.received())
	_, err = late.Invoke(ctx, "AcknowledgeMessage", offlineID)
	require.NoError(t, err)
	_, m = getMessage(t, node.url(""), offlineID)
	require.EqualValues(t, 2, m["status"])

	// Acknowledging another user's message fails and changes nothing.
	_, err = late.Invoke(ctx, "AcknowledgeMessage", liveID)
	var invErr *signalr.InvocationError
	require.ErrorAs(t, err, &invErr)
}
