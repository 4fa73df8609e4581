package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// runAgainst runs the bench against the fake relay with a short load and
// returns the exit status and the JSON report.
func runAgainst(t *testing.T, f *fakeRelay, extra ...string) (int, map[string]any) {
	t.Helper()
	jsonPath := filepath.Join(t.TempDir(), "report.json")
	args := append([]string{
		"--target", f.srv.URL, "--api-key", fakeAPIKey, "--jwt-secret", fakeJWTSecret,
		"--clients", "10", "--rate", "400", "--duration", "250ms", "--users", "20",
		"--quiet", "--json", jsonPath,
	}, extra...)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	require.NotEqual(t, exitSetup, code, "stderr:\n%s", stderr.String())
	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	var rep map[string]any
	require.NoError(t, json.Unmarshal(b, &rep))
	return code, rep
}

func TestLossUndeliveredSentMessagesAreLost(t *testing.T) {
	// The fake node answers every send with an id but never delivers, and
	// reports its messages as Sent (status 1).
	f := startFakeRelay(t, &fakeRelay{undeliveredStatus: 1})

	code, rep := runAgainst(t, f, "--drain", "200ms")

	require.Equal(t, exitLost, code)
	require.Equal(t, float64(100), rep["accepted"])
	require.Equal(t, float64(0), rep["delivered"])
	require.Equal(t, float64(100), rep["lost"])
	require.Equal(t, float64(0), rep["dead_lettered"])
	loss := rep["loss"].(map[string]any)
	require.Equal(t, map[string]any{"sent": float64(100)}, loss["lost_by_status"])
	require.Len(t, loss["lost_samples"], maxLostSamples)
}

func TestLossDeadLetteredMessagesAreNotLost(t *testing.T) {
	// Undelivered messages that the node dead-lettered (status 5, Failed)
	// were given up on openly: they are not lost.
	f := startFakeRelay(t, &fakeRelay{undeliveredStatus: statusFailed})

	code, rep := runAgainst(t, f, "--drain", "200ms")

	require.Equal(t, exitOK, code)
	require.Equal(t, float64(100), rep["dead_lettered"])
	require.Equal(t, float64(0), rep["lost"])
}

func TestLossClassifiesByStatus(t *testing.T) {
	plan := newTestPlan(t, 6, 2)
	sched := schedule{rate: 1, count: 6}
	r := newRecords(6)
	ids := make([]uuid.UUID, 6)
	for seq := range ids {
		ids[seq] = uuid.New()
		r.record(int64(seq), 0, 0, outcome{kind: outcomeAccepted, id: ids[seq]})
	}
	// Sends 0 to 5: dead-lettered, sent, queued, unknown to the node, failed
	// lookup, and delivered while the lookup ran.
	statuses := map[string]int{ids[0].String(): 5, ids[1].String(): 1, ids[2].String(): 4, ids[5].String(): 1}
	d := newDeliveries(plan)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := filepath.Base(r.URL.Path)
		if id == ids[4].String() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		if id == ids[5].String() {
			d.receive(int(plan.recipient[5]), mobileMessage{MessageContent: string(plan.appendContent(nil, 5))}, time.Now())
		}
		st, ok := statuses[id]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "status": st})
	}))
	defer srv.Close()
	seqs := undeliveredSends(sched, r, d)
	require.Equal(t, []int64{0, 1, 2, 3, 4, 5}, seqs)

	l := countLoss(context.Background(), newMessageLookup(newTestTarget(t, srv, "k"), 2), seqs, r, d)

	require.Equal(t, int64(6), l.Undelivered)
	require.Equal(t, int64(1), l.DeliveredLate)
	require.Equal(t, int64(1), l.DeadLettered)
	require.Equal(t, int64(4), l.Lost)
	require.Equal(t, map[string]int64{"sent": 1, "queued": 1, lookupNotFound: 1, lookupFailed: 1}, l.LostByStatus)
	require.Len(t, l.LostSamples, 4)
}

func TestLossUndeliveredSends(t *testing.T) {
	plan := newTestPlan(t, 4, 2)
	sched := schedule{rate: 1, count: 4}
	r := newRecords(4)
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New()}
	r.record(0, 0, 0, outcome{kind: outcomeAccepted, id: ids[0]})
	r.record(1, 0, 0, outcome{kind: outcomeAccepted, id: ids[1]})
	r.record(2, 0, 0, outcome{kind: outcomeRefused, status: 503})
	r.record(3, 0, 0, outcome{kind: outcomeAccepted, id: ids[3]})
	d := newDeliveries(plan)
	_, ok := d.receive(int(plan.recipient[1]), mobileMessage{ID: ids[1].String(),
		MessageContent: string(plan.appendContent(nil, 1))}, sched.start)
	require.True(t, ok)

	// Send 1 was delivered and send 2 was refused, so only 0 and 3 count.
	require.Equal(t, []int64{0, 3}, undeliveredSends(sched, r, d))
}

func TestExitCodeFollowsLoss(t *testing.T) {
	require.Equal(t, exitOK, exitCode(&report{}))
	require.Equal(t, exitLost, exitCode(&report{deliveryFigures: deliveryFigures{Lost: 1}}))
}
