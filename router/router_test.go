package router

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esh3artech/esh3artech/hub"
	"github.com/esh3artech/esh3artech/storage"
)

// fakeHub records what the router sends to each connection.
type fakeHub struct {
	mu      sync.Mutex
	conns   map[string][]hub.ConnInfo // by user
	live    map[string][]string       // conn id -> message ids via ReceiveMessage
	pending map[string][][]string     // conn id -> pages via ReceivePendingMessages
}

func newFakeHub() *fakeHub {
	return &fakeHub{
		conns: map[string][]hub.ConnInfo{}, live: map[string][]string{},
		pending: map[string][][]string{},
	}
}

func (f *fakeHub) connect(user, id string) hub.ConnInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := hub.ConnInfo{ID: id, User: user}
	f.conns[user] = append(f.conns[user], c)
	return c
}

func (f *fakeHub) Connections(user string) []hub.ConnInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]hub.ConnInfo(nil), f.conns[user]...)
}

func (f *fakeHub) SendMessage(connID string, m hub.MobileMessage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live[connID] = append(f.live[connID], m.ID)
	return nil
}

func (f *fakeHub) SendPending(connID string, ms []hub.MobileMessage) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	page := make([]string, len(ms))
	for i, m := range ms {
		page[i] = m.ID
	}
	f.pending[connID] = append(f.pending[connID], page)
	return nil
}

func (f *fakeHub) liveCount(connID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.live[connID])
}

func (f *fakeHub) pages(connID string) [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]string(nil), f.pending[connID]...)
}

type harness struct {
	store  *storage.Store
	router *Router
	hub    *fakeHub
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	s, err := storage.Open(t.TempDir(), storage.Options{})
	require.NoError(t, err)
	h := &harness{store: s, hub: newFakeHub()}
	h.router = New(cfg, s)
	h.router.Start(h.hub)
	t.Cleanup(func() {
		require.NoError(t, h.router.Shutdown(context.Background()))
		require.NoError(t, s.Close())
	})
	return h
}

func (h *harness) send(t *testing.T, to string, p storage.Priority) storage.ID {
	t.Helper()
	id, err := storage.NewID()
	require.NoError(t, err)
	m := &storage.Message{
		ID: id, CreatorID: "acme", Recipient: to, Content: "hi", Status: storage.StatusQueued,
		Priority: p, CreationTime: time.Now().UTC(),
	}
	_, _, err = h.store.Accept(context.Background(), []*storage.Message{m}, storage.Idempotency{})
	require.NoError(t, err)
	h.router.Notify()
	return id
}

func (h *harness) status(t *testing.T, id storage.ID) storage.Status {
	t.Helper()
	m, err := h.store.Get(context.Background(), id)
	require.NoError(t, err)
	return m.Status
}

func (h *harness) waitStatus(t *testing.T, id storage.ID, want storage.Status) {
	t.Helper()
	require.Eventually(t, func() bool { return h.status(t, id) == want }, 10*time.Second,
		5*time.Millisecond, "message %s never reached status %s (now %s)", id, want, h.status(t, id))
}

func TestLiveDeliveryAndAck(t *testing.T) {
	h := newHarness(t, Config{})
	c := h.hub.connect("967775265496", "c1")
	id := h.send(t, "967775265496", storage.PriorityNormal)
	h.waitStatus(t, id, storage.StatusSent)
	require.Equal(t, 1, h.hub.liveCount("c1"))

	require.NoError(t, h.router.Acknowledge(context.Background(), c, id.String()))
	require.Equal(t, storage.StatusDelivered, h.status(t, id), "status must be durable when the ack returns")
}

func TestOfflineRecipientStaysPending(t *testing.T) {
	h := newHarness(t, Config{})
	id := h.send(t, "967775265496", storage.PriorityNormal)
	h.waitStatus(t, id, storage.StatusPending)
	require.Eventually(t, func() bool { return h.store.Stats().QueueDepth == 0 }, 10*time.Second,
		5*time.Millisecond, "the queue was not drained")
}

func TestTwoDevicesOneAck(t *testing.T) {
	h := newHarness(t, Config{})
	phone := h.hub.connect("967775265496", "phone")
	h.hub.connect("967775265496", "tablet")
	id := h.send(t, "967775265496", storage.PriorityNormal)
	h.waitStatus(t, id, storage.StatusSent)
	require.Equal(t, 1, h.hub.liveCount("phone"))
	require.Equal(t, 1, h.hub.liveCount("tablet"))
	require.NoError(t, h.router.Acknowledge(context.Background(), phone, id.String()))
	require.Equal(t, storage.StatusDelivered, h.status(t, id))
}

func TestAckOfAnotherUsersMessage(t *testing.T) {
	h := newHarness(t, Config{})
	h.hub.connect("967775265496", "c1")
	id := h.send(t, "967775265496", storage.PriorityNormal)
	h.waitStatus(t, id, storage.StatusSent)

	intruder := hub.ConnInfo{ID: "c2", User: "967775000000"}
	err := h.router.Acknowledge(context.Background(), intruder, id.String())
	var ce *hub.ClientError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, storage.StatusSent, h.status(t, id))

	err = h.router.Acknowledge(context.Background(), intruder, "not-a-uuid")
	require.ErrorAs(t, err, &ce)
}

func TestBacklogPagesInPriorityOrder(t *testing.T) {
	h := newHarness(t, Config{PageSize: 2, RetryBase: time.Hour})
	user := "967775265496"
	low := h.send(t, user, storage.PriorityLow)
	normal := h.send(t, user, storage.PriorityNormal)
	urgent := h.send(t, user, storage.PriorityUrgent)
	for _, id := range []storage.ID{low, normal, urgent} {
		h.waitStatus(t, id, storage.StatusPending)
	}

	c := h.hub.connect(user, "c1")
	h.router.Connected(context.Background(), c)
	require.Eventually(t, func() bool { return len(h.hub.pages("c1")) == 1 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, []string{urgent.String(), normal.String()}, h.hub.pages("c1")[0])

	// The second page follows only once the first was acknowledged.
	require.NoError(t, h.router.Acknowledge(context.Background(), c, urgent.String()))
	require.Len(t, h.hub.pages("c1"), 1)
	require.NoError(t, h.router.Acknowledge(context.Background(), c, normal.String()))
	require.Eventually(t, func() bool { return len(h.hub.pages("c1")) == 2 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, []string{low.String()}, h.hub.pages("c1")[1])
}

func TestBacklogNextPageAfterAckTimeout(t *testing.T) {
	h := newHarness(t, Config{PageSize: 1, RetryBase: 50 * time.Millisecond, MaxAttempts: 100})
	user := "967775265496"
	first := h.send(t, user, storage.PriorityNormal)
	second := h.send(t, user, storage.PriorityNormal)
	h.waitStatus(t, first, storage.StatusPending)
	h.waitStatus(t, second, storage.StatusPending)

	c := h.hub.connect(user, "c1")
	h.router.Connected(context.Background(), c)
	require.Eventually(t, func() bool { return len(h.hub.pages("c1")) >= 2 }, 10*time.Second, 5*time.Millisecond)
	pages := h.hub.pages("c1")
	require.Equal(t, []string{first.String()}, pages[0])
	require.Equal(t, []string{second.String()}, pages[1])
}

func TestRetriesThenDeadLetter(t *testing.T) {
	h := newHarness(t, Config{RetryBase: 20 * time.Millisecond, RetryMax: 40 * time.Millisecond, MaxAttempts: 3})
	h.hub.connect("967775265496", "c1")
	id := h.send(t, "967775265496", storage.PriorityNormal)
	h.waitStatus(t, id, storage.StatusFailed)

	m, err := h.store.Get(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, 3, h.hub.liveCount("c1"))
	require.Equal(t, 2, m.RetryCount)
	require.NotNil(t, m.MovedToDlqAt)
	require.NotNil(t, m.LastRetryAt)
	require.Contains(t, m.FailureReason, "3 attempts")

	_, err = h.router.Requeue(context.Background(), id)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return h.hub.liveCount("c1") > 3 }, 10*time.Second, 5*time.Millisecond)
}

func TestExpiredMessageDeadLettered(t *testing.T) {
	h := newHarness(t, Config{TTL: 50 * time.Millisecond, RetryBase: 10 * time.Millisecond,
		RetryMax: 20 * time.Millisecond})
	id := h.send(t, "967775265496", storage.PriorityNormal)
	h.waitStatus(t, id, storage.StatusFailed)
	m, err := h.store.Get(context.Background(), id)
	require.NoError(t, err)
	require.Contains(t, m.FailureReason, "expired")
}

func TestNoSendAfterAck(t *testing.T) {
	h := newHarness(t, Config{RetryBase: 10 * time.Millisecond, RetryMax: 10 * time.Millisecond,
		MaxAttempts: 1000})
	c := h.hub.connect("967775265496", "c1")
	id := h.send(t, "967775265496", storage.PriorityNormal)
	h.waitStatus(t, id, storage.StatusSent)
	require.NoError(t, h.router.Acknowledge(context.Background(), c, id.String()))
	sends := h.hub.liveCount("c1")
	// Several retry periods pass; none may resend the acknowledged message.
	deadline := time.Now().Add(100 * time.Millisecond)
	for time.Now().Before(deadline) {
		require.Equal(t, sends, h.hub.liveCount("c1"))
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBackoffDoublesToCap(t *testing.T) {
	c := Config{RetryBase: 5 * time.Second, RetryMax: 300 * time.Second}.withDefaults()
	want := []time.Duration{5, 10, 20, 40, 80, 160, 300, 300}
	for i, w := range want {
		require.Equal(t, w*time.Second, c.backoff(i+1), "attempt %d", i+1)
	}
}

func TestRetriesBoundedPerRecipient(t *testing.T) {
	h := newHarness(t, Config{PageSize: 2, RetryBase: time.Hour, MaxAttempts: 100})
	user := "967775265496"
	var ids []storage.ID
	for range 6 {
		ids = append(ids, h.send(t, user, storage.PriorityNormal))
	}
	for _, id := range ids {
		h.waitStatus(t, id, storage.StatusPending)
	}
	h.hub.connect(user, "c1")
	var due []*storage.Message
	for _, id := range ids {
		m, err := h.store.Get(context.Background(), id)
		require.NoError(t, err)
		due = append(due, m)
	}

	require.NoError(t, h.router.handleDueBatch(context.Background(), due, time.Now()))
	require.Equal(t, 2, h.hub.liveCount("c1"), "one scan resends at most a page per recipient")
	sent := 0
	for _, id := range ids {
		if h.status(t, id) == storage.StatusSent {
			sent++
		}
	}
	require.Equal(t, 2, sent, "deferred messages are not counted as attempts")
}
