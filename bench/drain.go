package main

import (
	"context"
	"fmt"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// drainPoll is how often the drain checks whether every accepted message
// was delivered.
const drainPoll = 100 * time.Millisecond

// mobilePhase is the mobile side of a phase: the users, what they received
// and, after the load, the classification of what they did not.
type mobilePhase struct {
	p     *phase
	plan  *messagePlan
	track *deliveries
	fleet *fleet // nil when the phase has no users
}

func newMobilePhase(p *phase, plan *messagePlan) *mobilePhase {
	m := &mobilePhase{p: p, plan: plan}
	if p.users > 0 {
		m.track = newDeliveries(plan)
		m.fleet = newFleet(p.target.url(p.cfg.hubPath), []byte(p.jwtSecret), plan, m.track)
	}
	return m
}

// usersWhere returns the indexes of the users whose offline flag is offline.
func (m *mobilePhase) usersWhere(offline bool) []int {
	var out []int
	for i, o := range m.plan.offline[:m.p.users] {
		if o == offline {
			out = append(out, i)
		}
	}
	return out
}

// connectOnline connects the users that are online during the load.
func (m *mobilePhase) connectOnline(ctx context.Context) {
	if m.fleet == nil {
		return
	}
	users := m.usersWhere(false)
	m.fleet.connect(ctx, users)
	m.logConnected("online", len(users))
}

func (m *mobilePhase) logConnected(group string, n int) {
	f := m.fleet
	fmt.Fprintf(m.p.log, "%s: %d of %d users connected so far (%d %s users attempted)\n",
		m.p.name, f.connected.Load(), m.p.users, n, group)
	if f.failed.Load() > 0 {
		fmt.Fprintf(m.p.log, "%s: %d users failed to connect; first error: %s\n",
			m.p.name, f.failed.Load(), f.firstError())
	}
}

// wait returns once every user has disconnected.
func (m *mobilePhase) wait() {
	if m.fleet != nil {
		m.fleet.wait()
	}
}

// finish connects the offline users, waits up to --drain for the accepted
// messages to be delivered, and looks up the ones that were not. It
// returns the delivery figures and the end-to-end latency of each send.
func (m *mobilePhase) finish(ctx, usersCtx context.Context, load *loadResult) (deliveryFigures, []time.Duration) {
	offline := m.usersWhere(true)
	if len(offline) > 0 {
		m.fleet.connect(usersCtx, offline)
		m.logConnected("offline", len(offline))
	}
	drainStart := time.Now()
	m.drain(ctx, load)
	f := deliveryFigures{DeliveryMeasured: true, DrainSeconds: time.Since(drainStart).Seconds()}
	seqs := undeliveredSends(load.sched, load.records, m.track)
	if len(seqs) > 0 {
		fmt.Fprintf(m.p.log, "%s: looking up %d undelivered messages\n", m.p.name, len(seqs))
	}
	lookup := newMessageLookup(m.p.target, m.p.cfg.lookupWorkers)
	f.Loss = countLoss(ctx, lookup, seqs, load.records, m.track)
	f.Lost, f.DeadLettered = f.Loss.Lost, f.Loss.DeadLettered
	e2e := m.track.endToEnd(load.sched, load.records)
	m.count(&f, load, e2e)
	return f, e2e
}

// drain returns once every accepted message was delivered, --drain has
// passed or ctx is cancelled. With no user connected it returns at once,
// because nothing can be delivered.
func (m *mobilePhase) drain(ctx context.Context, load *loadResult) {
	if m.fleet.connected.Load() == 0 {
		fmt.Fprintf(m.p.log, "%s: no user connected, so no message can be delivered; skipping the drain\n", m.p.name)
		return
	}
	deadline := time.NewTimer(m.p.cfg.drain)
	defer deadline.Stop()
	ticker := time.NewTicker(drainPoll)
	defer ticker.Stop()
	var cursor int64 // sends before cursor are delivered or were not accepted
	for {
		for cursor < load.sched.count &&
			(load.records.kinds[cursor] != outcomeAccepted || m.track.delivered(cursor)) {
			cursor++
		}
		if cursor == load.sched.count {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-ticker.C:
		}
	}
}

// count fills the delivery counts and the end-to-end percentiles.
func (m *mobilePhase) count(f *deliveryFigures, load *loadResult, e2e []time.Duration) {
	h := hdrhistogram.New(histogramMin, histogramMax, histogramDigits)
	for seq := range load.sched.count {
		if !m.track.delivered(seq) {
			continue
		}
		if load.records.kinds[seq] != outcomeAccepted {
			f.DeliveredUnanswered++
			continue
		}
		f.Delivered++
		if !m.plan.toOnlineUser(seq) {
			f.DeliveredOffline++
		}
		if e2e[seq] >= 0 {
			recordDuration(h, e2e[seq])
		}
	}
	f.E2EMs = summarize(h)
	f.e2eHistogram = h
	t := m.track
	f.Duplicates = t.duplicates.Load()
	fl := m.fleet
	f.Users = userFigures{
		Total: m.p.users, Offline: len(m.usersWhere(true)),
		Connected: fl.connected.Load(), ConnectFailed: fl.failed.Load(),
		Dropped: fl.dropped.Load(), ReconnectFailed: fl.reconnectFail.Load(), FirstError: fl.firstError(),
		Foreign: t.foreign.Load(), Misrouted: t.misrouted.Load(),
		BadPayloads: t.badPayloads.Load(), AckErrors: t.ackErrors.Load(),
	}
}
