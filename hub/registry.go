package hub

import (
	"sync"
	"sync/atomic"
)

// shardCount is the number of registry shards. Each key hashes to one shard, so
// goroutines that touch different users or connections rarely share a lock.
const shardCount = 64

// registry indexes connections by token (every connection from negotiate on), by ID
// and by user (connections that completed the handshake).
type registry struct {
	shards [shardCount]registryShard
	live   atomic.Int64 // connections in the user index
}

type registryShard struct {
	mu      sync.RWMutex
	byToken map[string]*conn
	byID    map[string]*conn
	byUser  map[string][]*conn
}

func newRegistry() *registry {
	r := &registry{}
	for i := range r.shards {
		s := &r.shards[i]
		s.byToken = make(map[string]*conn)
		s.byID = make(map[string]*conn)
		s.byUser = make(map[string][]*conn)
	}
	return r
}

// shard returns the shard of key, chosen by its 32-bit FNV-1a hash.
func (r *registry) shard(key string) *registryShard {
	const (
		offset32 = 2166136261
		prime32  = 16777619
	)
	h := uint32(offset32)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= prime32
	}
	return &r.shards[h%shardCount]
}

// addToken indexes a new connection by its token.
func (r *registry) addToken(c *conn) {
	s := r.shard(c.token)
	s.mu.Lock()
	s.byToken[c.token] = c
	s.mu.Unlock()
}

// addLive indexes a connection that completed its handshake by ID and by user.
func (r *registry) addLive(c *conn) {
	s := r.shard(c.info.ID)
	s.mu.Lock()
	s.byID[c.info.ID] = c
	s.mu.Unlock()

	s = r.shard(c.info.User)
	s.mu.Lock()
	s.byUser[c.info.User] = append(s.byUser[c.info.User], c)
	s.mu.Unlock()
	r.live.Add(1)
}

// remove drops c from every index it is in.
func (r *registry) remove(c *conn) {
	s := r.shard(c.token)
	s.mu.Lock()
	if s.byToken[c.token] == c {
		delete(s.byToken, c.token)
	}
	s.mu.Unlock()

	s = r.shard(c.info.ID)
	s.mu.Lock()
	wasLive := s.byID[c.info.ID] == c
	if wasLive {
		delete(s.byID, c.info.ID)
	}
	s.mu.Unlock()
	if !wasLive {
		return
	}

	s = r.shard(c.info.User)
	s.mu.Lock()
	conns := s.byUser[c.info.User]
	for i, other := range conns {
		if other == c {
			conns = append(conns[:i], conns[i+1:]...)
			break
		}
	}
	if len(conns) == 0 {
		delete(s.byUser, c.info.User)
	} else {
		s.byUser[c.info.User] = conns
	}
	s.mu.Unlock()
	r.live.Add(-1)
}

func (r *registry) byToken(token string) *conn {
	s := r.shard(token)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byToken[token]
}

func (r *registry) byID(id string) *conn {
	s := r.shard(id)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byID[id]
}

// user returns the info of the live connections of user.
func (r *registry) user(user string) []ConnInfo {
	s := r.shard(user)
	s.mu.RLock()
	defer s.mu.RUnlock()
	conns := s.byUser[user]
	if len(conns) == 0 {
		return nil
	}
	infos := make([]ConnInfo, len(conns))
	for i, c := range conns {
		infos[i] = c.info
	}
	return infos
}

// all appends every registered connection to dst and returns it. The caller works on
// the snapshot without holding any registry lock.
func (r *registry) all(dst []*conn) []*conn {
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.RLock()
		for _, c := range s.byToken {
			dst = append(dst, c)
		}
		s.mu.RUnlock()
	}
	return dst
}
