package storage

import (
	"encoding/binary"
	"time"
)

// Key layout. Every key starts with a one-byte table prefix so that each
// table is one contiguous key range:
//
//	m <id:16>                                    message record
//	q <id:16>                                    durable queue entry (accepted, not routed)
//	i <phone> 0x00 <255-priority:1> <id:16>      recipient inbox entry
//	r <due:8> <id:16>                            retry schedule (unix nanos, big-endian)
//	d <moved:8> <id:16>                          dead-letter index, by time moved
//	k <client> 0x00 <idempotency key>            idempotency record
//	z <name>                                     store metadata
//
// Message ids are UUIDv7, so the queue and every id-suffixed range iterate
// in acceptance order. Phone numbers are normalised digits and client ids
// never contain 0x00, so the separator keeps prefixes unambiguous.
const (
	prefixMessage = 'm'
	prefixQueue   = 'q'
	prefixInbox   = 'i'
	prefixRetry   = 'r'
	prefixDLQ     = 'd'
	prefixIdem    = 'k'
	prefixMeta    = 'z'
)

const idLen = 16

func messageKey(id ID) []byte {
	k := make([]byte, 0, 1+idLen)
	k = append(k, prefixMessage)
	return append(k, id[:]...)
}

func queueKey(id ID) []byte {
	k := make([]byte, 0, 1+idLen)
	k = append(k, prefixQueue)
	return append(k, id[:]...)
}

// inboxPrefix returns the prefix of every inbox entry of phone.
func inboxPrefix(phone string) []byte {
	k := make([]byte, 0, 2+len(phone))
	k = append(k, prefixInbox)
	k = append(k, phone...)
	return append(k, 0)
}

// inboxKey orders a recipient's entries by descending priority, then by
// acceptance order.
func inboxKey(phone string, p Priority, id ID) []byte {
	k := inboxPrefix(phone)
	k = append(k, byte(255-p))
	return append(k, id[:]...)
}

func timeIDKey(prefix byte, t time.Time, id ID) []byte {
	k := make([]byte, 1+8+idLen)
	k[0] = prefix
	binary.BigEndian.PutUint64(k[1:9], uint64(t.UnixNano()))
	copy(k[9:], id[:])
	return k
}

func retryKey(due time.Time, id ID) []byte { return timeIDKey(prefixRetry, due, id) }

func dlqKey(moved time.Time, id ID) []byte { return timeIDKey(prefixDLQ, moved, id) }

func idemKey(client, key string) []byte {
	k := make([]byte, 0, 2+len(client)+len(key))
	k = append(k, prefixIdem)
	k = append(k, client...)
	k = append(k, 0)
	return append(k, key...)
}

// upperBound returns the smallest key greater than every key with prefix p.
func upperBound(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// idFromSuffix returns the message id in the last 16 bytes of key.
func idFromSuffix(key []byte) ID {
	var id ID
	copy(id[:], key[len(key)-idLen:])
	return id
}
