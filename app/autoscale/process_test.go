package autoscale

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestOutputWatcherReadsRingSize(t *testing.T) {
	var file bytes.Buffer
	w := newOutputWatcher(&file)
	chunks := []string{
		`{"level":"info","msg":"node listening"}` + "\n" + `{"msg":"cluster ring ch`,
		`anged","members":2,"version":"ab"}` + "\nnot json\n",
		`{"msg":"cluster ring changed","members":3}`,
	}
	for _, c := range chunks {
		n, err := w.Write([]byte(c))
		require.NoError(t, err)
		require.Equal(t, len(c), n)
	}
	require.EqualValues(t, 2, w.members.Load(), "a line counts once it ends")
	require.Len(t, w.changed, 1)

	_, _ = w.Write([]byte("\n"))
	require.EqualValues(t, 3, w.members.Load())
	require.Equal(t, strings.Join(chunks, "")+"\n", file.String(), "the log file gets every byte")
}

func TestOutputWatcherSkipsLongLines(t *testing.T) {
	w := newOutputWatcher(&bytes.Buffer{})
	long := `{"msg":"cluster ring changed","members":5,"pad":"` + strings.Repeat("x", maxLogLine) + `"}` + "\n"
	_, _ = w.Write([]byte(long))
	_, _ = w.Write([]byte(`{"msg":"cluster ring changed","members":4}` + "\n"))
	require.EqualValues(t, 4, w.members.Load())
}

// startScript runs a shell script as a started node would run.
func startScript(t *testing.T, script string) *nodeProcess {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Fatalf("sh not found: %v", err)
	}
	spec := newSpec(LaunchConfig{Host: "127.0.0.1"}, "sh", t.TempDir(), "auto-1", nil)
	require.NoError(t, writeNodeFiles([]byte("{}"), spec))
	p, err := startProcess(spec, []string{"sh", "-c", script})
	require.NoError(t, err)
	t.Cleanup(func() { p.stop(context.Background(), 0) })
	return p
}

func TestProcessRingThenStop(t *testing.T) {
	p := startScript(t, `trap 'echo draining; exit 0' TERM; `+
		`echo '{"msg":"cluster ring changed","members":3}'; while :; do sleep 0.05; done`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, p.waitRing(ctx, 3))
	require.True(t, p.stop(ctx, 20*time.Second), "the process exits on SIGTERM")
	require.NoError(t, p.waitErr)
}

func TestProcessKilledAfterStopTimeout(t *testing.T) {
	p := startScript(t, `trap '' TERM; echo '{"msg":"cluster ring changed","members":1}'; `+
		`while :; do sleep 0.05; done`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, p.waitRing(ctx, 1), "the trap is set")
	require.False(t, p.stop(ctx, 0), "a process that ignores SIGTERM is killed")
	require.Error(t, p.waitErr)
}

func TestProcessExitEndsWaits(t *testing.T) {
	p := startScript(t, `echo '{"msg":"cluster ring changed","members":1}'; exit 3`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := p.waitRing(ctx, 2)
	require.ErrorContains(t, err, "exited before it joined the ring")
	require.ErrorContains(t, err, "exit status 3")

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	p.spec.Host, p.spec.HTTPPort = splitTestAddr(t, srv.Listener.Addr().String())
	require.ErrorContains(t, p.waitReady(ctx, srv.Client()), "exited before it was ready")
}

func TestWaitReadyPolls(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health/ready" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	p := &nodeProcess{spec: sampleSpec, done: make(chan struct{})}
	p.spec.Host, p.spec.HTTPPort = splitTestAddr(t, srv.Listener.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, p.waitReady(ctx, srv.Client()))
	require.EqualValues(t, 3, calls.Load())
}
