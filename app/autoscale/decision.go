package autoscale

import (
	"fmt"
	"time"
)

// Action is the step that a Decision requests from the supervisor.
type Action int

// The actions of a Decision.
const (
	Hold Action = iota
	ScaleOut
	ScaleIn
)

// String returns the action's name as it appears in logs.
func (a Action) String() string {
	switch a {
	case ScaleOut:
		return "scale_out"
	case ScaleIn:
		return "scale_in"
	default:
		return "hold"
	}
}

// Policy holds the thresholds and bounds that a Decider applies.
type Policy struct {
	MinNodes int
	MaxNodes int
	Cooldown time.Duration
	Out      Trigger
	In       Trigger
}

// policyFromConfig returns the Policy of a supervisor configuration.
func policyFromConfig(c *Config) Policy {
	return Policy{MinNodes: c.MinNodes, MaxNodes: c.MaxNodes, Cooldown: c.Cooldown,
		Out: c.ScaleOut, In: c.ScaleIn}
}

// NodeLoad is one node's load ratio as read from its /metrics.
type NodeLoad struct {
	Node string
	Load float64
}

// Sample is the state of the cluster at one interval.
type Sample struct {
	// Loads are the nodes whose load was read in this interval.
	Loads []NodeLoad
	// Nodes is the node count, nodes whose load could not be read included.
	Nodes int
	// Removable is how many of the nodes the supervisor started and may stop.
	Removable int
}

// Decision is the outcome of one interval, with the figures behind it.
type Decision struct {
	Action Action
	Reason string
	// Average is the mean load of Sample.Loads.
	Average float64
	// HeldFor is how long the average has stayed past the threshold of the
	// trigger in progress, or zero when neither is.
	HeldFor time.Duration
	// Window is the window of the trigger in progress, or zero.
	Window time.Duration
	// Nodes is Sample.Nodes.
	Nodes int
}

// Decider turns samples into decisions. It keeps when the average crossed
// each threshold and when the last action ended. It is not safe for
// concurrent use, and reads time only from its callers.
type Decider struct {
	policy     Policy
	aboveSince time.Time // zero unless the average is above Out.Threshold
	belowSince time.Time // zero unless the average is below In.Threshold
	lastAction time.Time // zero before the first action
}

// NewDecider returns a Decider that applies p.
func NewDecider(p Policy) *Decider { return &Decider{policy: p} }

// Decide returns the decision for sample s taken at now. An average exactly
// at a threshold counts as within it, and an interval without any load
// read restarts both windows. A node count outside the bounds is restored
// even without loads, so that a supervisor without static nodes starts the
// first one.
func (d *Decider) Decide(now time.Time, s Sample) Decision {
	dec := Decision{Action: Hold, Nodes: s.Nodes}
	if len(s.Loads) > 0 {
		dec.Average = average(s.Loads)
		d.trackWindows(now, dec.Average)
	} else {
		d.aboveSince, d.belowSince = time.Time{}, time.Time{}
	}
	dec.Action, dec.Reason = d.want(now, s, dec.Average)
	switch {
	case !d.aboveSince.IsZero():
		dec.HeldFor, dec.Window = now.Sub(d.aboveSince), d.policy.Out.Window
	case !d.belowSince.IsZero():
		dec.HeldFor, dec.Window = now.Sub(d.belowSince), d.policy.In.Window
	}
	if dec.Action != Hold && !d.lastAction.IsZero() {
		if left := d.policy.Cooldown - now.Sub(d.lastAction); left > 0 {
			dec.Reason = fmt.Sprintf("cooling down for %s more; then: %s", left, dec.Reason)
			dec.Action = Hold
		}
	}
	return dec
}

// Acted records that an action ended at now, successful or not: the
// cool-down starts and both windows start again.
func (d *Decider) Acted(now time.Time) {
	d.lastAction = now
	d.aboveSince, d.belowSince = time.Time{}, time.Time{}
}

func (d *Decider) trackWindows(now time.Time, avg float64) {
	if avg > d.policy.Out.Threshold {
		if d.aboveSince.IsZero() {
			d.aboveSince = now
		}
	} else {
		d.aboveSince = time.Time{}
	}
	if avg < d.policy.In.Threshold {
		if d.belowSince.IsZero() {
			d.belowSince = now
		}
	} else {
		d.belowSince = time.Time{}
	}
}

// want returns the action the sample calls for, before the cool-down.
func (d *Decider) want(now time.Time, s Sample, avg float64) (Action, string) {
	p := d.policy
	switch {
	case s.Nodes < p.MinNodes:
		return ScaleOut, fmt.Sprintf("%d nodes are below min_nodes %d", s.Nodes, p.MinNodes)
	case s.Nodes > p.MaxNodes && s.Removable > 0:
		return ScaleIn, fmt.Sprintf("%d nodes are above max_nodes %d", s.Nodes, p.MaxNodes)
	case len(s.Loads) == 0:
		return Hold, "no node load was read"
	case !d.aboveSince.IsZero() && now.Sub(d.aboveSince) >= p.Out.Window:
		if s.Nodes >= p.MaxNodes {
			return Hold, fmt.Sprintf("average above %g, but already at max_nodes %d", p.Out.Threshold, p.MaxNodes)
		}
		return ScaleOut, fmt.Sprintf("average above %g for %s", p.Out.Threshold, p.Out.Window)
	case !d.belowSince.IsZero() && now.Sub(d.belowSince) >= p.In.Window:
		return d.wantIn(s, avg)
	case !d.aboveSince.IsZero():
		return Hold, fmt.Sprintf("average above %g, window not yet passed", p.Out.Threshold)
	case !d.belowSince.IsZero():
		return Hold, fmt.Sprintf("average below %g, window not yet passed", p.In.Threshold)
	default:
		return Hold, "average within thresholds"
	}
}

// wantIn checks the bounds of a scale-in once its window passed. It holds
// when the load of the remaining nodes would exceed the scale-out
// threshold, which would add the node back at once.
func (d *Decider) wantIn(s Sample, avg float64) (Action, string) {
	p := d.policy
	if s.Nodes <= p.MinNodes {
		return Hold, fmt.Sprintf("average below %g, but already at min_nodes %d", p.In.Threshold, p.MinNodes)
	}
	if s.Removable == 0 {
		return Hold, fmt.Sprintf("average below %g, but no node started by the supervisor is left to stop",
			p.In.Threshold)
	}
	if n := len(s.Loads); n > 1 {
		if after := avg * float64(n) / float64(n-1); after > p.Out.Threshold {
			return Hold, fmt.Sprintf("average below %g, but one node fewer would average %.2f, above %g",
				p.In.Threshold, after, p.Out.Threshold)
		}
	}
	return ScaleIn, fmt.Sprintf("average below %g for %s", p.In.Threshold, p.In.Window)
}

func average(loads []NodeLoad) float64 {
	var sum float64
	for _, l := range loads {
		sum += l.Load
	}
	return sum / float64(len(loads))
}
