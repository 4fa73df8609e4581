package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esh3artech/esh3artech/hub/signalr"
)

// ackingUser is a Go client that acknowledges every message it receives.
type ackingUser struct {
	client *signalr.Client
	acked  sync.Map // message id -> struct{}
}

func connectAckingUser(t *testing.T, node *nodeProc, phone string) *ackingUser {
	t.Helper()
	u := &ackingUser{}
	ack := func(payload json.RawMessage, many bool) {
		for _, id := range payloadIDs(payload, many) {
			// Handlers run on the client's reader, so the ack is sent from
			// another goroutine to keep reading its completion.
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if _, err := u.client.Invoke(ctx, "AcknowledgeMessage", id); err == nil {
					u.acked.Store(id, struct{}{})
				}
			}()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := signalr.Dial(ctx, node.url("/online-mobile-user"), signalr.Options{
		AccessToken: mobileToken(t, phone),
		Handlers: map[string]signalr.Handler{
			"ReceiveMessage":         func(args []json.RawMessage) { ack(args[0], false) },
			"ReceivePendingMessages": func(args []json.RawMessage) { ack(args[0], true) },
		},
	})
	require.NoError(t, err)
	u.client = c
	t.Cleanup(func() { _ = c.Close() })
	return u
}

// TestOverloadRefusesCleanlyAndLosesNothing drives clients past their rate
// limits and the node past its queue high-water mark. Every refusal must
// carry Retry-After, every answered id must end Delivered, and the node must
// be ready again once the load stops.
func TestOverloadRefusesCleanlyAndLosesNothing(t *testing.T) {
	dir := t.TempDir()
	node := startTestNode(t, writeConfig(t, testConfig(dir, `
limits: {rate: 100, burst: 20, queue_high_water: 15}
delivery: {batch_size: 8, batch_wait: 300ms, retry_base: 1s, retry_max: 2s}
`)))
	const users = 10
	for i := range users {
		connectAckingUser(t, node, fmt.Sprintf("7752650%02d", i))
	}

	var answered sync.Map
	var refused, missingRetryAfter, accepted, tooMany, unavailable atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for s := range 48 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for i := 0; ctx.Err() == nil && i < 5000; i++ {
				phone := fmt.Sprintf("7752650%02d", (s+i)%users)
				status, retryAfter, id := sendWithHeaders(ctx, client, node.url(""), phone)
				switch {
				case status == http.StatusAccepted:
					answered.Store(id, phone)
					accepted.Add(1)
				case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
					refused.Add(1)
					if status == http.StatusTooManyRequests {
						tooMany.Add(1)
					} else {
						unavailable.Add(1)
					}
					if retryAfter == "" {
						missingRetryAfter.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("accepted %d, refused %d (429: %d, 503: %d)", accepted.Load(), refused.Load(),
		tooMany.Load(), unavailable.Load())
	require.Positive(t, tooMany.Load(), "the load never went past the rate limit")
	require.Positive(t, unavailable.Load(), "the load never went past the queue high-water mark")
	require.Positive(t, accepted.Load())
	require.Zero(t, missingRetryAfter.Load(), "refusals without Retry-After")

	// Every answered id ends Delivered.
	answered.Range(func(k, _ any) bool {
		id := k.(string)
		require.Eventually(t, func() bool {
			_, m := getMessage(t, node.url(""), id)
			return m["status"] == float64(2)
		}, 30*time.Second, 20*time.Millisecond, "message %s was answered but never delivered", id)
		return true
	})

	require.Eventually(t, func() bool {
		resp, err := http.Get(node.url("/health/ready"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 20*time.Millisecond, "the node did not become ready after the load")
}

func sendWithHeaders(ctx context.Context, client *http.Client, base, phone string) (int, string, string) {
	body := fmt.Sprintf(`{"recipientPhoneNumber":%q,"messageContent":"load"}`, phone)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/messages", strings.NewReader(body))
	if err != nil {
		return 0, "", ""
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", testAPIKey)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", ""
	}
	defer resp.Body.Close()
	var out struct {
		ID string `json:"id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, resp.Header.Get("Retry-After"), out.ID
}
