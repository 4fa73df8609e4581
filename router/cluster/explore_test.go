package cluster

import (
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
)

func explorePhones(n int) []string {
	rng := rand.New(rand.NewPCG(1, 2))
	second := "01378"
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("9677%c%07d", second[rng.IntN(5)], rng.IntN(10_000_000))
	}
	return out
}

func TestExplore(t *testing.T) {
	if os.Getenv("EXPLORE") == "" {
		t.Skip()
	}
	phones := explorePhones(1_000_000)
	schemes := map[string]func(i int) string{
		"node-%d":   func(i int) string { return fmt.Sprintf("node-%d", i+1) },
		"relay%02d": func(i int) string { return fmt.Sprintf("relay%02d", i+1) },
		"host.ip":   func(i int) string { return fmt.Sprintf("10.0.0.%d", 11+i) },
		"uuidish":   func(i int) string { return fmt.Sprintf("n%x", rand.New(rand.NewPCG(uint64(i), 7)).Uint64()) },
		"esh-a":     func(i int) string { return "esh3ar-" + string(rune('a'+i)) },
	}
	for _, v := range []int{128, 256, 512, 768, 1000, 1024, 1500, 2048} {
		worst := 0.0
		line := ""
		for name, f := range schemes {
			sw := 0.0
			for n := 3; n <= 10; n++ {
				ms := make([]Member, n)
				for i := range ms {
					ms[i] = Member{ID: f(i)}
				}
				d := worstDeviation(NewRing(ms, v), phones)
				sw = max(sw, d)
			}
			line += fmt.Sprintf(" %s=%.3f", name, sw)
			worst = max(worst, sw)
		}
		t.Logf("v=%d worst=%.3f%s", v, worst, line)
	}
}

func worstDeviation(r *Ring, keys []string) float64 {
	counts := map[string]int{}
	for _, k := range keys {
		counts[r.Owner(k).ID]++
	}
	mean := float64(len(keys)) / float64(r.Len())
	w := 0.0
	for _, c := range counts {
		d := float64(c)/mean - 1
		if d < 0 {
			d = -d
		}
		w = max(w, d)
	}
	return w
}
