package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Message records are stored in a compact binary form, because routing,
// sending and acknowledging a message each read and rewrite its record.
// Layout, after a version byte:
//
//	id [16]byte
//	CreatorID, Recipient, Subject, Content, FailureReason: uvarint length + bytes
//	Status, Priority, RetryCount, Attempts: varint
//	CreationTime, Due: varint unix nanoseconds (0 for the zero time)
//	presence byte, then for each set bit a varint unix nanoseconds:
//	  1 DeliveredAt, 2 LastRetryAt, 4 NextRetryAt, 8 MovedToDlqAt
//
// Records that start with '{' are JSON, as written by earlier versions.
const codecV1 = 1

var errShortRecord = errors.New("record ends early")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(b, 0)
	}
	return binary.AppendVarint(b, t.UnixNano())
}

func encodeBinary(m *Message) []byte {
	b := make([]byte, 0, 64+len(m.Content)+len(m.Subject)+len(m.CreatorID)+len(m.Recipient))
	b = append(b, codecV1)
	b = append(b, m.ID[:]...)
	for _, s := range []string{m.CreatorID, m.Recipient, m.Subject, m.Content, m.FailureReason} {
		b = appendString(b, s)
	}
	for _, n := range []int{int(m.Status), int(m.Priority), m.RetryCount, m.Attempts} {
		b = binary.AppendVarint(b, int64(n))
	}
	b = appendTime(b, m.CreationTime)
	b = appendTime(b, m.Due)
	var present byte
	opt := []*time.Time{m.DeliveredAt, m.LastRetryAt, m.NextRetryAt, m.MovedToDlqAt}
	for i, t := range opt {
		if t != nil {
			present |= 1 << i
		}
	}
	b = append(b, present)
	for _, t := range opt {
		if t != nil {
			b = appendTime(b, *t)
		}
	}
	return b
}

// decoder reads a binary record; the first failure sticks in err.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil || n < 0 || n > len(d.b) {
		d.err = errShortRecord
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errShortRecord
		return ""
	}
	return string(d.bytes(int(n)))
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShortRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShortRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) time() time.Time {
	n := d.varint()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func decodeBinary(b []byte) (*Message, error) {
	d := &decoder{b: b[1:]}
	m := new(Message)
	copy(m.ID[:], d.bytes(idLen))
	m.CreatorID, m.Recipient, m.Subject = d.string(), d.string(), d.string()
	m.Content, m.FailureReason = d.string(), d.string()
	m.Status, m.Priority = Status(d.varint()), Priority(d.varint())
	m.RetryCount, m.Attempts = int(d.varint()), int(d.varint())
	m.CreationTime, m.Due = d.time(), d.time()
	present := d.bytes(1)
	opt := []**time.Time{&m.DeliveredAt, &m.LastRetryAt, &m.NextRetryAt, &m.MovedToDlqAt}
	for i, p := range opt {
		if len(present) == 1 && present[0]&(1<<i) != 0 {
			t := d.time()
			*p = &t
		}
	}
	if d.err != nil {
		return nil, fmt.Errorf("storage: decode message: %w: %w", ErrCorrupt, d.err)
	}
	return m, nil
}
