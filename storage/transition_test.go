package storage

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func acceptOne(t *testing.T, s *Store, m *Message) {
	t.Helper()
	_, _, err := s.Accept(context.Background(), []*Message{m}, Idempotency{})
	require.NoError(t, err)
}

func routeAll(t *testing.T, s *Store) []*Message {
	t.Helper()
	q, err := s.PeekQueue(context.Background(), 1000)
	require.NoError(t, err)
	moved, err := s.MoveToInbox(context.Background(), q, time.Hour)
	require.NoError(t, err)
	return moved
}

func TestMoveToInboxOrdersByPriority(t *testing.T) {
	s := openTest(t)
	low, normal, urgent := newMessage(t, "1"), newMessage(t, "1"), newMessage(t, "1")
	low.Priority, urgent.Priority = PriorityLow, PriorityUrgent
	for _, m := range []*Message{low, normal, urgent} {
		acceptOne(t, s, m)
	}
	moved := routeAll(t, s)
	require.Len(t, moved, 3)
	require.Equal(t, 0, countQueue(t, s))

	inbox, _, err := s.Inbox(context.Background(), "1", nil, 10)
	require.NoError(t, err)
	require.Equal(t, []ID{urgent.ID, normal.ID, low.ID}, ids(inbox))
	for _, m := range inbox {
		require.Equal(t, StatusPending, m.Status)
	}
}

func TestInboxPagesWithCursor(t *testing.T) {
	s := openTest(t)
	var want []ID
	for range 5 {
		m := newMessage(t, "1")
		acceptOne(t, s, m)
		want = append(want, m.ID)
	}
	routeAll(t, s)
	var got []ID
	var cursor InboxCursor
	for range 10 {
		page, next, err := s.Inbox(context.Background(), "1", cursor, 2)
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		got = append(got, ids(page)...)
		cursor = next
	}
	require.Equal(t, want, got)
}

func TestInboxIsolatesRecipients(t *testing.T) {
	s := openTest(t)
	acceptOne(t, s, newMessage(t, "12"))
	acceptOne(t, s, newMessage(t, "1"))
	routeAll(t, s)
	page, _, err := s.Inbox(context.Background(), "1", nil, 10)
	require.NoError(t, err)
	require.Len(t, page, 1)
	require.Equal(t, "1", page[0].Recipient)
}

func TestMarkSentSchedulesRetry(t *testing.T) {
	s := openTest(t)
	m := newMessage(t, "1")
	acceptOne(t, s, m)
	routeAll(t, s)
	now := time.Now()
	next := now.Add(5 * time.Second)
	sent, err := s.MarkSent(context.Background(), []ID{m.ID}, now, func(*Message) time.Time { return next })
	require.NoError(t, err)
	require.Len(t, sent, 1)
	require.Equal(t, StatusSent, sent[0].Status)
	require.Equal(t, 1, sent[0].Attempts)
	require.Equal(t, 0, sent[0].RetryCount)

	due, _, err := s.Due(context.Background(), now, 10)
	require.NoError(t, err)
	require.Empty(t, due)
	due, _, err = s.Due(context.Background(), next, 10)
	require.NoError(t, err)
	require.Equal(t, []ID{m.ID}, ids(due))

	sent, err = s.MarkSent(context.Background(), []ID{m.ID}, next, func(*Message) time.Time { return next.Add(time.Minute) })
	require.NoError(t, err)
	require.Equal(t, 1, sent[0].RetryCount)
	require.NotNil(t, sent[0].LastRetryAt)
}

func TestAcknowledgeDeliversOnce(t *testing.T) {
	s := openTest(t)
	m := newMessage(t, "1")
	acceptOne(t, s, m)
	routeAll(t, s)
	now := time.Now()
	res, _, err := s.Acknowledge(context.Background(), []Ack{{Phone: "1", ID: m.ID}, {Phone: "1", ID: m.ID}}, now)
	require.NoError(t, err)
	require.Equal(t, []error{nil, nil}, res)

	got, err := s.Get(context.Background(), m.ID)
	require.NoError(t, err)
	require.Equal(t, StatusDelivered, got.Status)
	require.NotNil(t, got.DeliveredAt)
	inbox, _, err := s.Inbox(context.Background(), "1", nil, 10)
	require.NoError(t, err)
	require.Empty(t, inbox)
	due, _, err := s.Due(context.Background(), now.Add(1000*time.Hour), 10)
	require.NoError(t, err)
	require.Empty(t, due)

	_, err = s.MarkSent(context.Background(), []ID{m.ID}, now, func(*Message) time.Time { return now })
	require.NoError(t, err)
	got, err = s.Get(context.Background(), m.ID)
	require.NoError(t, err)
	require.Equal(t, StatusDelivered, got.Status, "a send recorded after the ack must not undo it")
}

func TestAcknowledgeOtherRecipient(t *testing.T) {
	s := openTest(t)
	m := newMessage(t, "1")
	acceptOne(t, s, m)
	routeAll(t, s)
	unknown, err := NewID()
	require.NoError(t, err)
	res, _, err := s.Acknowledge(context.Background(),
		[]Ack{{Phone: "2", ID: m.ID}, {Phone: "1", ID: unknown}}, time.Now())
	require.NoError(t, err)
	require.ErrorIs(t, res[0], ErrNotFound)
	require.ErrorIs(t, res[1], ErrNotFound)
	got, err := s.Get(context.Background(), m.ID)
	require.NoError(t, err)
	require.Equal(t, StatusPending, got.Status)
}

func TestDeadLetterAndRequeue(t *testing.T) {
	s := openTest(t)
	m := newMessage(t, "1")
	acceptOne(t, s, m)
	routeAll(t, s)
	now := time.Now()
	moved, err := s.DeadLetter(context.Background(), []ID{m.ID}, "test reason", now)
	require.NoError(t, err)
	require.Len(t, moved, 1)

	got, err := s.Get(context.Background(), m.ID)
	require.NoError(t, err)
	require.Equal(t, StatusFailed, got.Status)
	require.Equal(t, "test reason", got.FailureReason)
	require.NotNil(t, got.MovedToDlqAt)
	inbox, _, err := s.Inbox(context.Background(), "1", nil, 10)
	require.NoError(t, err)
	require.Empty(t, inbox)

	list, next, err := s.ListDLQ(context.Background(), DLQFilter{Client: "acme"}, nil, 10)
	require.NoError(t, err)
	require.Nil(t, next)
	require.Equal(t, []ID{m.ID}, ids(list))
	list, _, err = s.ListDLQ(context.Background(), DLQFilter{Client: "other"}, nil, 10)
	require.NoError(t, err)
	require.Empty(t, list)

	re, err := s.Requeue(context.Background(), m.ID)
	require.NoError(t, err)
	require.Equal(t, StatusQueued, re.Status)
	require.Zero(t, re.Attempts)
	require.Equal(t, 1, countQueue(t, s))
	list, _, err = s.ListDLQ(context.Background(), DLQFilter{}, nil, 10)
	require.NoError(t, err)
	require.Empty(t, list)

	_, err = s.Requeue(context.Background(), m.ID)
	require.ErrorIs(t, err, ErrNotInDLQ)
}

func TestListDLQPages(t *testing.T) {
	s := openTest(t)
	var all []ID
	for range 5 {
		m := newMessage(t, "1")
		acceptOne(t, s, m)
		all = append(all, m.ID)
	}
	routeAll(t, s)
	_, err := s.DeadLetter(context.Background(), all, "r", time.Now())
	require.NoError(t, err)
	var got []ID
	var cursor DLQCursor
	for range 10 {
		page, next, err := s.ListDLQ(context.Background(), DLQFilter{}, cursor, 2)
		require.NoError(t, err)
		got = append(got, ids(page)...)
		if next == nil {
			break
		}
		cursor = next
	}
	require.ElementsMatch(t, all, got)
	require.Len(t, got, 5)
}

func TestTransitionsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	require.NoError(t, err)
	m := newMessage(t, "1")
	acceptOne(t, s, m)
	routeAll(t, s)
	require.NoError(t, s.Close())

	s, err = Open(dir, Options{})
	require.NoError(t, err)
	defer s.Close()
	inbox, _, err := s.Inbox(context.Background(), "1", nil, 10)
	require.NoError(t, err)
	require.Equal(t, []ID{m.ID}, ids(inbox))
	require.Equal(t, 0, countQueue(t, s))
}
