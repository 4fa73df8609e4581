package signalr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrInvalidMessage is wrapped by every error that ParseMessage returns for a record that
// is not a valid hub message.
var ErrInvalidMessage = errors.New("signalr: invalid hub message")

// wireMessage mirrors the JSON encoding. Pointer fields tell an absent property from an
// empty one.
type wireMessage struct {
	Type           *MessageType      `json:"type"`
	Headers        map[string]string `json:"headers"`
	InvocationID   *string           `json:"invocationId"`
	Target         *string           `json:"target"`
	Arguments      []json.RawMessage `json:"arguments"`
	StreamIDs      []string          `json:"streamIds"`
	Item           json.RawMessage   `json:"item"`
	Result         json.RawMessage   `json:"result"`
	Error          *string           `json:"error"`
	AllowReconnect bool              `json:"allowReconnect"`
	SequenceID     *int64            `json:"sequenceId"`
}

// ParseMessage decodes one JSON hub message. record is the text of one record without
// its trailing record separator.
//
// The returned message has only the fields that belong to its type set. Messages of a
// type this package does not know are returned with only Type set, so that callers can
// ignore them as the specification allows. Unknown properties are ignored. A missing
// required property, a property of the wrong JSON type or a Completion with both result
// and error is an error wrapping ErrInvalidMessage.
//
// NOTE: encoding/json matches property names case-insensitively, so "Target" is read
// as "target", although the specification makes names case-sensitive.
func ParseMessage(record []byte) (Message, error) {
	var w wireMessage
	if err := json.Unmarshal(record, &w); err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	if w.Type == nil {
		return Message{}, fmt.Errorf("%w: missing required property 'type'", ErrInvalidMessage)
	}
	if err := validate(&w); err != nil {
		return Message{}, err
	}
	m := Message{Type: *w.Type}
	if m.Type != TypePing {
		m.Headers = w.Headers
	}
	switch m.Type {
	case TypeInvocation, TypeStreamInvocation:
		m.InvocationID = deref(w.InvocationID)
		m.Target = *w.Target
		m.Arguments = w.Arguments
		m.StreamIDs = w.StreamIDs
	case TypeStreamItem:
		m.InvocationID = *w.InvocationID
		m.Item = w.Item
	case TypeCompletion:
		m.InvocationID = *w.InvocationID
		m.Result = w.Result
		m.Error = deref(w.Error)
	case TypeCancelInvocation:
		m.InvocationID = *w.InvocationID
	case TypeClose:
		m.Error = deref(w.Error)
		m.AllowReconnect = w.AllowReconnect
	case TypeAck, TypeSequence:
		m.SequenceID = *w.SequenceID
	case TypePing:
	default:
		m.Headers = nil
	}
	return m, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// validate checks the required properties of each message type.
func validate(w *wireMessage) error {
	typ := *w.Type
	missing := func(name string) error {
		return fmt.Errorf("%w: %s message is missing required property '%s'",
			ErrInvalidMessage, typ, name)
	}
	switch typ {
	case TypeInvocation, TypeStreamInvocation:
		if typ == TypeStreamInvocation && w.InvocationID == nil {
			return missing("invocationId")
		}
		if w.Target == nil {
			return missing("target")
		}
		if w.Arguments == nil {
			return missing("arguments")
		}
	case TypeStreamItem, TypeCancelInvocation:
		if w.InvocationID == nil {
			return missing("invocationId")
		}
	case TypeCompletion:
		if w.InvocationID == nil {
			return missing("invocationId")
		}
		if w.Error != nil && w.Result != nil {
			return fmt.Errorf("%w: Completion message has both 'result' and 'error'",
				ErrInvalidMessage)
		}
	case TypeAck, TypeSequence:
		if w.SequenceID == nil {
			return missing("sequenceId")
		}
		if *w.SequenceID < 0 {
			return fmt.Errorf("%w: negative sequenceId %d", ErrInvalidMessage, *w.SequenceID)
		}
	}
	return nil
}

// AppendMessage appends the JSON encoding of m and the record separator to dst.
//
// Only the properties that belong to m.Type are written. Arguments, Item and Result must
// each hold one complete JSON value: AppendMessage copies them as they are.
func AppendMessage(dst []byte, m *Message) []byte {
	dst = append(dst, `{"type":`...)
	dst = strconv.AppendInt(dst, int64(m.Type), 10)
	if len(m.Headers) > 0 && m.Type != TypePing {
		dst = appendHeaders(dst, m.Headers)
	}
	switch m.Type {
	case TypeInvocation, TypeStreamInvocation:
		dst = appendInvocationBody(dst, m)
	case TypeStreamItem:
		dst = appendInvocationID(dst, m.InvocationID)
		dst = append(dst, `,"item":`...)
		dst = appendRaw(dst, m.Item)
	case TypeCompletion:
		dst = appendInvocationID(dst, m.InvocationID)
		if m.Error != "" {
			dst = append(dst, `,"error":`...)
			dst = AppendString(dst, m.Error)
		} else if m.Result != nil {
			dst = append(dst, `,"result":`...)
			dst = append(dst, m.Result...)
		}
	case TypeCancelInvocation:
		dst = appendInvocationID(dst, m.InvocationID)
	case TypeClose:
		if m.Error != "" {
			dst = append(dst, `,"error":`...)
			dst = AppendString(dst, m.Error)
		}
		if m.AllowReconnect {
			dst = append(dst, `,"allowReconnect":true`...)
		}
	case TypeAck, TypeSequence:
		dst = append(dst, `,"sequenceId":`...)
		dst = strconv.AppendInt(dst, m.SequenceID, 10)
	}
	return append(dst, '}', RecordSeparator)
}

func appendInvocationBody(dst []byte, m *Message) []byte {
	if m.InvocationID != "" {
		dst = appendInvocationID(dst, m.InvocationID)
	}
	dst = append(dst, `,"target":`...)
	dst = AppendString(dst, m.Target)
	dst = append(dst, `,"arguments":[`...)
	for i, arg := range m.Arguments {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendRaw(dst, arg)
	}
	dst = append(dst, ']')
	if len(m.StreamIDs) > 0 {
		dst = append(dst, `,"streamIds":[`...)
		for i, id := range m.StreamIDs {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, id)
		}
		dst = append(dst, ']')
	}
	return dst
}

func appendInvocationID(dst []byte, id string) []byte {
	dst = append(dst, `,"invocationId":`...)
	return AppendString(dst, id)
}

// appendRaw appends an encoded JSON value, writing null for an empty one.
func appendRaw(dst []byte, raw json.RawMessage) []byte {
	if len(bytes.TrimSpace(raw)) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, raw...)
}

func appendHeaders(dst []byte, headers map[string]string) []byte {
	keys := make([]string, 0, len(headers))
	for k := range headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	dst = append(dst, `,"headers":{`...)
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, k)
		dst = append(dst, ':')
		dst = AppendString(dst, headers[k])
	}
	return append(dst, '}')
}

// AppendString appends s to dst as a JSON string literal.
//
// Control characters, including the record separator 0x1E, are escaped, so the output
// never contains a raw separator. Invalid UTF-8 sequences become U+FFFD, so the output
// is valid UTF-8 as WebSocket text frames require.
func AppendString(dst []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return appendEscaped(dst, s)
}

// AppendStringBytes is AppendString for text held in a byte slice.
func AppendStringBytes(dst []byte, s []byte) []byte {
	if !utf8.Valid(s) {
		s = bytes.ToValidUTF8(s, []byte("\uFFFD"))
	}
	return appendEscaped(dst, s)
}

// appendEscaped quotes valid UTF-8 text, escaping '"', '\\' and control characters.
func appendEscaped[T string | []byte](dst []byte, s T) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b >= 0x20 && b != '"' && b != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch b {
		case '"', '\\':
			dst = append(dst, '\\', b)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
