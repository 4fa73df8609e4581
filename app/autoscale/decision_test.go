package autoscale

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// t0 is the fake clock's start; every test passes times as offsets from it.
var t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func testPolicy() Policy {
	return Policy{
		MinNodes: 2, MaxNodes: 4, Cooldown: 60 * time.Second,
		Out: Trigger{Threshold: 0.8, Window: 30 * time.Second},
		In:  Trigger{Threshold: 0.3, Window: 2 * time.Minute},
	}
}

// sample returns a sample of nodes nodes with the given loads, of which
// removable were started by the supervisor.
func sample(nodes, removable int, loads ...float64) Sample {
	s := Sample{Nodes: nodes, Removable: removable}
	for i, l := range loads {
		s.Loads = append(s.Loads, NodeLoad{Node: string(rune('a' + i)), Load: l})
	}
	return s
}

func TestDecideScaleOutAfterWindow(t *testing.T) {
	d := NewDecider(testPolicy())
	require.Equal(t, Hold, d.Decide(at(0), sample(2, 0, 0.9, 0.9)).Action)
	dec := d.Decide(at(29*time.Second), sample(2, 0, 0.85, 0.95))
	require.Equal(t, Hold, dec.Action)
	require.Equal(t, 29*time.Second, dec.HeldFor)
	require.Equal(t, 30*time.Second, dec.Window)

	dec = d.Decide(at(30*time.Second), sample(2, 0, 1.0, 0.7))
	require.Equal(t, ScaleOut, dec.Action, dec.Reason)
	require.InDelta(t, 0.85, dec.Average, 1e-9)
	require.Equal(t, 2, dec.Nodes)
}

func TestDecideDipRestartsWindow(t *testing.T) {
	d := NewDecider(testPolicy())
	d.Decide(at(0), sample(2, 0, 0.9, 0.9))
	d.Decide(at(10*time.Second), sample(2, 0, 0.5, 0.5))
	d.Decide(at(20*time.Second), sample(2, 0, 0.9, 0.9))
	require.Equal(t, Hold, d.Decide(at(45*time.Second), sample(2, 0, 0.9, 0.9)).Action)
	require.Equal(t, ScaleOut, d.Decide(at(50*time.Second), sample(2, 0, 0.9, 0.9)).Action)
}

func TestDecideThresholdItselfIsWithin(t *testing.T) {
	d := NewDecider(testPolicy())
	d.Decide(at(0), sample(3, 1, 0.8, 0.8))
	dec := d.Decide(at(time.Hour), sample(3, 1, 0.8, 0.8))
	require.Equal(t, Hold, dec.Action)
	require.Zero(t, dec.HeldFor)

	d.Decide(at(2*time.Hour), sample(3, 1, 0.3, 0.3))
	require.Equal(t, Hold, d.Decide(at(3*time.Hour), sample(3, 1, 0.3, 0.3)).Action)
}

func TestDecideScaleInAfterLongerWindow(t *testing.T) {
	d := NewDecider(testPolicy())
	d.Decide(at(0), sample(3, 1, 0.1, 0.2, 0.0))
	require.Equal(t, Hold, d.Decide(at(119*time.Second), sample(3, 1, 0.1, 0.2, 0.0)).Action)
	dec := d.Decide(at(120*time.Second), sample(3, 1, 0.1, 0.2, 0.0))
	require.Equal(t, ScaleIn, dec.Action, dec.Reason)
	require.Equal(t, 2*time.Minute, dec.Window)
}

func TestDecideScaleInBounds(t *testing.T) {
	cases := []struct {
		name   string
		sample Sample
		reason string
	}{
		{"at min nodes", sample(2, 1, 0.1, 0.1), "min_nodes"},
		{"nothing started", sample(3, 0, 0.1, 0.1, 0.1), "no node started"},
		{"remaining too loaded", sample(3, 1, 0.29, 0.29, 0.29), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := testPolicy()
			if c.reason == "" {
				p.Out.Threshold = 0.4 // 3 x 0.29 on 2 nodes is 0.435
			}
			d := NewDecider(p)
			d.Decide(at(0), c.sample)
			dec := d.Decide(at(p.In.Window), c.sample)
			require.Equal(t, Hold, dec.Action)
			if c.reason != "" {
				require.Contains(t, dec.Reason, c.reason)
			} else {
				require.Contains(t, dec.Reason, "one node fewer would average")
			}
		})
	}
}

func TestDecideHoldsAtMaxNodes(t *testing.T) {
	d := NewDecider(testPolicy())
	d.Decide(at(0), sample(4, 2, 0.9, 0.9, 0.9, 0.9))
	dec := d.Decide(at(time.Minute), sample(4, 2, 0.9, 0.9, 0.9, 0.9))
	require.Equal(t, Hold, dec.Action)
	require.Contains(t, dec.Reason, "max_nodes 4")
}

func TestDecideCooldownAfterAction(t *testing.T) {
	d := NewDecider(testPolicy())
	d.Decide(at(0), sample(2, 0, 0.9, 0.9))
	require.Equal(t, ScaleOut, d.Decide(at(30*time.Second), sample(2, 0, 0.9, 0.9)).Action)
	d.Acted(at(40 * time.Second))

	// The window starts again after the action and passes within the
	// cool-down, which still holds.
	d.Decide(at(41*time.Second), sample(3, 1, 0.9, 0.9, 0.9))
	dec := d.Decide(at(90*time.Second), sample(3, 1, 0.9, 0.9, 0.9))
	require.Equal(t, Hold, dec.Action)
	require.Contains(t, dec.Reason, "cooling down for 10s more")

	require.Equal(t, ScaleOut, d.Decide(at(100*time.Second), sample(3, 1, 0.9, 0.9, 0.9)).Action)
}

func TestDecideWindowStartsAfterAction(t *testing.T) {
	p := testPolicy()
	p.Cooldown = 0
	d := NewDecider(p)
	d.Decide(at(0), sample(2, 0, 0.9, 0.9))
	d.Acted(at(30 * time.Second))
	d.Decide(at(31*time.Second), sample(3, 1, 0.9, 0.9, 0.9))
	require.Equal(t, Hold, d.Decide(at(60*time.Second), sample(3, 1, 0.9, 0.9, 0.9)).Action)
	require.Equal(t, ScaleOut, d.Decide(at(61*time.Second), sample(3, 1, 0.9, 0.9, 0.9)).Action)
}

func TestDecideNodeCountOutsideBounds(t *testing.T) {
	d := NewDecider(testPolicy())
	dec := d.Decide(at(0), sample(1, 0, 0.5))
	require.Equal(t, ScaleOut, dec.Action)
	require.Contains(t, dec.Reason, "below min_nodes 2")
	d.Acted(at(time.Second))
	require.Equal(t, Hold, d.Decide(at(2*time.Second), sample(1, 0, 0.5)).Action, "cool-down")

	d = NewDecider(testPolicy())
	dec = d.Decide(at(0), sample(5, 1, 0.5, 0.5, 0.5, 0.5, 0.5))
	require.Equal(t, ScaleIn, dec.Action)
	require.Contains(t, dec.Reason, "above max_nodes 4")
}

func TestDecideWithoutLoadsRestartsWindows(t *testing.T) {
	d := NewDecider(testPolicy())
	d.Decide(at(0), sample(2, 0, 0.9, 0.9))
	dec := d.Decide(at(20*time.Second), sample(2, 0))
	require.Equal(t, Hold, dec.Action)
	require.Equal(t, "no node load was read", dec.Reason)
	d.Decide(at(25*time.Second), sample(2, 0, 0.9))
	require.Equal(t, Hold, d.Decide(at(50*time.Second), sample(2, 0, 0.9)).Action)
	require.Equal(t, ScaleOut, d.Decide(at(55*time.Second), sample(2, 0, 0.9)).Action)
}

func TestDecideStartsFirstNodeWithoutLoads(t *testing.T) {
	p := testPolicy()
	p.MinNodes = 1
	d := NewDecider(p)
	dec := d.Decide(at(0), sample(0, 0))
	require.Equal(t, ScaleOut, dec.Action)
	require.Contains(t, dec.Reason, "0 nodes are below min_nodes 1")
	require.Zero(t, dec.Average)
}

func TestActionString(t *testing.T) {
	require.Equal(t, "hold", Hold.String())
	require.Equal(t, "scale_out", ScaleOut.String())
	require.Equal(t, "scale_in", ScaleIn.String())
}
