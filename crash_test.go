package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestKillDuringLoadLosesNoAnsweredMessage sends messages from many
// concurrent clients, kills the node with SIGKILL in the middle, restarts
// it on the same data folder and reads back every message that was
// answered with an id.
func TestKillDuringLoadLosesNoAnsweredMessage(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, testConfig(dir, ""))
	node := startTestNode(t, cfg)

	const senders = 32
	answered := sync.Map{} // id -> content
	var count atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for i := 0; ctx.Err() == nil && i < 100000; i++ {
				content := fmt.Sprintf("sender %d message %d", s, i)
				status, id, err := sendMessage(ctx, client, node.url(""), "775265496", content)
				if err != nil {
					return // the node is gone
				}
				if status == http.StatusAccepted {
					answered.Store(id, content)
					count.Add(1)
				}
			}
		}()
	}

	// Kill once a few thousand messages were answered, mid-stream.
	require.Eventually(t, func() bool { return count.Load() >= 3000 }, 50*time.Second,
		10*time.Millisecond, "node answered too few messages before the kill")
	node.kill()
	wg.Wait()
	cancel()

	restarted := startTestNode(t, cfg)
	checked := 0
	answered.Range(func(k, v any) bool {
		status, m := getMessage(t, restarted.url(""), k.(string))
		require.Equal(t, http.StatusOK, status, "answered id %s is missing after restart", k)
		require.Equal(t, v, m["messageContent"], "content of %s", k)
		checked++
		return true
	})
	require.GreaterOrEqual(t, checked, 3000)
	t.Logf("all %d answered messages survived SIGKILL", checked)
}
