package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/esh3artech/esh3artech/storage"
)

// Limits of a message, as in the previous service.
const (
	maxSubjectLen = 32  // characters
	maxBatchLen   = 500 // messages per batch request
)

// sendRequest is the body of a single send: the previous service's fields
// plus an optional priority.
type sendRequest struct {
	RecipientPhoneNumber string          `json:"recipientPhoneNumber"`
	MessageContent       string          `json:"messageContent"`
	Subject              string          `json:"subject"`
	Priority             json.RawMessage `json:"priority,omitempty"`
}

// batchItem is one message of the previous service's batch route.
type batchItem struct {
	MobileNumber   string `json:"mobileNumber"`
	MessageContent string `json:"messageContent"`
	Subject        string `json:"subject"`
}

// messageView is a message as the API returns it, with the previous
// service's field names.
type messageView struct {
	ID                   string     `json:"id"`
	CreatorID            string     `json:"creatorId"`
	RecipientPhoneNumber string     `json:"recipientPhoneNumber"`
	Subject              string     `json:"subject"`
	MessageContent       string     `json:"messageContent"`
	Status               int        `json:"status"`
	Priority             int        `json:"priority"`
	RetryCount           int        `json:"retryCount"`
	CreationTime         time.Time  `json:"creationTime"`
	DeliveredAt          *time.Time `json:"deliveredAt"`
	FailureReason        *string    `json:"failureReason"`
	LastRetryAt          *time.Time `json:"lastRetryAt"`
	NextRetryAt          *time.Time `json:"nextRetryAt"`
	MovedToDlqAt         *time.Time `json:"movedToDlqAt"`
}

func viewOf(m *storage.Message) messageView {
	v := messageView{
		ID: m.ID.String(), CreatorID: m.CreatorID, RecipientPhoneNumber: m.Recipient,
		Subject: m.Subject, MessageContent: m.Content, Status: int(m.Status),
		Priority: int(m.Priority), RetryCount: m.RetryCount, CreationTime: m.CreationTime,
		DeliveredAt: m.DeliveredAt, LastRetryAt: m.LastRetryAt, NextRetryAt: m.NextRetryAt,
		MovedToDlqAt: m.MovedToDlqAt,
	}
	if m.FailureReason != "" {
		v.FailureReason = &m.FailureReason
	}
	return v
}

// draft is a validated message that is not stored yet.
type draft struct {
	phone, content, subject string
	priority                storage.Priority
}

// validateMessage checks one message's fields. prefix names the message in
// field errors of a batch, such as "batchMessages[3].".
func (a *API) validateMessage(prefix, phoneField, phone, content, subject string,
	priority json.RawMessage) (draft, []FieldError) {
	var errs []FieldError
	d := draft{content: content, subject: subject, priority: storage.PriorityNormal}
	if strings.TrimSpace(phone) == "" {
		errs = append(errs, FieldError{prefix + phoneField, "missing; send the recipient's phone number"})
	} else if p, err := a.phones.Normalize(phone); err != nil {
		errs = append(errs, FieldError{prefix + phoneField, err.Error()})
	} else {
		d.phone = p
	}
	if strings.TrimSpace(content) == "" {
		errs = append(errs, FieldError{prefix + "messageContent", "missing or empty; send the text of the message"})
	}
	if n := utf8.RuneCountInString(subject); n > maxSubjectLen {
		errs = append(errs, FieldError{prefix + "subject",
			fmt.Sprintf("%d characters is longer than the maximum of %d", n, maxSubjectLen)})
	}
	if len(priority) > 0 {
		p, err := parsePriority(priority)
		if err != nil {
			errs = append(errs, FieldError{prefix + "priority", err.Error()})
		}
		d.priority = p
	}
	return d, errs
}

// parsePriority accepts a priority as its number (1 to 4) or its name
// (Low, Normal, High, Urgent, in any case).
func parsePriority(raw json.RawMessage) (storage.Priority, error) {
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return storage.PriorityNormal, nil
	}
	var n int
	if err := json.Unmarshal(raw, &n); err == nil {
		if p := storage.Priority(n); p.Valid() {
			return p, nil
		}
		return 0, fmt.Errorf("%d is not 1 (Low), 2 (Normal), 3 (High) or 4 (Urgent)", n)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		switch strings.ToLower(s) {
		case "low":
			return storage.PriorityLow, nil
		case "normal":
			return storage.PriorityNormal, nil
		case "high":
			return storage.PriorityHigh, nil
		case "urgent":
			return storage.PriorityUrgent, nil
		}
	}
	return 0, fmt.Errorf("%s is not 1 (Low), 2 (Normal), 3 (High) or 4 (Urgent)", raw)
}

// newMessages turns validated drafts into messages of client.
func newMessages(client string, drafts []draft) ([]*storage.Message, error) {
	now := time.Now().UTC()
	msgs := make([]*storage.Message, len(drafts))
	for i, d := range drafts {
		id, err := storage.NewID()
		if err != nil {
			return nil, err
		}
		msgs[i] = &storage.Message{
			ID: id, CreatorID: client, Recipient: d.phone, Subject: d.subject,
			Content: d.content, Status: storage.StatusQueued, Priority: d.priority,
			CreationTime: now,
		}
	}
	return msgs, nil
}
