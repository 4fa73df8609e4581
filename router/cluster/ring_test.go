package cluster

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// randomPhones returns n random valid Yemeni mobile numbers in normalised
// form: 967, then 7 and one of 0, 1, 3, 7, 8, then 7 digits.
func randomPhones(n int, seed uint64) []string {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	const operators = "01378"
	phones := make([]string, n)
	buf := make([]byte, 12)
	copy(buf, "9677")
	for i := range phones {
		buf[4] = operators[rng.IntN(len(operators))]
		for j := 5; j < len(buf); j++ {
			buf[j] = byte('0' + rng.IntN(10))
		}
		phones[i] = string(buf)
	}
	return phones
}

func testMembers(n int) []Member {
	members := make([]Member, n)
	for i := range members {
		id := fmt.Sprintf("node-%d", i+1)
		members[i] = Member{
			ID:         id,
			PeerAddr:   fmt.Sprintf("10.0.0.%d:7001", i+1),
			APIAddr:    fmt.Sprintf("10.0.0.%d:8080", i+1),
			GossipAddr: fmt.Sprintf("10.0.0.%d:7946", i+1),
		}
	}
	return members
}

// ownerCounts returns how many of keys each member ID owns.
func ownerCounts(r *Ring, keys []string) map[string]int {
	counts := make(map[string]int, r.Len())
	for _, k := range keys {
		counts[r.Owner(k).ID]++
	}
	return counts
}

func TestRingSpread(t *testing.T) {
	t.Parallel()
	phones := randomPhones(1_000_000, 1)
	for n := 3; n <= 10; n++ {
		t.Run(fmt.Sprintf("members=%d", n), func(t *testing.T) {
			t.Parallel()
			counts := ownerCounts(NewRing(testMembers(n), 0), phones)
			require.Len(t, counts, n, "every member owns some keys")

			mean := float64(len(phones)) / float64(n)
			worst := 0.0
			for id, c := range counts {
				deviation := float64(c)/mean - 1
				require.InDelta(t, 0, deviation, 0.10, "member %s owns %d keys, mean %.0f", id, c, mean)
				worst = max(worst, deviation, -deviation)
			}
			t.Logf("worst deviation from the mean: %.1f%%", 100*worst)
		})
	}
}

// hashShares returns each member's share of the 64-bit hash space, in the
// order of r.Members().
func hashShares(r *Ring) []float64 {
	shares := make([]float64, r.Len())
	n := len(r.points)
	for i := range n {
		arc := r.points[i] - r.points[(i+n-1)%n] // wraps modulo 2^64
		shares[r.owners[i]] += float64(arc) / math.Exp2(64)
	}
	return shares
}

func TestRingShareRandomIDs(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(17, 19))
	worst := 0.0
	for set := range 10 {
		for n := 3; n <= 10; n++ {
			members := make([]Member, n)
			for i := range members {
				members[i] = Member{ID: fmt.Sprintf("relay-%d-%08x", i, rng.Uint32())}
			}
			mean := 1 / float64(n)
			r := NewRing(members, 0)
			for i, share := range hashShares(r) {
				deviation := share/mean - 1
				require.InDelta(t, 0, deviation, 0.10, "set %d n=%d member %s", set, n, r.Members()[i].ID)
				worst = max(worst, deviation, -deviation)
			}
		}
	}
	t.Logf("worst share deviation from the mean: %.1f%%", 100*worst)
}

func TestRingOrderIndependent(t *testing.T) {
	members := testMembers(7)
	reversed := make([]Member, len(members))
	for i, m := range members {
		reversed[len(members)-1-i] = m
	}
	shuffled := append([]Member(nil), members...)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(shuffled), func(i, j int) {
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	})

	want := NewRing(members, 0)
	for _, input := range [][]Member{reversed, shuffled} {
		got := NewRing(input, 0)
		require.Equal(t, want.Version(), got.Version())
		require.Equal(t, want.Members(), got.Members())
		for _, phone := range randomPhones(10_000, 5) {
			require.Equal(t, want.Owner(phone), got.Owner(phone), "owner of %s", phone)
		}
	}
}

func TestRingAddNodeMovesOnlyToNewNode(t *testing.T) {
	t.Parallel()
	phones := randomPhones(200_000, 7)
	for n := 3; n <= 9; n++ {
		members := testMembers(n + 1)
		before := NewRing(members[:n], 0)
		after := NewRing(members, 0)
		added := members[n].ID

		moved := 0
		for _, phone := range phones {
			from, to := before.Owner(phone).ID, after.Owner(phone).ID
			if from == to {
				continue
			}
			if to != added {
				require.Failf(t, "key moved between old members", "n=%d key %s moved from %s to %s", n, phone, from, to)
			}
			moved++
		}
		// The new member should take about 1/(n+1) of the keys, and the
		// spread goal bounds its share to within 10% of that.
		expected := float64(len(phones)) / float64(n+1)
		require.InDelta(t, expected, float64(moved), 0.10*expected, "n=%d->%d", n, n+1)
	}
}

func TestRingRemoveNodeMovesOnlyItsKeys(t *testing.T) {
	members := testMembers(5)
	full := NewRing(members, 0)
	reduced := NewRing(members[1:], 0)
	removed := members[0].ID
	for _, phone := range randomPhones(50_000, 9) {
		before := full.Owner(phone).ID
		if before != removed {
			require.Equal(t, before, reduced.Owner(phone).ID, "key %s", phone)
		}
	}
}

func TestRingEmpty(t *testing.T) {
	r := NewRing(nil, 0)
	require.Equal(t, Member{}, r.Owner("967775265496"))
	require.Zero(t, r.Len())
	require.Empty(t, r.Members())
	require.NotEmpty(t, r.Version())
}

func TestRingSingleMember(t *testing.T) {
	m := testMembers(1)[0]
	r := NewRing([]Member{m}, 0)
	for _, phone := range randomPhones(1000, 11) {
		require.Equal(t, m, r.Owner(phone))
	}
}

func TestRingDuplicateIDs(t *testing.T) {
	a := Member{ID: "node-1", PeerAddr: "10.0.0.1:7001"}
	b := Member{ID: "node-1", PeerAddr: "10.0.0.2:7001"}
	c := Member{ID: "node-2", PeerAddr: "10.0.0.3:7001"}

	r1 := NewRing([]Member{a, b, c}, 0)
	r2 := NewRing([]Member{c, b, a}, 0)
	require.Equal(t, []Member{a, c}, r1.Members())
	require.Equal(t, r1.Members(), r2.Members())
	require.Equal(t, r1.Version(), r2.Version())
}

func TestRingVersion(t *testing.T) {
	members := testMembers(3)
	base := NewRing(members, 0)

	moved := append([]Member(nil), members...)
	moved[0].PeerAddr = "10.9.9.9:7001"
	require.Equal(t, base.Version(), NewRing(moved, 0).Version(), "addresses do not change the version")

	require.NotEqual(t, base.Version(), NewRing(members[:2], 0).Version(), "fewer members")
	require.NotEqual(t, base.Version(), NewRing(members, 100).Version(), "other virtual node count")
}

func TestRingDefaultVirtualNodes(t *testing.T) {
	require.Equal(t, DefaultVirtualNodes, NewRing(testMembers(2), 0).VirtualNodes())
	require.Equal(t, DefaultVirtualNodes, NewRing(testMembers(2), -1).VirtualNodes())
	require.Equal(t, 10, NewRing(testMembers(2), 10).VirtualNodes())
}

func TestRingOwnerAllocations(t *testing.T) {
	r := NewRing(testMembers(5), 0)
	allocs := testing.AllocsPerRun(1000, func() {
		_ = r.Owner("967775265496")
	})
	require.Zero(t, allocs)
}

func TestRingMembersReturnsCopy(t *testing.T) {
	r := NewRing(testMembers(3), 0)
	got := r.Members()
	got[0].ID = "changed"
	require.Equal(t, "node-1", r.Members()[0].ID)
}

func BenchmarkRingOwner(b *testing.B) {
	phones := randomPhones(1<<16, 13)
	for _, n := range []int{3, 10} {
		r := NewRing(testMembers(n), 0)
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_ = r.Owner(phones[i&(len(phones)-1)])
				i++
			}
		})
	}
}
