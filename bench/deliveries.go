package main

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"
)

// mobileMessage is the part of a message pushed to an app that the bench
// reads. The hub sends the fields in PascalCase (Id, MessageContent, ...),
// which encoding/json matches case-insensitively.
type mobileMessage struct {
	ID             string `json:"Id"`
	MessageContent string `json:"MessageContent"`
}

// decodeArgument decodes a hub invocation argument into v. The hub sends
// the payload as one string that contains JSON. An argument that is JSON
// itself is accepted too.
func decodeArgument(arg json.RawMessage, v any) error {
	var text string
	if err := json.Unmarshal(arg, &text); err == nil {
		arg = json.RawMessage(text)
	}
	if err := json.Unmarshal(arg, v); err != nil {
		return fmt.Errorf("decode hub argument: %w", err)
	}
	return nil
}

// deliveries tracks what the mobile users received, per send. It is written
// by the users' connection goroutines while the load runs.
type deliveries struct {
	plan        *messagePlan
	firstAt     []atomic.Int64 // Unix nanoseconds of the first delivery, 0 for none
	received    []atomic.Int32 // deliveries of each send
	acked       []atomic.Bool  // an acknowledgement of the send completed
	distinct    atomic.Int64   // sends delivered at least once
	duplicates  atomic.Int64   // deliveries after the send's acknowledgement completed
	foreign     atomic.Int64   // messages that this run did not send
	misrouted   atomic.Int64   // messages delivered to a user other than their recipient
	badPayloads atomic.Int64   // invocations whose argument could not be decoded
	ackErrors   atomic.Int64   // AcknowledgeMessage calls that failed
}

func newDeliveries(plan *messagePlan) *deliveries {
	n := len(plan.recipient)
	return &deliveries{
		plan:     plan,
		firstAt:  make([]atomic.Int64, n),
		received: make([]atomic.Int32, n),
		acked:    make([]atomic.Bool, n),
	}
}

// receive records that user received m at now. It returns the send of m,
// or false for a message of another run.
func (d *deliveries) receive(user int, m mobileMessage, now time.Time) (int64, bool) {
	seq, ok := d.plan.sendOf(m.MessageContent)
	if !ok {
		d.foreign.Add(1)
		return 0, false
	}
	if int(d.plan.recipient[seq]) != user {
		d.misrouted.Add(1)
	}
	if d.acked[seq].Load() {
		d.duplicates.Add(1)
	}
	if d.received[seq].Add(1) == 1 {
		d.firstAt[seq].Store(now.UnixNano())
		d.distinct.Add(1)
	}
	return seq, true
}

// ackDone records that the acknowledgement of send seq completed.
func (d *deliveries) ackDone(seq int64) {
	d.acked[seq].Store(true)
}

// delivered reports whether send seq reached its user.
func (d *deliveries) delivered(seq int64) bool {
	return d.received[seq].Load() > 0
}

// endToEnd returns, per send, the time from the bench reading the node's
// answer to the first delivery, or -1 where the send was not accepted, not
// delivered, or went to a user that connected only after the load. A
// delivery that arrived before the answer was read counts as zero.
func (d *deliveries) endToEnd(sched schedule, r *records) []time.Duration {
	out := make([]time.Duration, sched.count)
	for seq := range sched.count {
		out[seq] = -1
		first := d.firstAt[seq].Load()
		if r.kinds[seq] != outcomeAccepted || first == 0 || !d.plan.toOnlineUser(seq) {
			continue
		}
		answer := sched.start.Add(r.answeredAt[seq])
		out[seq] = max(time.Unix(0, first).Sub(answer), 0)
	}
	return out
}
