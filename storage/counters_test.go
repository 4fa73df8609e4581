package storage

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCountersFollowTransitions(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	require.NoError(t, err)
	a, b := newMessage(t, "1"), newMessage(t, "1")
	acceptOne(t, s, a)
	acceptOne(t, s, b)
	require.Equal(t, int64(2), s.Stats().QueueDepth)
	require.Equal(t, 2, s.Pending("1"))

	routeAll(t, s)
	st := s.Stats()
	require.Equal(t, int64(0), st.QueueDepth)
	require.Equal(t, int64(2), st.InboxTotal)
	require.Equal(t, 2, s.Pending("1"))

	_, _, err = s.Acknowledge(context.Background(), []Ack{{Phone: "1", ID: a.ID}}, time.Now())
	require.NoError(t, err)
	require.Equal(t, int64(1), s.Stats().InboxTotal)
	require.Equal(t, 1, s.Pending("1"))

	_, err = s.DeadLetter(context.Background(), []ID{b.ID}, "r", time.Now())
	require.NoError(t, err)
	require.Equal(t, int64(0), s.Stats().InboxTotal)
	require.Equal(t, 0, s.Pending("1"))

	_, err = s.Requeue(context.Background(), b.ID)
	require.NoError(t, err)
	require.Equal(t, int64(1), s.Stats().QueueDepth)
	require.NoError(t, s.Close())

	s, err = Open(dir, Options{})
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, int64(1), s.Stats().QueueDepth, "counts are rebuilt on open")
	require.Equal(t, 1, s.Pending("1"))
	routeAll(t, s)
	require.Equal(t, int64(1), s.Stats().InboxTotal)
}
