package cluster

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"testing"
)

func arcWorst(r *Ring) float64 {
	shares := make([]float64, r.Len())
	n := len(r.points)
	for i := range n {
		prev := r.points[(i+n-1)%n]
		arc := r.points[i] - prev // wraps mod 2^64
		shares[r.owners[i]] += float64(arc) / math.Exp2(64)
	}
	mean := 1 / float64(r.Len())
	w := 0.0
	for _, s := range shares {
		w = max(w, math.Abs(s/mean-1))
	}
	return w
}

func TestExplore2(t *testing.T) {
	if os.Getenv("EXPLORE") == "" {
		t.Skip()
	}
	for _, v := range []int{1024, 1536, 2048, 3072} {
		var ws []float64
		for set := range 300 {
			rng := rand.New(rand.NewPCG(uint64(set), 99))
			for n := 3; n <= 10; n++ {
				ms := make([]Member, n)
				for i := range ms {
					ms[i] = Member{ID: fmt.Sprintf("n%d-%x", i, rng.Uint32())}
				}
				ws = append(ws, arcWorst(NewRing(ms, v)))
			}
		}
		sort.Float64s(ws)
		over := 0
		for _, w := range ws {
			if w > 0.10 {
				over++
			}
		}
		t.Logf("v=%d p50=%.3f p99=%.3f max=%.3f over10%%=%d/%d", v, ws[len(ws)/2], ws[len(ws)*99/100], ws[len(ws)-1], over, len(ws))
	}
}
