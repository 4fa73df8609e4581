package hub

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func newRegistryConn(user, id string) *conn {
	c := newConn(nil, user, id, "token-"+id, false)
	c.info.Transport = TransportWebSockets
	return c
}

func TestRegistryIndexes(t *testing.T) {
	r := newRegistry()
	a1 := newRegistryConn(alicePhone, "a1")
	a2 := newRegistryConn(alicePhone, "a2")
	b1 := newRegistryConn(bobPhone, "b1")
	for _, c := range []*conn{a1, a2, b1} {
		r.addToken(c)
	}
	require.Same(t, a1, r.byToken("token-a1"))
	require.Nil(t, r.byID("a1"), "negotiated connections are not live")
	require.Empty(t, r.user(alicePhone))
	require.Equal(t, 0, int(r.live.Load()))

	r.addLive(a1)
	r.addLive(a2)
	r.addLive(b1)
	require.Same(t, a2, r.byID("a2"))
	require.ElementsMatch(t, []ConnInfo{a1.info, a2.info}, r.user(alicePhone))
	require.Equal(t, []ConnInfo{b1.info}, r.user(bobPhone))
	require.Equal(t, 3, int(r.live.Load()))
	require.Len(t, r.all(nil), 3)

	r.remove(a1)
	r.remove(a1)
	require.Nil(t, r.byToken("token-a1"))
	require.Nil(t, r.byID("a1"))
	require.Equal(t, []ConnInfo{a2.info}, r.user(alicePhone))
	require.Equal(t, 2, int(r.live.Load()))

	r.remove(a2)
	require.Empty(t, r.user(alicePhone))
	require.Len(t, r.all(nil), 1)
}

func TestRegistryRemoveNeverLive(t *testing.T) {
	r := newRegistry()
	c := newRegistryConn(alicePhone, "x")
	r.addToken(c)
	r.remove(c)
	require.Nil(t, r.byToken("token-x"))
	require.Equal(t, 0, int(r.live.Load()))
}

func TestRegistryShardsSpread(t *testing.T) {
	r := newRegistry()
	used := make(map[*registryShard]bool)
	for i := range 1000 {
		used[r.shard(fmt.Sprintf("+1555%07d", i))] = true
	}
	require.Len(t, used, shardCount)
}

func TestRegistryConcurrentUse(t *testing.T) {
	r := newRegistry()
	const workers, perWorker = 8, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				c := newRegistryConn(fmt.Sprintf("user-%d", i%10), fmt.Sprintf("%d-%d", w, i))
				r.addToken(c)
				r.addLive(c)
				_ = r.user(c.info.User)
				if i%2 == 0 {
					r.remove(c)
				}
			}
		}()
	}
	wg.Wait()
	require.Equal(t, workers*perWorker/2, int(r.live.Load()))
	require.Len(t, r.all(nil), workers*perWorker/2)
	total := 0
	for i := range 10 {
		total += len(r.user(fmt.Sprintf("user-%d", i)))
	}
	require.Equal(t, workers*perWorker/2, total)
}
