package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/esh3artech/esh3artech/hub/signalr"
	"github.com/esh3artech/esh3artech/router/cluster"
	"github.com/esh3artech/esh3artech/storage"
)

const testClusterSecret = "cluster-secret-for-tests-0123456789abcdef"

// startClusterNode starts a serving node of a test cluster; seed is the
// gossip address of a node to join, or "" for the first node.
func startClusterNode(t *testing.T, id, seed string) *Node {
	t.Helper()
	env := []string{
		"ESH3ARTECH_CLUSTER_NODE_ID=" + id,
		"ESH3ARTECH_CLUSTER_GOSSIP_LISTEN=127.0.0.1:0",
		"ESH3ARTECH_CLUSTER_PEER_LISTEN=127.0.0.1:0",
		"ESH3ARTECH_CLUSTER_SECRET=" + testClusterSecret,
		"ESH3ARTECH_CLUSTER_PROBE_INTERVAL=100ms",
		"ESH3ARTECH_CLUSTER_PROBE_TIMEOUT=50ms",
		"ESH3ARTECH_CLUSTER_GOSSIP_INTERVAL=20ms",
		"ESH3ARTECH_CLUSTER_PUSH_PULL_INTERVAL=1s",
		"ESH3ARTECH_CLUSTER_DRAIN_TIMEOUT=10s",
	}
	if seed != "" {
		env = append(env, `ESH3ARTECH_CLUSTER_SEEDS=["`+seed+`"]`)
	}
	node := newTestNode(t, env...)
	require.NoError(t, node.Serve())
	return node
}

func (n *Node) gossipAddr() string { return n.cluster.membership.LocalGossipAddr() }

// startTestCluster starts count nodes and waits until they agree on a ring
// of all of them.
func startTestCluster(t *testing.T, count int) []*Node {
	t.Helper()
	nodes := []*Node{startClusterNode(t, "n1", "")}
	for i := 2; i <= count; i++ {
		nodes = append(nodes, startClusterNode(t, fmt.Sprintf("n%d", i), nodes[0].gossipAddr()))
	}
	requireRingAgreement(t, nodes)
	return nodes
}

func requireRingAgreement(t *testing.T, nodes []*Node) {
	t.Helper()
	// The placement's ring is the one routing uses; it follows the
	// membership's ring after the change callback ran.
	placementRing := func(n *Node) *cluster.Ring {
		n.cluster.placement.mu.RLock()
		defer n.cluster.placement.mu.RUnlock()
		return n.cluster.placement.members
	}
	require.Eventually(t, func() bool {
		first := placementRing(nodes[0])
		for _, n := range nodes {
			r := placementRing(n)
			if r == nil || first == nil || r.Len() != len(nodes) || r.Version() != first.Version() {
				return false
			}
		}
		return true
	}, 20*time.Second, 20*time.Millisecond, "the nodes did not agree on one ring")
}

// phoneOwnedBy returns a normalised and a local form of a phone number that
// owner owns.
func phoneOwnedBy(t *testing.T, nodes []*Node, owner *Node) (string, string) {
	t.Helper()
	for i := range 100000 {
		local := fmt.Sprintf("77%07d", i)
		node, _ := nodes[0].cluster.placement.Owner("967" + local)
		if node == owner.cfg.Cluster.NodeID {
			return "967" + local, local
		}
	}
	t.Fatal("no phone owned by " + owner.cfg.Cluster.NodeID)
	return "", ""
}

func httpSend(t *testing.T, node *Node, phone string) string {
	t.Helper()
	body := `{"recipientPhoneNumber": "` + phone + `", "messageContent": "cluster"}`
	req, err := http.NewRequest(http.MethodPost, "http://"+node.Addr()+"/api/v1/messages", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", acmeKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	var out struct{ ID string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out.ID
}

func httpStatus(t *testing.T, node *Node, id string) int {
	t.Helper()
	rec := serve(t, node, request{Method: http.MethodGet, Path: "/api/v1/messages/" + id, Header: asAcme()})
	if rec.Code != http.StatusOK {
		return -rec.Code
	}
	var m struct{ Status int }
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &m))
	return m.Status
}

// goDevice is a Go SignalR client that records the ids it receives.
type goDevice struct {
	client *signalr.Client
	mu     sync.Mutex
	ids    []string
}

func connectDevice(t *testing.T, node *Node, phone string) *goDevice {
	t.Helper()
	d := &goDevice{}
	record := func(text string, many bool) {
		var msgs []struct{ Id string }
		if many {
			_ = json.Unmarshal([]byte(text), &msgs)
		} else {
			var one struct{ Id string }
			_ = json.Unmarshal([]byte(text), &one)
			msgs = append(msgs, one)
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, m := range msgs {
			d.ids = append(d.ids, m.Id)
		}
	}
	handler := func(many bool) signalr.Handler {
		return func(args []json.RawMessage) {
			var text string
			if json.Unmarshal(args[0], &text) == nil {
				record(text, many)
			}
		}
	}
	tok, err := MintToken(testSecret, map[string]any{"phone_number": phone}, time.Hour)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := signalr.Dial(ctx, "http://"+node.Addr()+"/online-mobile-user", signalr.Options{
		AccessToken: tok,
		Handlers: map[string]signalr.Handler{
			"ReceiveMessage": handler(false), "ReceivePendingMessages": handler(true),
		},
	})
	require.NoError(t, err)
	d.client = c
	t.Cleanup(func() { _ = c.Close() })
	return d
}

func (d *goDevice) received() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.ids...)
}

func (d *goDevice) waitFor(t *testing.T, id string) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, got := range d.received() {
			if got == id {
				return true
			}
		}
		return false
	}, 20*time.Second, 10*time.Millisecond, "message %s never arrived", id)
}

func TestClusterForwardsToOwner(t *testing.T) {
	nodes := startTestCluster(t, 3)
	phone, local := phoneOwnedBy(t, nodes, nodes[2])
	id := httpSend(t, nodes[0], local)

	require.Eventually(t, func() bool {
		m, err := nodes[2].store.Get(context.Background(), mustID(t, id))
		return err == nil && m.Status == storage.StatusPending
	}, 20*time.Second, 10*time.Millisecond, "the owner never stored the message")
	_, err := nodes[0].store.Get(context.Background(), mustID(t, id))
	require.ErrorIs(t, err, storage.ErrNotFound, "the sender must delete its copy after forwarding")
	require.Equal(t, int(storage.StatusPending), httpStatus(t, nodes[1], id), "status by id from any node")
	require.Equal(t, phone, "967"+local)
}

func TestClusterConnectionOnNonOwner(t *testing.T) {
	nodes := startTestCluster(t, 3)
	_, local := phoneOwnedBy(t, nodes, nodes[2])

	// A backlog message first, then a live one, to a device on a node that
	// does not own its user.
	backlog := httpSend(t, nodes[0], local)
	require.Eventually(t, func() bool { return httpStatus(t, nodes[2], backlog) == 0 },
		20*time.Second, 10*time.Millisecond)
	device := connectDevice(t, nodes[1], local)
	device.waitFor(t, backlog)

	live := httpSend(t, nodes[0], local)
	device.waitFor(t, live)

	for _, id := range []string{backlog, live} {
		_, err := device.client.Invoke(context.Background(), "AcknowledgeMessage", id)
		require.NoError(t, err, "ack through a peer")
		require.Equal(t, int(storage.StatusDelivered), httpStatus(t, nodes[0], id),
			"the ack's completion follows the owner's write")
	}
}

func TestClusterLeaveHandsOverInboxes(t *testing.T) {
	nodes := startTestCluster(t, 3)
	_, local := phoneOwnedBy(t, nodes, nodes[2])
	id := httpSend(t, nodes[0], local)
	require.Eventually(t, func() bool { return httpStatus(t, nodes[2], id) == 0 },
		20*time.Second, 10*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, nodes[2].Shutdown(ctx))
	requireRingAgreement(t, nodes[:2])

	require.Equal(t, int(storage.StatusPending), httpStatus(t, nodes[0], id),
		"the message must live on after its owner left")
	device := connectDevice(t, nodes[0], local)
	device.waitFor(t, id)
	_, err := device.client.Invoke(context.Background(), "AcknowledgeMessage", id)
	require.NoError(t, err)
	require.Equal(t, int(storage.StatusDelivered), httpStatus(t, nodes[1], id))
}

func TestClusterRingAgreementAfterJoin(t *testing.T) {
	nodes := startTestCluster(t, 2)
	nodes = append(nodes, startClusterNode(t, "n3", nodes[1].gossipAddr()))
	requireRingAgreement(t, nodes)
	for i := range 200 {
		phone := fmt.Sprintf("96777%07d", i)
		want, _ := nodes[0].cluster.placement.Owner(phone)
		for _, n := range nodes[1:] {
			got, _ := n.cluster.placement.Owner(phone)
			require.Equal(t, want, got, "owner of %s", phone)
		}
	}
}

func mustID(t *testing.T, s string) storage.ID {
	t.Helper()
	id, err := storage.ParseID(s)
	require.NoError(t, err)
	return id
}

func TestClusterLeaveHandsOverSettledMessages(t *testing.T) {
	nodes := startTestCluster(t, 3)
	_, local := phoneOwnedBy(t, nodes, nodes[2])
	id := httpSend(t, nodes[0], local)
	device := connectDevice(t, nodes[2], local)
	device.waitFor(t, id)
	_, err := device.client.Invoke(context.Background(), "AcknowledgeMessage", id)
	require.NoError(t, err)
	require.NoError(t, device.client.Close())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, nodes[2].Shutdown(ctx))
	requireRingAgreement(t, nodes[:2])
	require.Equal(t, int(storage.StatusDelivered), httpStatus(t, nodes[0], id),
		"a delivered message stays readable after its node left")
}
