package main

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the bench binary when a test
// starts the baseline server, which runs os.Executable with baselineFlag.
func TestMain(m *testing.M) {
	if isBaselineChild(os.Args[1:]) {
		os.Exit(serveBaseline(os.Stderr))
	}
	os.Exit(m.Run())
}

// fakeClock is a simulated clock: sleeping moves it forward at once, and a
// simulated server moves it forward by its service time.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) SleepUntil(ctx context.Context, t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
	return ctx.Err()
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// slowSender is a simulated server that takes service to answer each send
// and accepts all of them.
type slowSender struct {
	clock   *fakeClock
	service time.Duration
}

func (s *slowSender) send(context.Context, int64) outcome {
	s.clock.advance(s.service)
	return outcome{kind: outcomeAccepted, status: 202}
}
