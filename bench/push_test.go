package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// newPushFixture returns a plan of sends messages to two online users, its
// delivery tracker, and records in which every send was accepted.
func newPushFixture(t *testing.T, sends int64) (schedule, *messagePlan, *records, *deliveries) {
	t.Helper()
	plan, err := newMessagePlan(sends, 2, 0, 1)
	require.NoError(t, err)
	sched := schedule{start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), rate: 10, count: sends}
	r := newRecords(sends)
	for seq := range sends {
		r.record(seq, sched.offset(seq), sched.offset(seq)+time.Millisecond, outcome{kind: outcomeAccepted, status: 202})
	}
	return sched, plan, r, newDeliveries(plan)
}

// deliver records that send seq reached its recipient at offset after the
// schedule's start, and optionally that its acknowledgement completed.
func deliver(sched schedule, plan *messagePlan, track *deliveries, seq int64, offset time.Duration, ack bool) {
	m := mobileMessage{ID: "id", MessageContent: string(plan.appendContent(nil, seq))}
	track.receive(int(plan.recipient[seq]), m, sched.start.Add(offset))
	if ack {
		track.ackDone(seq)
	}
}

func TestCountAcknowledged(t *testing.T) {
	sched, plan, r, track := newPushFixture(t, 5)
	r.kinds[4] = outcomeTimeout // delivered and acknowledged without a 202
	deliver(sched, plan, track, 0, 2*time.Second, true)
	deliver(sched, plan, track, 1, 7*time.Second, true)
	deliver(sched, plan, track, 2, 9*time.Second, false) // delivered, acknowledgement pending
	deliver(sched, plan, track, 4, 3*time.Second, true)
	// Send 3 is accepted and never delivered.

	c := countAcknowledged(sched, r, track, 5*time.Second)

	require.Equal(t, int64(3), c.acknowledged, "sends 0, 1 and 4")
	require.Equal(t, int64(2), c.duringLoad, "sends 0 and 4 arrived by the load's end at 5s")
	require.Equal(t, int64(2), c.unacknowledged, "accepted sends 2 and 3")
	require.Equal(t, int64(3), c.delivered, "accepted sends 0, 1 and 2")
	require.Equal(t, 7*time.Second, c.lastDelivery, "the unacknowledged send 2 does not count")
}

func TestCountAcknowledgedNone(t *testing.T) {
	sched, _, r, track := newPushFixture(t, 3)

	c := countAcknowledged(sched, r, track, time.Second)

	require.Equal(t, acknowledgedCount{unacknowledged: 3}, c)
}

func TestPerSecond(t *testing.T) {
	require.InDelta(t, 500.0, perSecond(1000, 2*time.Second), 1e-9)
	require.Zero(t, perSecond(1000, 0))
	require.Zero(t, perSecond(1000, -time.Second))
}

func TestWaitAcknowledgedReturnsWhenAllAcknowledged(t *testing.T) {
	sched, plan, r, track := newPushFixture(t, 3)
	r.kinds[2] = outcomeRefused // not accepted, so not waited for
	deliver(sched, plan, track, 0, time.Second, true)
	deliver(sched, plan, track, 1, time.Second, true)
	load := &loadResult{sched: sched, records: r}

	// With an hour of drain, only the check for acknowledgements can end
	// the wait.
	waitAcknowledged(context.Background(), load, track, time.Hour)
}

func TestWaitAcknowledgedEndsWithDrain(t *testing.T) {
	sched, _, r, track := newPushFixture(t, 3)
	load := &loadResult{sched: sched, records: r}

	waitAcknowledged(context.Background(), load, track, 10*time.Millisecond)

	require.Equal(t, int64(3), countAcknowledged(sched, r, track, time.Second).unacknowledged)
}

func TestWaitAcknowledgedEndsWithContext(t *testing.T) {
	sched, _, r, track := newPushFixture(t, 3)
	load := &loadResult{sched: sched, records: r}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	waitAcknowledged(ctx, load, track, time.Hour)
}

func TestParseFlagsPushRejects(t *testing.T) {
	cases := map[string][]string{
		"no users": {"--push", "--users", "0"},
		"baseline": {"--push", "--baseline"},
		"report":   {"--push", "--report", "r.html"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := parseFlags(args, io.Discard)
			require.Error(t, err)
		})
	}
}

// TestPushModeAgainstRealNode runs the push mode as a user would, with a
// small load, against a relay that it builds and starts. It checks that
// every accepted message was acknowledged and that the figures are
// present, not how fast anything was.
func TestPushModeAgainstRealNode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the relay; skipped with -short")
	}
	jsonPath := filepath.Join(t.TempDir(), "push.json")
	args := []string{"--push", "--users", "20", "--clients", "20", "--rate", "200", "--duration", "1s",
		"--drain", "10s", "--quiet", "--json", jsonPath}
	var stdout, stderr bytes.Buffer

	code := run(context.Background(), args, &stdout, &stderr)

	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	require.NotEqual(t, exitSetup, code, "the bench failed to set up; see its stderr above")
	b, err := os.ReadFile(jsonPath)
	require.NoError(t, err)
	var rep pushReport
	require.NoError(t, json.Unmarshal(b, &rep))
	require.Positive(t, rep.Accepted)
	require.Equal(t, rep.Accepted, rep.Acknowledged)
	require.Zero(t, rep.Unacknowledged)
	require.Positive(t, rep.AcknowledgedPerSec)
	require.Positive(t, rep.AcceptedPerSec)
	require.Equal(t, rep.Accepted, rep.E2EMs.Count)
	require.Equal(t, int64(20), rep.Users.Connected)
	require.NotNil(t, rep.Process)
	require.Equal(t, exitOK, code)
}
