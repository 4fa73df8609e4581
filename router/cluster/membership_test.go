package cluster

import (
	"context"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// waitFor bounds every poll for a cluster state. Convergence with the test
// timers below normally takes well under a second.
const waitFor = 15 * time.Second

const pollEvery = 20 * time.Millisecond

var testKey = []byte("0123456789abcdef")

// ringRecorder stores every ring passed to OnChange and counts calls that
// overlapped another call.
type ringRecorder struct {
	active      atomic.Int32
	overlapping atomic.Int32

	mu    sync.Mutex
	rings []*Ring
}

func (r *ringRecorder) record(ring *Ring) {
	if r.active.Add(1) > 1 {
		r.overlapping.Add(1)
	}
	defer r.active.Add(-1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rings = append(r.rings, ring)
}

func (r *ringRecorder) all() []*Ring {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.rings)
}

func (r *ringRecorder) last() *Ring {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.rings) == 0 {
		return nil
	}
	return r.rings[len(r.rings)-1]
}

// testNode is a Membership on loopback with the logs and rings it produced.
type testNode struct {
	*Membership
	logs    *observer.ObservedLogs
	changes *ringRecorder
}

// testConfig returns a Config for node id on a free loopback port with fast
// timers. Its peer and API addresses are placeholders that nothing dials.
func testConfig(id string, seeds ...string) Config {
	return Config{
		Self: Member{
			ID:         id,
			PeerAddr:   id + ".test:7001",
			APIAddr:    id + ".test:8080",
			GossipAddr: "127.0.0.1:0",
		},
		Seeds:            seeds,
		SecretKey:        testKey,
		ProbeInterval:    100 * time.Millisecond,
		ProbeTimeout:     50 * time.Millisecond,
		SuspicionMult:    3,
		GossipInterval:   20 * time.Millisecond,
		PushPullInterval: 500 * time.Millisecond,
		JoinRetry:        100 * time.Millisecond,
	}
}

// startNode starts cfg with an observed logger and OnChange recorder and
// shuts it down when the test ends. A failed test prints the node's logs.
func startNode(t *testing.T, cfg Config) *testNode {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	changes := &ringRecorder{}
	cfg.Logger = zap.New(core)
	cfg.OnChange = changes.record
	m, err := Start(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, m.Shutdown())
		require.Zero(t, changes.overlapping.Load(), "OnChange calls of %s overlapped", cfg.Self.ID)
		if t.Failed() {
			for _, e := range logs.All() {
				t.Logf("%s %s %s %v", cfg.Self.ID, e.Level, e.Message, e.ContextMap())
			}
		}
	})
	return &testNode{Membership: m, logs: logs, changes: changes}
}

func memberIDs(members []Member) []string {
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.ID
	}
	return ids
}

// requireRings waits until every node's ring and last OnChange ring hold
// exactly ids, all with the same version. The nodes are checked together
// because a ring may change again after it first matched: a node restarted
// on a new address can be dropped once more by a stale failure message
// before it refutes it.
func requireRings(t *testing.T, nodes []*testNode, ids ...string) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		want := nodes[0].Ring().Version()
		for _, n := range nodes {
			id, ring := n.cfg.Self.ID, n.Ring()
			assert.Equal(c, ids, memberIDs(ring.Members()), "members on node %s", id)
			assert.Equal(c, want, ring.Version(), "ring version on node %s", id)
			assert.Same(c, ring, n.changes.last(), "last OnChange ring on node %s", id)
		}
	}, waitFor, pollEvery)
}

// startCluster starts nodes a, b and c, with b and c seeded by a, and waits
// until they agree.
func startCluster(t *testing.T) (a, b, c *testNode) {
	t.Helper()
	a = startNode(t, testConfig("a"))
	b = startNode(t, testConfig("b", a.LocalGossipAddr()))
	c = startNode(t, testConfig("c", a.LocalGossipAddr()))
	requireRings(t, []*testNode{a, b, c}, "a", "b", "c")
	return a, b, c
}

func TestMembershipNodesAgree(t *testing.T) {
	t.Parallel()
	a, b, c := startCluster(t)

	want := map[string]Member{}
	for _, n := range []*testNode{a, b, c} {
		self := n.cfg.Self
		self.GossipAddr = n.LocalGossipAddr()
		want[self.ID] = self
	}
	for _, n := range []*testNode{a, b, c} {
		for _, m := range n.Members() {
			require.Equal(t, want[m.ID], m, "member %s as node %s sees it", m.ID, n.cfg.Self.ID)
		}
		first := n.changes.all()[0]
		require.Contains(t, memberIDs(first.Members()), n.cfg.Self.ID, "first OnChange ring of %s", n.cfg.Self.ID)
	}
	phone := "967775265496"
	require.Equal(t, a.Ring().Owner(phone), b.Ring().Owner(phone))
	require.Equal(t, a.Ring().Owner(phone), c.Ring().Owner(phone))
}

func TestMembershipLeave(t *testing.T) {
	t.Parallel()
	a, b, c := startCluster(t)

	require.NoError(t, b.Leave(time.Second))
	requireRings(t, []*testNode{a, b, c}, "a", "c")
	require.NoError(t, b.Leave(time.Second), "second Leave")
}

func TestMembershipCrashDetected(t *testing.T) {
	t.Parallel()
	a, b, c := startCluster(t)

	require.NoError(t, c.Shutdown())
	requireRings(t, []*testNode{a, b}, "a", "b")
}

func TestMembershipRestartOnNewPort(t *testing.T) {
	t.Parallel()
	a, b, c := startCluster(t)
	oldGossip := c.LocalGossipAddr()
	require.NoError(t, c.Shutdown())
	requireRings(t, []*testNode{a, b}, "a", "b")

	cfg := testConfig("c", a.LocalGossipAddr())
	cfg.Self.APIAddr = "c.test:9090"
	restarted := startNode(t, cfg)
	require.NotEqual(t, oldGossip, restarted.LocalGossipAddr())
	requireRings(t, []*testNode{a, b, restarted}, "a", "b", "c")
	requireMemberSeen(t, []*testNode{a, b}, "c", restarted.LocalGossipAddr(), "c.test:9090")
}

func TestMembershipRestartBeforeDetection(t *testing.T) {
	t.Parallel()
	a, b, c := startCluster(t)
	gossip := c.LocalGossipAddr()
	require.NoError(t, c.Shutdown())

	// The restart reuses the port at once, so a and b may still see the
	// old process as alive. The new metadata must still reach them.
	cfg := testConfig("c", a.LocalGossipAddr())
	cfg.Self.GossipAddr = gossip
	cfg.Self.APIAddr = "c.test:9090"
	restarted := startNode(t, cfg)
	requireMemberSeen(t, []*testNode{a, b}, "c", gossip, "c.test:9090")
	requireRings(t, []*testNode{a, b, restarted}, "a", "b", "c")
}

func TestMembershipRestartOnNewPortBeforeDetection(t *testing.T) {
	t.Parallel()
	a, b, c := startCluster(t)
	require.NoError(t, c.Shutdown())

	// a and b reject the new address while they still see the old one as
	// alive, and accept it once they have declared the old one dead.
	restarted := startNode(t, testConfig("c", a.LocalGossipAddr()))
	requireMemberSeen(t, []*testNode{a, b}, "c", restarted.LocalGossipAddr(), "c.test:8080")
	requireRings(t, []*testNode{a, b, restarted}, "a", "b", "c")
}

// requireMemberSeen waits until every node's ring lists member id with the
// given gossip and API addresses.
func requireMemberSeen(t *testing.T, nodes []*testNode, id, gossip, api string) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		for _, n := range nodes {
			members := n.Members()
			i := slices.IndexFunc(members, func(m Member) bool { return m.ID == id })
			if !assert.GreaterOrEqual(c, i, 0, "member %s on node %s", id, n.cfg.Self.ID) {
				continue
			}
			m := members[i]
			assert.Equal(c, gossip, m.GossipAddr, "gossip address of %s on node %s", id, n.cfg.Self.ID)
			assert.Equal(c, api, m.APIAddr, "API address of %s on node %s", id, n.cfg.Self.ID)
		}
	}, waitFor, pollEvery)
}

func TestMembershipJoinRetriesUntilSeedUp(t *testing.T) {
	t.Parallel()
	// Take a free loopback port from a node that stops at once, so the
	// seed is down when a starts.
	probe := startNode(t, testConfig("b"))
	seed := probe.LocalGossipAddr()
	require.NoError(t, probe.Shutdown())

	a := startNode(t, testConfig("a", seed))
	require.Equal(t, []string{"a"}, memberIDs(a.Members()))
	require.NotEmpty(t, a.logs.FilterMessage("joining cluster failed, retrying").All())

	cfg := testConfig("b")
	cfg.Self.GossipAddr = seed
	b := startNode(t, cfg)
	requireRings(t, []*testNode{a, b}, "a", "b")
}

func TestMembershipWrongKeyCannotJoin(t *testing.T) {
	t.Parallel()
	a := startNode(t, testConfig("a"))
	cfg := testConfig("x", a.LocalGossipAddr())
	cfg.SecretKey = []byte("fedcba9876543210")
	x := startNode(t, cfg)

	// Start returns after the first join attempt, which must have failed.
	require.NotEmpty(t, x.logs.FilterMessage("joining cluster failed, retrying").All())
	require.Equal(t, []string{"x"}, memberIDs(x.Members()))
	require.Equal(t, []string{"a"}, memberIDs(a.Members()))
	require.Empty(t, a.logs.FilterMessage("member joined").FilterField(zap.String("peer", "x")).All())
}

func TestMembershipSeedIsSelf(t *testing.T) {
	t.Parallel()
	probe := startNode(t, testConfig("a"))
	self := probe.LocalGossipAddr()
	require.NoError(t, probe.Shutdown())

	cfg := testConfig("a", self)
	cfg.Self.GossipAddr = self
	a := startNode(t, cfg)
	require.NotEmpty(t, a.logs.FilterMessage("joining cluster failed, retrying").All(),
		"joining only itself is not a join")

	b := startNode(t, testConfig("b", self))
	requireRings(t, []*testNode{a, b}, "a", "b")
	require.Eventually(t, func() bool {
		return a.logs.FilterMessage("joined cluster").Len() > 0
	}, waitFor, pollEvery, "a stops retrying once b has joined it")
}

func TestMembershipShutdownTwice(t *testing.T) {
	t.Parallel()
	a := startNode(t, testConfig("a"))
	require.NoError(t, a.Leave(time.Second))
	require.NoError(t, a.Shutdown())
	require.NoError(t, a.Shutdown())
	require.ErrorIs(t, a.Leave(time.Second), ErrShutdown)
}

func TestMembershipLeaveAfterShutdown(t *testing.T) {
	t.Parallel()
	a := startNode(t, testConfig("a"))
	require.NoError(t, a.Shutdown())
	require.ErrorIs(t, a.Leave(time.Second), ErrShutdown)
}

func TestStartCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Start(ctx, testConfig("a"))
	require.ErrorIs(t, err, context.Canceled)
}

func TestStartInvalidConfig(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   error
	}{
		{"missing id", func(c *Config) { c.Self.ID = "" }, ErrMissingNodeID},
		{"short key", func(c *Config) { c.SecretKey = []byte("short") }, ErrInvalidSecretKey},
		{"host name", func(c *Config) { c.Self.GossipAddr = "localhost:0" }, ErrInvalidAddress},
		{"no port", func(c *Config) { c.Self.GossipAddr = "127.0.0.1" }, ErrInvalidAddress},
		{"bad port", func(c *Config) { c.Self.GossipAddr = "127.0.0.1:70000" }, ErrInvalidAddress},
		{"bad advertise", func(c *Config) { c.AdvertiseAddr = "example.test:7946" }, ErrInvalidAddress},
		{"probe timeout", func(c *Config) { c.ProbeTimeout = c.ProbeInterval }, ErrInvalidTimers},
		{"large meta", func(c *Config) { c.Self.PeerAddr = string(make([]byte, 600)) }, ErrMetaTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig("a")
			tt.change(&cfg)
			_, err := Start(context.Background(), cfg)
			require.ErrorIs(t, err, tt.want)
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg := Config{}.withDefaults()
	require.Equal(t, DefaultVirtualNodes, cfg.VirtualNodes)
	require.Equal(t, time.Second, cfg.ProbeInterval)
	require.Equal(t, 500*time.Millisecond, cfg.ProbeTimeout)
	require.Equal(t, 4, cfg.SuspicionMult)
	require.Equal(t, 200*time.Millisecond, cfg.GossipInterval)
	require.Equal(t, 15*time.Second, cfg.PushPullInterval)
	require.Equal(t, 4, cfg.RetransmitMult)
	require.Equal(t, time.Second, cfg.JoinRetry)

	fast := Config{ProbeInterval: 100 * time.Millisecond}.withDefaults()
	require.Equal(t, 50*time.Millisecond, fast.ProbeTimeout)
}

func TestMemberlistLogLevels(t *testing.T) {
	tests := []struct {
		line  string
		level string
		text  string
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:1\n", "debug", "Stream connection from=127.0.0.1:1"},
		{"[INFO] memberlist: Suspect b has failed\n", "debug", "Suspect b has failed"},
		{"[WARN] memberlist: Refuting a suspect message\n", "warn", "Refuting a suspect message"},
		{"[ERR] memberlist: Failed to receive: bad key\n", "warn", "Failed to receive: bad key"},
		{"[ERROR] memberlist: Push/Pull failed\n", "warn", "Push/Pull failed"},
		{"[ERR] Failed to shutdown transport: x\n", "warn", "Failed to shutdown transport: x"},
		{"no tag at all\n", "warn", "no tag at all"},
	}
	for _, tt := range tests {
		core, logs := observer.New(zap.DebugLevel)
		memberlistLogger(zap.New(core)).Print(tt.line)
		entries := logs.All()
		require.Len(t, entries, 1, tt.line)
		require.Equal(t, tt.level, entries[0].Level.String(), tt.line)
		require.Equal(t, "memberlist log", entries[0].Message, tt.line)
		require.Equal(t, tt.text, entries[0].ContextMap()["text"], tt.line)
	}
}

func TestMemberMetaRoundTrip(t *testing.T) {
	self := Member{ID: "a", PeerAddr: "10.0.0.1:7001", APIAddr: "10.0.0.1:8080"}
	meta, err := encodeMeta(self)
	require.NoError(t, err)

	node := &memberlist.Node{Name: "a", Addr: net.ParseIP("10.0.0.1"), Port: 7946, Meta: meta}
	got, err := memberFromNode(node)
	require.NoError(t, err)
	self.GossipAddr = "10.0.0.1:7946"
	require.Equal(t, self, got)

	node.Meta = []byte("not json")
	_, err = memberFromNode(node)
	require.Error(t, err)
}
