package router

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esh3artech/esh3artech/storage"
)

// pairPlacement is a two-node Placement where node "b" owns every
// recipient.
type pairPlacement struct {
	self  string
	mu    sync.Mutex
	addrs map[string]string
}

func (p *pairPlacement) Owner(string) (string, bool) { return "b", p.self == "b" }
func (p *pairPlacement) Self() string                { return p.self }
func (p *pairPlacement) Nodes() []string             { return []string{"a", "b"} }
func (p *pairPlacement) PeerAddr(node string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.addrs[node]
	return a, ok
}

type peerNode struct {
	router *Router
	store  *storage.Store
	hub    *fakeHub
}

// startPair starts edge node "a" and owner node "b" linked over loopback
// HTTP.
func startPair(t *testing.T) (edge, owner *peerNode) {
	t.Helper()
	secret := []byte("pair-secret-0123456789abcdef01234")
	addrs := map[string]string{}
	nodes := map[string]*peerNode{}
	for _, id := range []string{"a", "b"} {
		s, err := storage.Open(t.TempDir(), storage.Options{})
		require.NoError(t, err)
		p := &pairPlacement{self: id, addrs: addrs}
		r := New(Config{Placement: p, PeerSecret: secret, AttachRefresh: 50 * time.Millisecond,
			RetryBase: time.Hour}, s)
		srv := httptest.NewServer(r.PeerHandler())
		addrs[id] = strings.TrimPrefix(srv.URL, "http://")
		n := &peerNode{router: r, store: s, hub: newFakeHub()}
		nodes[id] = n
		t.Cleanup(func() {
			require.NoError(t, r.Shutdown(context.Background()))
			srv.Close()
			require.NoError(t, s.Close())
		})
	}
	for _, n := range nodes {
		n.router.Start(n.hub)
	}
	return nodes["a"], nodes["b"]
}

func TestEdgeConnectionReceivesThroughOwner(t *testing.T) {
	edge, owner := startPair(t)
	c := edge.hub.connect("967775265496", "c1")
	edge.router.Connected(context.Background(), c)
	require.Eventually(t, func() bool { return len(owner.router.targets(c.User)) == 1 },
		10*time.Second, 5*time.Millisecond, "the owner never saw the attachment")

	id := sendTo(t, edge, c.User)
	require.Eventually(t, func() bool { return edge.hub.liveCount("c1") == 1 },
		10*time.Second, 5*time.Millisecond, "the message never reached the edge connection")
	require.NoError(t, edge.router.Acknowledge(context.Background(), c, id.String()))
	m, err := owner.store.Get(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, storage.StatusDelivered, m.Status)
}

func TestOwnerRestoresLostAttachments(t *testing.T) {
	edge, owner := startPair(t)
	c := edge.hub.connect("967775265496", "c1")
	edge.router.Connected(context.Background(), c)
	require.Eventually(t, func() bool { return len(owner.router.targets(c.User)) == 1 },
		10*time.Second, 5*time.Millisecond)

	// The owner forgets its attachments, as after a restart.
	owner.router.remote.removeNodes(func(string) bool { return false })
	require.Empty(t, owner.router.targets(c.User))
	require.Eventually(t, func() bool { return len(owner.router.targets(c.User)) == 1 },
		10*time.Second, 5*time.Millisecond, "the refresh never restored the attachment")
}

// sendTo accepts a message on n for phone and wakes its router.
func sendTo(t *testing.T, n *peerNode, phone string) storage.ID {
	t.Helper()
	id, err := storage.NewID()
	require.NoError(t, err)
	m := &storage.Message{ID: id, CreatorID: "acme", Recipient: phone, Content: "hi",
		Status: storage.StatusQueued, Priority: storage.PriorityNormal, CreationTime: time.Now().UTC()}
	_, _, err = n.store.Accept(context.Background(), []*storage.Message{m}, storage.Idempotency{})
	require.NoError(t, err)
	n.router.Notify()
	return id
}
