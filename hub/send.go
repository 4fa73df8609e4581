package hub

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/esh3artech/esh3artech/hub/signalr"
	"go.uber.org/zap"
)

// MobileMessage is the message payload the mobile apps receive. Its JSON keys are
// PascalCase, as the apps expect.
type MobileMessage struct {
	// ID identifies the message. Clients acknowledge it with AcknowledgeMessage(ID).
	ID string `json:"Id"`
	// CreatorID identifies the sender.
	CreatorID string `json:"CreatorId"`
	// RecipientPhoneNumber is the normalised phone number of the recipient.
	RecipientPhoneNumber string `json:"RecipientPhoneNumber"`
	// MessageContent is the message text.
	MessageContent string `json:"MessageContent"`
	// Status is the delivery status code.
	Status int `json:"Status"`
	// From is the display sender.
	From string `json:"From"`
	// AccessURL is the link to attached content, if any.
	AccessURL string `json:"AccessUrl"`
	// URLExpiresAt is when AccessURL stops working, or nil, encoded as JSON null.
	URLExpiresAt *time.Time `json:"UrlExpiresAt"`
}

// SendMessage invokes ReceiveMessage on the connection with ONE string argument: the
// JSON text of m. It does not wait for the client or the network: it queues the
// message and returns. A full send queue closes the connection and returns an error
// wrapping ErrSlowConsumer. Other errors wrap ErrConnNotFound or ErrConnClosing.
func (h *Hub) SendMessage(connID string, m MobileMessage) error {
	payload, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("hub: encoding message %s: %w", m.ID, err)
	}
	if err := h.sendString(connID, methodReceiveMessage, payload); err != nil {
		return err
	}
	h.log.Debug("message queued", zap.String("conn_id", connID), zap.String("msg_id", m.ID))
	return nil
}

// SendPending invokes ReceivePendingMessages on the connection with ONE string
// argument: the JSON text of the array ms (an empty array for nil). It returns the
// errors SendMessage returns.
func (h *Hub) SendPending(connID string, ms []MobileMessage) error {
	if ms == nil {
		ms = []MobileMessage{}
	}
	payload, err := json.Marshal(ms)
	if err != nil {
		return fmt.Errorf("hub: encoding %d pending messages: %w", len(ms), err)
	}
	if err := h.sendString(connID, methodReceivePendingMessages, payload); err != nil {
		return err
	}
	h.log.Debug("pending messages queued", zap.String("conn_id", connID),
		zap.Int("count", len(ms)))
	return nil
}

// sendString queues a non-blocking invocation of target whose only argument is the
// JSON string holding text.
func (h *Hub) sendString(connID, target string, text []byte) error {
	c := h.reg.byID(connID)
	if c == nil {
		return fmt.Errorf("hub: sending %s to connection %s: %w", target, connID, ErrConnNotFound)
	}
	frame := appendStringInvocation(make([]byte, 0, len(text)+len(text)/8+64), target, text)
	if err := c.enqueue(frame, true); err != nil {
		return fmt.Errorf("hub: sending %s to connection %s: %w", target, connID, err)
	}
	return nil
}

// appendStringInvocation appends an Invocation frame without invocation ID whose only
// argument is text as a JSON string.
func appendStringInvocation(dst []byte, target string, text []byte) []byte {
	dst = append(dst, `{"type":1,"target":`...)
	dst = signalr.AppendString(dst, target)
	dst = append(dst, `,"arguments":[`...)
	dst = signalr.AppendStringBytes(dst, text)
	return append(dst, ']', '}', signalr.RecordSeparator)
}
