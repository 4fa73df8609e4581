package signalr

import (
	"encoding/json"
	"strconv"
)

// MessageType is the value of the "type" property of a hub message.
type MessageType int

// Hub message types of the JSON hub protocol.
const (
	TypeInvocation       MessageType = 1
	TypeStreamItem       MessageType = 2
	TypeCompletion       MessageType = 3
	TypeStreamInvocation MessageType = 4
	TypeCancelInvocation MessageType = 5
	TypePing             MessageType = 6
	TypeClose            MessageType = 7
	TypeAck              MessageType = 8
	TypeSequence         MessageType = 9
)

// String returns the protocol name of t, such as "Invocation", or "MessageType(n)" for
// a type this package does not know.
func (t MessageType) String() string {
	switch t {
	case TypeInvocation:
		return "Invocation"
	case TypeStreamItem:
		return "StreamItem"
	case TypeCompletion:
		return "Completion"
	case TypeStreamInvocation:
		return "StreamInvocation"
	case TypeCancelInvocation:
		return "CancelInvocation"
	case TypePing:
		return "Ping"
	case TypeClose:
		return "Close"
	case TypeAck:
		return "Ack"
	case TypeSequence:
		return "Sequence"
	}
	return "MessageType(" + strconv.Itoa(int(t)) + ")"
}

// Trackable reports whether messages of type t carry an implicit sequence ID under
// stateful reconnect. Only Invocation, StreamItem, Completion, StreamInvocation and
// CancelInvocation do.
func (t MessageType) Trackable() bool {
	return t >= TypeInvocation && t <= TypeCancelInvocation
}

// Message is one hub protocol message. Type selects which of the other fields are used:
//
//   - Invocation and StreamInvocation: InvocationID, Target, Arguments, StreamIDs.
//   - StreamItem: InvocationID, Item.
//   - Completion: InvocationID and either Error or Result.
//   - CancelInvocation: InvocationID.
//   - Close: Error, AllowReconnect.
//   - Ack and Sequence: SequenceID.
//
// An empty InvocationID means the property is absent, which makes an Invocation
// non-blocking. A nil Result means the property is absent, while a Result holding the
// JSON literal null means the property is present with a null value.
type Message struct {
	// Type is the message type.
	Type MessageType
	// Headers are the optional string headers of the message. Peers ignore headers
	// they do not understand.
	Headers map[string]string
	// InvocationID identifies the invocation or stream the message belongs to.
	InvocationID string
	// Target is the name of the invoked method.
	Target string
	// Arguments are the encoded method arguments, each a complete JSON value.
	Arguments []json.RawMessage
	// StreamIDs name the client-to-server streams that accompany an invocation.
	StreamIDs []string
	// Item is the encoded value of a stream item.
	Item json.RawMessage
	// Result is the encoded result of a completed invocation.
	Result json.RawMessage
	// Error is the error text of a failed invocation or of a Close message.
	Error string
	// AllowReconnect, on Close, is true when clients with automatic reconnect enabled
	// should reconnect.
	AllowReconnect bool
	// SequenceID is the sequence ID carried by Ack and Sequence messages.
	SequenceID int64
}
