package storage

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// ID is a message id: a UUIDv7, so ids sort in acceptance order.
type ID = uuid.UUID

// NewID returns a new time-ordered message id.
func NewID() (ID, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return ID{}, fmt.Errorf("storage: new message id: %w", err)
	}
	return id, nil
}

// Status is the delivery state of a message. The numbers are part of the
// public API and match the previous service.
type Status int

// Message states.
const (
	StatusPending   Status = 0 // in the recipient's inbox, not yet sent to a device
	StatusSent      Status = 1 // sent to at least one device, not yet acknowledged
	StatusDelivered Status = 2 // acknowledged by a device of the recipient
	StatusRead      Status = 3 // reserved: read receipts are not implemented
	StatusQueued    Status = 4 // accepted and in the durable queue, not yet routed
	StatusFailed    Status = 5 // dead-lettered; see FailureReason
)

// String returns the name of s as the previous service spelled it.
func (s Status) String() string {
	switch s {
	case StatusPending:
		return "Pending"
	case StatusSent:
		return "Sent"
	case StatusDelivered:
		return "Delivered"
	case StatusRead:
		return "Read"
	case StatusQueued:
		return "Queued"
	case StatusFailed:
		return "Failed"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Priority orders a recipient's backlog: higher priorities leave first.
type Priority int

// Message priorities, numbered as in the previous service.
const (
	PriorityLow    Priority = 1
	PriorityNormal Priority = 2
	PriorityHigh   Priority = 3
	PriorityUrgent Priority = 4
)

// Valid reports whether p is one of the defined priorities.
func (p Priority) Valid() bool { return p >= PriorityLow && p <= PriorityUrgent }

// Message is one accepted message and its delivery state.
type Message struct {
	ID            ID         `json:"id"`
	CreatorID     string     `json:"c"`
	Recipient     string     `json:"r"` // normalised phone number, digits only
	Subject       string     `json:"s,omitempty"`
	Content       string     `json:"b"`
	Status        Status     `json:"st"`
	Priority      Priority   `json:"p"`
	RetryCount    int        `json:"rc,omitempty"`
	CreationTime  time.Time  `json:"t"`
	DeliveredAt   *time.Time `json:"da,omitempty"`
	FailureReason string     `json:"fr,omitempty"`
	LastRetryAt   *time.Time `json:"lr,omitempty"`
	NextRetryAt   *time.Time `json:"nr,omitempty"`
	MovedToDlqAt  *time.Time `json:"dq,omitempty"`

	// Attempts counts the sends to the recipient's devices. RetryCount is
	// Attempts-1 once the message was sent.
	Attempts int `json:"a,omitempty"`
	// Due is the time of the message's entry in the retry schedule while it
	// is in an inbox: the next retry while sent, else its expiry.
	Due time.Time `json:"du,omitzero"`
}

func encodeMessage(m *Message) ([]byte, error) {
	return encodeBinary(m), nil
}

func decodeMessage(b []byte) (*Message, error) {
	if len(b) > 0 && b[0] == codecV1 {
		return decodeBinary(b)
	}
	m := new(Message)
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("storage: decode message: %w: %w", ErrCorrupt, err)
	}
	return m, nil
}

// ParseID parses a message id in the canonical 36-character UUID form.
func ParseID(s string) (ID, error) {
	if len(s) != 36 {
		return ID{}, fmt.Errorf("storage: invalid message id %q: expected 36 characters", s)
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return ID{}, fmt.Errorf("storage: invalid message id %q: %w", s, err)
	}
	return id, nil
}
