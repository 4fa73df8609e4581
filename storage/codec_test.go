package storage

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func fullMessage(t *testing.T) *Message {
	t.Helper()
	m := newMessage(t, "967775265496")
	m.Subject, m.FailureReason = "Login ✓", "not acknowledged after 5 attempts"
	m.Content = "كود الدخول 4711"
	m.Status, m.Priority, m.RetryCount, m.Attempts = StatusFailed, PriorityUrgent, 4, 5
	m.Due = time.Unix(0, 1796400000123456789).UTC()
	for _, p := range []**time.Time{&m.DeliveredAt, &m.LastRetryAt, &m.NextRetryAt, &m.MovedToDlqAt} {
		at := time.Now().UTC()
		*p = &at
	}
	return m
}

func TestCodecRoundTrip(t *testing.T) {
	for name, m := range map[string]*Message{
		"full": fullMessage(t), "new": newMessage(t, "1"), "empty": {},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := encodeMessage(m)
			require.NoError(t, err)
			got, err := decodeMessage(b)
			require.NoError(t, err)
			want, _ := json.Marshal(m)
			have, _ := json.Marshal(got)
			require.JSONEq(t, string(want), string(have))
		})
	}
}

func TestCodecReadsJSONRecords(t *testing.T) {
	m := fullMessage(t)
	b, err := json.Marshal(m)
	require.NoError(t, err)
	got, err := decodeMessage(b)
	require.NoError(t, err)
	require.Equal(t, m.ID, got.ID)
	require.Equal(t, m.Content, got.Content)
}

func TestCodecRejectsTruncatedRecords(t *testing.T) {
	b, err := encodeMessage(fullMessage(t))
	require.NoError(t, err)
	for n := 1; n < len(b); n++ {
		_, err := decodeMessage(b[:n])
		require.ErrorIs(t, err, ErrCorrupt, "record cut at %d of %d bytes", n, len(b))
	}
}

func FuzzDecodeMessage(f *testing.F) {
	b, _ := encodeMessage(&Message{Content: "x", Recipient: "1"})
	f.Add(b)
	f.Add([]byte{codecV1})
	f.Add([]byte(`{"id":"01a241cd-c219-795b-a590-7d4d06ef9e66"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMessage(b)
		if err != nil || len(b) == 0 || b[0] != codecV1 {
			return
		}
		again, err := encodeMessage(m)
		require.NoError(t, err)
		m2, err := decodeMessage(again)
		require.NoError(t, err)
		require.Equal(t, m.ID, m2.ID)
		require.Equal(t, m.Content, m2.Content)
	})
}

func BenchmarkCodec(b *testing.B) {
	m := &Message{Content: "Your code is 4711", Recipient: "967775265496", CreatorID: "acme",
		Status: StatusSent, Priority: PriorityNormal, CreationTime: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		v, _ := encodeMessage(m)
		if _, err := decodeMessage(v); err != nil {
			b.Fatal(err)
		}
	}
}
