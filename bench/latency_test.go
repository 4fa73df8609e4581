package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// runSlowServer runs count sends at rate over one connection to a simulated
// server that answers each in service, and returns the load's figures.
func runSlowServer(t *testing.T, rate float64, count int64, service time.Duration) answerFigures {
	t.Helper()
	clock := newFakeClock()
	sched := schedule{start: clock.Now(), rate: rate, count: count}
	l := &loadRun{sched: sched, clock: clock, lateLimit: time.Hour, records: newRecords(count), live: &liveCounters{}}
	l.run(context.Background(), []sender{&slowSender{clock: clock, service: service}})
	wall := clock.Now().Sub(sched.start)
	return (&loadResult{sched: sched, records: l.records, wall: wall}).figures(nil)
}

func TestLatencyCorrectedCountsQueueing(t *testing.T) {
	// Ten sends due every 10ms, answered in 50ms each over one connection:
	// send k is answered at 50(k+1)ms and was due at 10k ms, so its
	// corrected latency is 40k+50 ms while its service time stays 50ms.
	f := runSlowServer(t, 100, 10, 50*time.Millisecond)

	require.Equal(t, int64(10), f.AnswerMs.Count)
	require.InDelta(t, 50, f.ServiceMs.P50, 0.1)
	require.InDelta(t, 50, f.ServiceMs.Max, 0.1)
	require.InDelta(t, 410, f.AnswerMs.Max, 0.5)  // send 9: 40×9+50
	require.InDelta(t, 210, f.AnswerMs.P50, 0.5)  // send 4: 40×4+50
	require.InDelta(t, 230, f.AnswerMs.Mean, 0.5) // mean of 50, 90, ..., 410
	require.InDelta(t, 360, f.SendLagMs.Max, 0.5) // send 9 written at 450ms, due at 90ms
}

func TestLatencyEqualsServiceTimeWhenServerKeepsUp(t *testing.T) {
	// Answers in 5ms to sends due every 10ms never queue.
	f := runSlowServer(t, 100, 10, 5*time.Millisecond)

	require.InDelta(t, 5, f.AnswerMs.Max, 0.01)
	require.InDelta(t, 5, f.ServiceMs.Max, 0.01)
	require.InDelta(t, 0, f.SendLagMs.Max, 0.01)
}

func TestLatencyAcceptedPerSecond(t *testing.T) {
	// Ten sends answered in 50ms each take 500ms in total.
	f := runSlowServer(t, 100, 10, 50*time.Millisecond)

	require.Equal(t, int64(10), f.Accepted)
	require.InDelta(t, 20, f.AcceptedPerSec, 0.001)
	require.InDelta(t, 0.5, f.LoadSeconds, 0.001)
}

func TestTimelineSplitsBySecondOfIntendedTime(t *testing.T) {
	sched := schedule{start: time.Unix(0, 0), rate: 2, count: 4} // due at 0, 0.5, 1 and 1.5s
	r := newRecords(4)
	r.record(0, 0, 10*time.Millisecond, outcome{kind: outcomeAccepted, status: 202})
	r.record(1, 500*time.Millisecond, 530*time.Millisecond, outcome{kind: outcomeRefused, status: 429})
	r.record(2, time.Second, 1100*time.Millisecond, outcome{kind: outcomeAccepted, status: 202})
	e2e := []time.Duration{2 * time.Millisecond, -1, -1, -1}

	secs := timeline(sched, r, e2e)

	// The histograms hold 3 significant digits, so values come back
	// within 0.1%.
	require.Len(t, secs, 2)
	require.Equal(t, 0, secs[0].Second)
	require.Equal(t, int64(2), secs[0].Sent)
	require.Equal(t, int64(1), secs[0].Accepted)
	require.Equal(t, int64(0), secs[0].Errors)
	require.InDelta(t, 10, secs[0].P50Ms, 0.01)
	require.InDelta(t, 30, secs[0].P99Ms, 0.03)
	require.InDelta(t, 2, secs[0].E2EP50Ms, 0.002)
	require.Equal(t, 1, secs[1].Second)
	require.Equal(t, int64(1), secs[1].Sent)
	require.Equal(t, int64(1), secs[1].Accepted)
	require.Equal(t, int64(1), secs[1].Errors, "send 3 was never sent")
	require.InDelta(t, 100, secs[1].P99Ms, 0.1)
	require.Zero(t, secs[1].E2EP99Ms)
}

func TestSummarizeEmptyHistogram(t *testing.T) {
	require.Equal(t, percentiles{}, summarize(newHistogram()))
}

func TestRecordDurationClampsToRange(t *testing.T) {
	h := newHistogram()
	recordDuration(h, -time.Second)
	recordDuration(h, 2*time.Hour)

	require.Equal(t, int64(2), h.TotalCount())
	require.Equal(t, int64(histogramMin), h.Min())
	require.True(t, h.ValuesAreEquivalent(histogramMax, h.Max()))
}
