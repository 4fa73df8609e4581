package storage

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/stretchr/testify/require"
)

func openTest(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newMessage(t testing.TB, to string) *Message {
	t.Helper()
	id, err := NewID()
	require.NoError(t, err)
	return &Message{
		ID: id, CreatorID: "acme", Recipient: to, Content: "hello",
		Status: StatusQueued, Priority: PriorityNormal, CreationTime: time.Now().UTC(),
	}
}

func TestAcceptThenGet(t *testing.T) {
	s := openTest(t)
	m := newMessage(t, "967775265496")
	ids, replay, err := s.Accept(context.Background(), []*Message{m}, Idempotency{})
	require.NoError(t, err)
	require.False(t, replay)
	require.Equal(t, []ID{m.ID}, ids)

	got, err := s.Get(context.Background(), m.ID)
	require.NoError(t, err)
	require.Equal(t, m.Content, got.Content)
	require.Equal(t, StatusQueued, got.Status)
	require.True(t, m.CreationTime.Equal(got.CreationTime))
}

func TestGetUnknownID(t *testing.T) {
	s := openTest(t)
	id, err := NewID()
	require.NoError(t, err)
	_, err = s.Get(context.Background(), id)
	require.ErrorIs(t, err, ErrNotFound)
}

func TestAcceptSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	require.NoError(t, err)
	msgs := []*Message{newMessage(t, "967775265496"), newMessage(t, "967705265496")}
	_, _, err = s.Accept(context.Background(), msgs, Idempotency{})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s, err = Open(dir, Options{})
	require.NoError(t, err)
	defer s.Close()
	for _, m := range msgs {
		got, err := s.Get(context.Background(), m.ID)
		require.NoError(t, err)
		require.Equal(t, m.Recipient, got.Recipient)
	}
}

func TestAcceptIdempotentReplay(t *testing.T) {
	s := openTest(t)
	idem := Idempotency{Client: "acme", Key: "k1", Hash: sha256.Sum256([]byte("a")), TTL: time.Hour}
	first, replay, err := s.Accept(context.Background(), []*Message{newMessage(t, "1")}, idem)
	require.NoError(t, err)
	require.False(t, replay)

	second, replay, err := s.Accept(context.Background(), []*Message{newMessage(t, "1")}, idem)
	require.NoError(t, err)
	require.True(t, replay)
	require.Equal(t, first, second)

	_, err = s.Get(context.Background(), first[0])
	require.NoError(t, err)
}

func TestAcceptIdempotencyConflict(t *testing.T) {
	s := openTest(t)
	idem := Idempotency{Client: "acme", Key: "k1", Hash: sha256.Sum256([]byte("a")), TTL: time.Hour}
	_, _, err := s.Accept(context.Background(), []*Message{newMessage(t, "1")}, idem)
	require.NoError(t, err)

	idem.Hash = sha256.Sum256([]byte("b"))
	m := newMessage(t, "1")
	_, _, err = s.Accept(context.Background(), []*Message{m}, idem)
	require.ErrorIs(t, err, ErrIdempotencyConflict)
	_, err = s.Get(context.Background(), m.ID)
	require.ErrorIs(t, err, ErrNotFound)
}

func TestAcceptIdempotencyScopedPerClient(t *testing.T) {
	s := openTest(t)
	idem := Idempotency{Client: "acme", Key: "k1", Hash: sha256.Sum256([]byte("a")), TTL: time.Hour}
	_, _, err := s.Accept(context.Background(), []*Message{newMessage(t, "1")}, idem)
	require.NoError(t, err)

	idem.Client = "globex"
	_, replay, err := s.Accept(context.Background(), []*Message{newMessage(t, "1")}, idem)
	require.NoError(t, err)
	require.False(t, replay)
}

func TestAcceptIdempotencyConcurrent(t *testing.T) {
	s := openTest(t)
	idem := Idempotency{Client: "acme", Key: "race", Hash: sha256.Sum256([]byte("a")), TTL: time.Hour}
	const n = 16
	results := make([][]ID, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids, _, err := s.Accept(context.Background(), []*Message{newMessage(t, "1")}, idem)
			if err == nil {
				results[i] = ids
			}
		}()
	}
	wg.Wait()
	for i := range n {
		require.Equal(t, results[0], results[i], "request %d", i)
	}
	require.Equal(t, 1, countQueue(t, s))
}

func TestSweepIdempotencyExpired(t *testing.T) {
	s := openTest(t)
	idem := Idempotency{Client: "acme", Key: "old", Hash: sha256.Sum256([]byte("a")), TTL: time.Hour}
	_, _, err := s.Accept(context.Background(), []*Message{newMessage(t, "1")}, idem)
	require.NoError(t, err)

	n, err := s.SweepIdempotency(context.Background(), time.Hour)
	require.NoError(t, err)
	require.Zero(t, n)
	n, err = s.SweepIdempotency(context.Background(), 0)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	_, replay, err := s.Accept(context.Background(), []*Message{newMessage(t, "1")}, idem)
	require.NoError(t, err)
	require.False(t, replay)
}

func TestClosedStoreReturnsErrClosed(t *testing.T) {
	s := openTest(t)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	_, _, err := s.Accept(context.Background(), []*Message{newMessage(t, "1")}, Idempotency{})
	require.ErrorIs(t, err, ErrClosed)
	_, err = s.Get(context.Background(), ID{})
	require.ErrorIs(t, err, ErrClosed)
}

func TestAcceptLowDisk(t *testing.T) {
	s, err := Open(t.TempDir(), Options{MinFreeDisk: 1 << 62})
	require.NoError(t, err)
	defer s.Close()
	m := newMessage(t, "1")
	_, _, err = s.Accept(context.Background(), []*Message{m}, Idempotency{})
	require.ErrorIs(t, err, ErrLowDisk)
	_, err = s.Get(context.Background(), m.ID)
	require.ErrorIs(t, err, ErrNotFound)
}

// TestAcceptFailedWALWrite checks that a failing disk surfaces as an error
// from Accept rather than as an accepted message.
func TestAcceptFailedWALWrite(t *testing.T) {
	toggle := &errorfs.Toggle{Injector: errorfs.ErrInjected}
	fs := errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind.ReadOrWrite() != errorfs.OpIsWrite {
			return nil
		}
		return toggle.MaybeError(op)
	}))
	s, err := Open("db", Options{fs: fs})
	require.NoError(t, err)
	defer func() { _ = s.Close() }()
	toggle.On()
	_, _, err = s.Accept(context.Background(), []*Message{newMessage(t, "1")}, Idempotency{})
	require.ErrorIs(t, err, ErrFailed)
	require.ErrorIs(t, s.Failure(), ErrFailed)

	toggle.Off()
	_, _, err = s.Accept(context.Background(), []*Message{newMessage(t, "1")}, Idempotency{})
	require.ErrorIs(t, err, ErrFailed, "a failed store must keep refusing writes")
}

func TestAcceptCanceledContext(t *testing.T) {
	s := openTest(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := s.Accept(ctx, []*Message{newMessage(t, "1")}, Idempotency{})
	require.ErrorIs(t, err, context.Canceled)
}

func countQueue(t testing.TB, s *Store) int {
	t.Helper()
	n := 0
	it, err := s.db.NewIter(nil)
	require.NoError(t, err)
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if it.Key()[0] == prefixQueue {
			n++
		}
	}
	return n
}

func BenchmarkAcceptParallel(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	require.NoError(b, err)
	defer s.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			m := newMessage(b, fmt.Sprintf("96777%07d", i))
			if _, _, err := s.Accept(context.Background(), []*Message{m}, Idempotency{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
