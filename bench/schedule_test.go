package main

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestScheduleSpacesSendsEvenly(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := schedule{start: start, rate: 10_000, count: 100_000}

	require.Equal(t, start, s.at(0))
	for i := int64(1); i < s.count; i++ {
		require.Equal(t, 100*time.Microsecond, s.at(i).Sub(s.at(i-1)), "gap before send %d", i)
	}
	require.Equal(t, start.Add(9999900*time.Microsecond), s.end())
}

func TestScheduleFractionalRate(t *testing.T) {
	s := schedule{start: time.Unix(0, 0), rate: 3, count: 4}

	require.Equal(t, time.Duration(0), s.offset(0))
	require.Equal(t, 333333333*time.Nanosecond, s.offset(1))
	require.Equal(t, 666666666*time.Nanosecond, s.offset(2))
	require.Equal(t, time.Second, s.offset(3))
}

// blockingSender holds every send until release is closed, and counts the
// sends in flight.
type blockingSender struct {
	inFlight *atomic.Int64
	started  *sync.WaitGroup
	release  chan struct{}
}

func (b *blockingSender) send(context.Context, int64) outcome {
	b.inFlight.Add(1)
	b.started.Done()
	<-b.release
	return outcome{kind: outcomeAccepted, status: 202}
}

func TestLoadStartsSendsWithoutWaitingForAnswers(t *testing.T) {
	const n = 20
	clock := newFakeClock()
	sched := schedule{start: clock.Now(), rate: 1000, count: n}
	var inFlight atomic.Int64
	var started sync.WaitGroup
	started.Add(n)
	release := make(chan struct{})
	senders := make([]sender, n)
	for i := range senders {
		senders[i] = &blockingSender{inFlight: &inFlight, started: &started, release: release}
	}
	l := &loadRun{sched: sched, clock: clock, lateLimit: time.Hour, records: newRecords(n), live: &liveCounters{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(context.Background(), senders)
	}()

	// Every send starts although no answer has come back yet.
	started.Wait()
	require.Equal(t, int64(n), inFlight.Load())
	close(release)
	<-done
	require.Equal(t, int64(n), l.live.accepted.Load())
	for seq := range int64(n) {
		require.GreaterOrEqual(t, l.records.sentAt[seq], sched.offset(seq), "send %d started early", seq)
	}
}

func TestLoadKeepsScheduleWhenServerIsSlow(t *testing.T) {
	clock := newFakeClock()
	sched := schedule{start: clock.Now(), rate: 100, count: 10} // one send every 10ms
	l := &loadRun{sched: sched, clock: clock, lateLimit: time.Hour, records: newRecords(10), live: &liveCounters{}}

	l.run(context.Background(), []sender{&slowSender{clock: clock, service: 50 * time.Millisecond}})

	// One connection answering in 50ms: send k is written when send k-1 is
	// answered, at 50k ms, while its intended time stays at 10k ms.
	for k := range int64(10) {
		require.Equal(t, time.Duration(k)*50*time.Millisecond, l.records.sentAt[k], "send %d written", k)
		require.Equal(t, time.Duration(k+1)*50*time.Millisecond, l.records.answeredAt[k], "send %d answered", k)
		require.Equal(t, time.Duration(k)*10*time.Millisecond, sched.offset(k), "send %d intended", k)
	}
}

func TestLoadLeavesLateSendsUnsent(t *testing.T) {
	clock := newFakeClock()
	sched := schedule{start: clock.Now(), rate: 100, count: 10} // the last send is due at 90ms
	l := &loadRun{sched: sched, clock: clock, lateLimit: 100 * time.Millisecond,
		records: newRecords(10), live: &liveCounters{}}

	l.run(context.Background(), []sender{&slowSender{clock: clock, service: 50 * time.Millisecond}})

	// Sends 0 to 3 start at 0, 50, 100 and 150ms. Send 4 would start at
	// 200ms, past the deadline of 90+100ms, so it and the sends after it
	// stay unsent.
	f := (&loadResult{sched: sched, records: l.records, wall: time.Second}).figures(nil)
	require.Equal(t, int64(4), f.Sent)
	require.Equal(t, int64(4), f.Accepted)
	require.Equal(t, int64(6), f.ErrorsByKind["unsent"])
	require.Equal(t, int64(6), f.Errors)
}

func TestLoadStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	clock := newFakeClock()
	sched := schedule{start: clock.Now().Add(time.Second), rate: 100, count: 10}
	l := &loadRun{sched: sched, clock: clock, lateLimit: time.Hour, records: newRecords(10), live: &liveCounters{}}

	l.run(ctx, []sender{&slowSender{clock: clock, service: time.Millisecond}})

	require.Equal(t, int64(0), l.live.done.Load())
}
