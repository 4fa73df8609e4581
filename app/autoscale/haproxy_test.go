package autoscale

import (
	"bufio"
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
)

// fakeRuntimeAPI is a unix socket that responds like HAProxy's runtime API:
// one command per connection, then the connection is closed.
type fakeRuntimeAPI struct {
	path    string
	respond func(cmd string) string

	mu       sync.Mutex
	commands []string
}

// startFakeRuntimeAPI serves the responses of respond on a unix socket
// until the test ends.
func startFakeRuntimeAPI(t *testing.T, respond func(cmd string) string) *fakeRuntimeAPI {
	t.Helper()
	f := &fakeRuntimeAPI{path: filepath.Join(t.TempDir(), "admin.sock"), respond: respond}
	ln, err := net.Listen("unix", f.path)
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			f.serve(conn)
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return f
}

func (f *fakeRuntimeAPI) serve(conn net.Conn) {
	defer conn.Close()
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return
	}
	cmd := strings.TrimSuffix(line, "\n")
	f.mu.Lock()
	f.commands = append(f.commands, cmd)
	f.mu.Unlock()
	_, _ = conn.Write([]byte(f.respond(cmd)))
}

func (f *fakeRuntimeAPI) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.commands...)
}

func (f *fakeRuntimeAPI) client() *RuntimeAPI { return NewRuntimeAPI(f.path, 5*time.Second) }

// haproxyAnswer returns HAProxy 2.6's response to a successful command.
func haproxyAnswer(cmd string) string {
	switch {
	case strings.HasPrefix(cmd, "add server "):
		return "New server registered.\n\n"
	case strings.HasPrefix(cmd, "del server "):
		return "Server deleted.\n"
	default:
		return "\n"
	}
}

func TestRuntimeAPICommandsSent(t *testing.T) {
	f := startFakeRuntimeAPI(t, haproxyAnswer)
	c := f.client()
	ctx := context.Background()
	require.NoError(t, c.AddServer(ctx, "be_api", "auto-1", "127.0.0.1:9001", "check agent-check agent-port 9002"))
	require.NoError(t, c.Toggle(ctx, true, "health", "be_api", "auto-1"))
	require.NoError(t, c.Toggle(ctx, false, "agent", "be_api", "auto-1"))
	require.NoError(t, c.SetState(ctx, "be_api", "auto-1", "drain"))
	require.NoError(t, c.DelServer(ctx, "be_api", "auto-1"))
	require.Equal(t, []string{
		"add server be_api/auto-1 127.0.0.1:9001 check agent-check agent-port 9002",
		"enable health be_api/auto-1",
		"disable agent be_api/auto-1",
		"set server be_api/auto-1 state drain",
		"del server be_api/auto-1",
	}, f.sent())
}

func TestRuntimeAPIErrorAnswers(t *testing.T) {
	answers := map[string]string{
		"add server be_static/auto-1 127.0.0.1:9001": "Backend must use a dynamic load balancing to support dynamic servers.\n",
		"enable agent be_hub/n1":                     "Agent was not configured on this server, cannot enable.\n\n",
		"set server be_api/zz state maint":           "No such server.\n\n",
		"del server be_api/n1":                       "Only servers in maintenance mode can be deleted.\n",
	}
	f := startFakeRuntimeAPI(t, func(cmd string) string { return answers[cmd] })
	c := f.client()
	ctx := context.Background()
	errs := []error{
		c.AddServer(ctx, "be_static", "auto-1", "127.0.0.1:9001", ""),
		c.Toggle(ctx, true, "agent", "be_hub", "n1"),
		c.SetState(ctx, "be_api", "zz", "maint"),
		c.DelServer(ctx, "be_api", "n1"),
	}
	for i, err := range errs {
		var ce *CommandError
		require.ErrorAs(t, err, &ce, "command %d", i)
		require.Equal(t, strings.TrimSpace(answers[ce.Command]), ce.Response)
		require.True(t, IsCommandError(err))
	}
}

func TestRuntimeAPIRejectsUnsafeArguments(t *testing.T) {
	f := startFakeRuntimeAPI(t, haproxyAnswer)
	c := f.client()
	ctx := context.Background()
	require.Error(t, c.AddServer(ctx, "be_api", "a;shutdown", "127.0.0.1:1", ""))
	require.Error(t, c.AddServer(ctx, "be_api", "a", "127.0.0.1:1", "check; disable frontend fe"))
	require.Error(t, c.SetState(ctx, "be api", "a", "drain"))
	require.Error(t, c.SetState(ctx, "be_api", "a", "down"))
	require.Error(t, c.Toggle(ctx, true, "frontend", "be_api", "a"))
	_, err := c.Exec(ctx, "show info\nshow stat")
	require.Error(t, err)
	require.Empty(t, f.sent(), "nothing is sent for a rejected argument")
}

func TestRuntimeAPIServerNames(t *testing.T) {
	state := "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state\n" +
		"3 be_api 1 n1 127.0.0.1 2 0\n3 be_api 2 auto-1 127.0.0.1 2 0\n\n"
	f := startFakeRuntimeAPI(t, func(cmd string) string {
		if cmd == "show servers state be_api" {
			return state
		}
		return "Can't find backend.\n"
	})
	names, err := f.client().ServerNames(context.Background(), "be_api")
	require.NoError(t, err)
	require.Equal(t, []string{"n1", "auto-1"}, names)
	_, err = f.client().ServerNames(context.Background(), "be_none")
	require.True(t, IsCommandError(err))
}

func TestRuntimeAPIUnreachableSocket(t *testing.T) {
	c := NewRuntimeAPI(filepath.Join(t.TempDir(), "missing.sock"), time.Second)
	err := c.SetState(context.Background(), "be_api", "n1", "drain")
	require.Error(t, err)
	require.False(t, IsCommandError(err))
}

func TestNewRuntimeAPINetwork(t *testing.T) {
	require.Equal(t, "tcp", NewRuntimeAPI("127.0.0.1:9999", time.Second).Network)
	require.Equal(t, "unix", NewRuntimeAPI("/run/haproxy/admin.sock", time.Second).Network)
	require.Equal(t, "unix", NewRuntimeAPI("run/admin.sock", time.Second).Network)
}

// testSupervisor returns a supervisor whose HAProxy is f, for the
// backends be_api (with health and agent checks) and be_hub (health only).
func testSupervisor(t *testing.T, f *fakeRuntimeAPI) *Supervisor {
	t.Helper()
	cfg := defaultConfig()
	cfg.HAProxy.Backends = []BackendConfig{
		{Name: "be_api", Options: "check inter 1s agent-check agent-port {{.AgentPort}}"},
		{Name: "be_hub", Options: "check inter 1s weight 100"},
	}
	return &Supervisor{cfg: &cfg, log: zaptest.NewLogger(t), haproxy: f.client(), unreachable: map[string]bool{}}
}

func testProcess(id string) *nodeProcess {
	spec := sampleSpec
	spec.NodeID = id
	return &nodeProcess{spec: spec, done: make(chan struct{})}
}

func TestAddServersEnablesEachBackend(t *testing.T) {
	f := startFakeRuntimeAPI(t, haproxyAnswer)
	s := testSupervisor(t, f)
	p := testProcess("auto-1")
	require.NoError(t, s.addServers(context.Background(), p))
	require.Equal(t, []string{
		"add server be_api/auto-1 127.0.0.1:8091 check inter 1s agent-check agent-port 8092",
		"enable health be_api/auto-1",
		"enable agent be_api/auto-1",
		"enable server be_api/auto-1",
		"add server be_hub/auto-1 127.0.0.1:8091 check inter 1s weight 100",
		"enable health be_hub/auto-1",
		"enable server be_hub/auto-1",
	}, f.sent())
	require.Len(t, p.servers, 2)
}

func TestAddServersFailureLeavesWhatToRollBack(t *testing.T) {
	f := startFakeRuntimeAPI(t, func(cmd string) string {
		if strings.HasPrefix(cmd, "add server be_hub/") {
			return "Backend must use a dynamic load balancing to support dynamic servers.\n"
		}
		return haproxyAnswer(cmd)
	})
	s := testSupervisor(t, f)
	p := testProcess("auto-1")
	err := s.addServers(context.Background(), p)
	require.True(t, IsCommandError(err))
	require.Len(t, p.servers, 1, "the be_api server is recorded so that it can be removed")

	s.removeServers(context.Background(), p)
	require.Equal(t, []string{
		"disable agent be_api/auto-1",
		"disable health be_api/auto-1",
		"set server be_api/auto-1 state maint",
		"del server be_api/auto-1",
	}, f.sent()[5:])
	require.Empty(t, p.servers)
}

func TestRemoveServersRetriesWhileConnected(t *testing.T) {
	var mu sync.Mutex
	refusals := 2
	f := startFakeRuntimeAPI(t, func(cmd string) string {
		mu.Lock()
		defer mu.Unlock()
		if strings.HasPrefix(cmd, "del server ") && refusals > 0 {
			refusals--
			return "Server still has connections attached to it, cannot remove it.\n"
		}
		return haproxyAnswer(cmd)
	})
	s := testSupervisor(t, f)
	p := testProcess("auto-2")
	p.servers = []addedServer{{backend: "be_hub", health: true}}
	s.removeServers(context.Background(), p)
	require.Equal(t, []string{
		"disable health be_hub/auto-2",
		"set server be_hub/auto-2 state maint",
		"del server be_hub/auto-2",
		"del server be_hub/auto-2",
		"del server be_hub/auto-2",
	}, f.sent())
}

func TestDelServerStopsOnOtherErrors(t *testing.T) {
	f := startFakeRuntimeAPI(t, func(string) string { return "No such server.\n" })
	s := testSupervisor(t, f)
	err := s.delServer(context.Background(), "be_api", "auto-1")
	require.True(t, IsCommandError(err))
	require.Len(t, f.sent(), 1)
}

func TestDrainServersSetsDrain(t *testing.T) {
	f := startFakeRuntimeAPI(t, haproxyAnswer)
	s := testSupervisor(t, f)
	p := testProcess("auto-1")
	p.servers = []addedServer{{backend: "be_api"}, {backend: "be_hub"}}
	s.drainServers(context.Background(), p)
	require.Equal(t, []string{
		"set server be_api/auto-1 state drain",
		"set server be_hub/auto-1 state drain",
	}, f.sent())
}

func TestCheckHAProxyRejectsLeftoverServers(t *testing.T) {
	f := startFakeRuntimeAPI(t, func(cmd string) string {
		return "1\n# be_id be_name srv_id srv_name\n3 x 1 n1 127.0.0.1\n3 x 2 auto-3 127.0.0.1\n"
	})
	s := testSupervisor(t, f)
	err := s.checkHAProxy(context.Background())
	require.ErrorContains(t, err, "has server auto-3 from an earlier run")
}
