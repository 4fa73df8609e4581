package storage

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestForwardThenDelete(t *testing.T) {
	sender, owner := openTest(t), openTest(t)
	m := newMessage(t, "1")
	acceptOne(t, sender, m)

	queued, cursor, err := sender.PeekQueueAfter(context.Background(), nil, 10)
	require.NoError(t, err)
	require.Len(t, queued, 1)
	require.NotNil(t, cursor)

	n, err := owner.AcceptForwarded(context.Background(), queued)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = owner.AcceptForwarded(context.Background(), queued)
	require.NoError(t, err)
	require.Zero(t, n, "a repeated forward stores nothing")
	require.Equal(t, int64(1), owner.Stats().QueueDepth)

	require.NoError(t, sender.DeleteForwarded(context.Background(), []ID{m.ID}))
	_, err = sender.Get(context.Background(), m.ID)
	require.ErrorIs(t, err, ErrNotFound)
	require.Equal(t, int64(0), sender.Stats().QueueDepth)
	require.Equal(t, 0, sender.Pending("1"))

	rest, _, err := sender.PeekQueueAfter(context.Background(), nil, 10)
	require.NoError(t, err)
	require.Empty(t, rest)
}

func TestHandoffInbox(t *testing.T) {
	old, next := openTest(t), openTest(t)
	mine, theirs := newMessage(t, "1"), newMessage(t, "2")
	acceptOne(t, old, mine)
	acceptOne(t, old, theirs)
	routeAll(t, old)

	moving, err := old.InboxesNotOwned(context.Background(), func(p string) bool { return p == "1" }, 10)
	require.NoError(t, err)
	require.Equal(t, []ID{theirs.ID}, ids(moving))

	n, err := next.Adopt(context.Background(), moving)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	released, err := old.Release(context.Background(), ids(moving))
	require.NoError(t, err)
	require.Equal(t, ids(moving), ids(released))

	inbox, _, err := next.Inbox(context.Background(), "2", nil, 10)
	require.NoError(t, err)
	require.Equal(t, []ID{theirs.ID}, ids(inbox))
	due, _, err := next.Due(context.Background(), time.Now().Add(1000*time.Hour), 10)
	require.NoError(t, err)
	require.Equal(t, []ID{theirs.ID}, ids(due), "the retry schedule moves with the message")

	left, _, err := old.Inbox(context.Background(), "2", nil, 10)
	require.NoError(t, err)
	require.Empty(t, left)
	_, err = old.Get(context.Background(), theirs.ID)
	require.ErrorIs(t, err, ErrNotFound)
	require.Equal(t, int64(1), old.Stats().InboxTotal)
}

func TestSettledMessagesMove(t *testing.T) {
	old, next := openTest(t), openTest(t)
	delivered, failed, pending := newMessage(t, "1"), newMessage(t, "1"), newMessage(t, "1")
	for _, m := range []*Message{delivered, failed, pending} {
		acceptOne(t, old, m)
	}
	routeAll(t, old)
	_, _, err := old.Acknowledge(context.Background(), []Ack{{Phone: "1", ID: delivered.ID}}, time.Now())
	require.NoError(t, err)
	_, err = old.DeadLetter(context.Background(), []ID{failed.ID}, "r", time.Now())
	require.NoError(t, err)

	settled, cursor, err := old.Settled(context.Background(), nil, 10)
	require.NoError(t, err)
	require.Nil(t, cursor)
	require.ElementsMatch(t, []ID{delivered.ID, failed.ID}, ids(settled))

	n, err := next.Adopt(context.Background(), settled)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.NoError(t, old.DropSettled(context.Background(), ids(settled)))

	got, err := next.Get(context.Background(), delivered.ID)
	require.NoError(t, err)
	require.Equal(t, StatusDelivered, got.Status)
	dlq, _, err := next.ListDLQ(context.Background(), DLQFilter{}, nil, 10)
	require.NoError(t, err)
	require.Equal(t, []ID{failed.ID}, ids(dlq))
	inbox, _, err := next.Inbox(context.Background(), "1", nil, 10)
	require.NoError(t, err)
	require.Empty(t, inbox, "settled messages do not enter an inbox")

	_, err = old.Get(context.Background(), delivered.ID)
	require.ErrorIs(t, err, ErrNotFound)
	left, _, err := old.ListDLQ(context.Background(), DLQFilter{}, nil, 10)
	require.NoError(t, err)
	require.Empty(t, left)
	_, err = old.Get(context.Background(), pending.ID)
	require.NoError(t, err, "messages still in an inbox are not settled")
}
