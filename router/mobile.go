package router

import (
	"github.com/esh3artech/esh3artech/hub"
	"github.com/esh3artech/esh3artech/storage"
)

// mobileMessage converts m to the payload that apps receive.
func mobileMessage(m *storage.Message) hub.MobileMessage {
	return hub.MobileMessage{
		ID:                   m.ID.String(),
		CreatorID:            m.CreatorID,
		RecipientPhoneNumber: m.Recipient,
		MessageContent:       m.Content,
		Status:               int(storage.StatusSent),
		From:                 m.CreatorID,
	}
}
