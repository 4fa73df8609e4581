package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// schedule is an open-loop send plan: send i is due at start + i/rate,
// whatever happened to the sends before it. Measuring each answer from the
// due time rather than from the moment the request was written counts the
// wait of a message that could not be sent on time, which a closed loop
// hides (coordinated omission).
type schedule struct {
	start time.Time
	rate  float64 // sends per second
	count int64
}

// at returns the intended send time of send i.
func (s schedule) at(i int64) time.Time {
	return s.start.Add(s.offset(i))
}

// offset returns how long after the start send i is due.
func (s schedule) offset(i int64) time.Duration {
	return time.Duration(float64(i) * float64(time.Second) / s.rate)
}

// end returns the intended time of the last send.
func (s schedule) end() time.Time {
	return s.at(s.count - 1)
}

// clock tells the time and waits. Tests replace the wall clock with a
// simulated one.
type clock interface {
	Now() time.Time
	// SleepUntil returns at t, or early with ctx's error.
	SleepUntil(ctx context.Context, t time.Time) error
}

// wallClock is the real clock.
type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

func (wallClock) SleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sender sends one message. Each sender is used by one goroutine at a time,
// so a sender may own a connection.
type sender interface {
	send(ctx context.Context, seq int64) outcome
}

// liveCounters are running totals that the progress bar reads while the
// load runs.
type liveCounters struct {
	done     atomic.Int64 // sends answered, failed or given up
	accepted atomic.Int64
	refused  atomic.Int64
	errors   atomic.Int64
}

// loadRun drives senders along a schedule and records every send.
type loadRun struct {
	sched schedule
	clock clock
	// lateLimit is how long after the schedule's last intended time a send
	// may still start. Later sends are left unsent.
	lateLimit time.Duration
	records   *records
	live      *liveCounters
	next      atomic.Int64
}

// run starts one goroutine per sender and returns when the schedule is
// done, the late limit has passed or ctx is cancelled. A free sender claims
// the next send of the schedule and waits for its intended time. When every
// sender is busy, the due sends wait for a free one and their latency grows.
// The schedule itself never waits for an answer.
func (l *loadRun) run(ctx context.Context, senders []sender) {
	var wg sync.WaitGroup
	for _, s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.work(ctx, s)
		}()
	}
	wg.Wait()
}

func (l *loadRun) work(ctx context.Context, s sender) {
	deadline := l.sched.end().Add(l.lateLimit)
	for {
		seq := l.next.Add(1) - 1
		if seq >= l.sched.count {
			return
		}
		if err := l.clock.SleepUntil(ctx, l.sched.at(seq)); err != nil {
			return
		}
		started := l.clock.Now()
		if started.After(deadline) {
			return
		}
		out := s.send(ctx, seq)
		l.records.record(seq, started.Sub(l.sched.start), l.clock.Now().Sub(l.sched.start), out)
		l.count(out)
	}
}

func (l *loadRun) count(out outcome) {
	switch out.kind {
	case outcomeAccepted:
		l.live.accepted.Add(1)
	case outcomeRefused:
		l.live.refused.Add(1)
	default:
		l.live.errors.Add(1)
	}
	l.live.done.Add(1)
}
