package signalr

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseMessageTypes(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want Message
	}{
		{"invocation", `{"type":1,"invocationId":"7","target":"Send","arguments":[42,"x"]}`,
			Message{Type: TypeInvocation, InvocationID: "7", Target: "Send",
				Arguments: []json.RawMessage{json.RawMessage(`42`), json.RawMessage(`"x"`)}}},
		{"non-blocking invocation", `{"type":1,"target":"Send","arguments":[]}`,
			Message{Type: TypeInvocation, Target: "Send", Arguments: []json.RawMessage{}}},
		{"invocation with streams",
			`{"type":1,"invocationId":"1","target":"Up","arguments":[],"streamIds":["s1"]}`,
			Message{Type: TypeInvocation, InvocationID: "1", Target: "Up",
				Arguments: []json.RawMessage{}, StreamIDs: []string{"s1"}}},
		{"stream item", `{"type":2,"invocationId":"1","item":{"a":1}}`,
			Message{Type: TypeStreamItem, InvocationID: "1", Item: json.RawMessage(`{"a":1}`)}},
		{"completion with result", `{"type":3,"invocationId":"1","result":null}`,
			Message{Type: TypeCompletion, InvocationID: "1", Result: json.RawMessage(`null`)}},
		{"completion with error", `{"type":3,"invocationId":"1","error":"boom"}`,
			Message{Type: TypeCompletion, InvocationID: "1", Error: "boom"}},
		{"stream invocation", `{"type":4,"invocationId":"2","target":"S","arguments":[1]}`,
			Message{Type: TypeStreamInvocation, InvocationID: "2", Target: "S",
				Arguments: []json.RawMessage{json.RawMessage(`1`)}}},
		{"cancel invocation", `{"type":5,"invocationId":"2"}`,
			Message{Type: TypeCancelInvocation, InvocationID: "2"}},
		{"ping", `{"type":6}`, Message{Type: TypePing}},
		{"close", `{"type":7,"error":"bye","allowReconnect":true}`,
			Message{Type: TypeClose, Error: "bye", AllowReconnect: true}},
		{"ack", `{"type":8,"sequenceId":1394}`, Message{Type: TypeAck, SequenceID: 1394}},
		{"sequence", `{"type":9,"sequenceId":12}`, Message{Type: TypeSequence, SequenceID: 12}},
		{"headers", `{"type":5,"invocationId":"2","headers":{"Foo":"Bar"}}`,
			Message{Type: TypeCancelInvocation, InvocationID: "2",
				Headers: map[string]string{"Foo": "Bar"}}},
		{"unknown type is bare", `{"type":42,"target":"x","whatever":[1]}`, Message{Type: 42}},
		{"unknown property ignored", `{"type":6,"extra":true}`, Message{Type: TypePing}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMessage([]byte(tc.in))
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseMessageInvalid(t *testing.T) {
	cases := map[string]string{
		"not json":                       `{"type":1`,
		"empty":                          ``,
		"missing type":                   `{"target":"x","arguments":[]}`,
		"type is a string":               `{"type":"1"}`,
		"invocation without target":      `{"type":1,"arguments":[]}`,
		"invocation without arguments":   `{"type":1,"target":"x"}`,
		"arguments not an array":         `{"type":1,"target":"x","arguments":{}}`,
		"target not a string":            `{"type":1,"target":5,"arguments":[]}`,
		"stream invocation without id":   `{"type":4,"target":"x","arguments":[]}`,
		"stream item without id":         `{"type":2,"item":1}`,
		"completion without id":          `{"type":3}`,
		"completion with result and err": `{"type":3,"invocationId":"1","result":1,"error":"e"}`,
		"cancel without id":              `{"type":5}`,
		"ack without sequence":           `{"type":8}`,
		"negative sequence":              `{"type":9,"sequenceId":-1}`,
		"headers not strings":            `{"type":6,"headers":{"a":1}}`,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseMessage([]byte(in))
			require.ErrorIs(t, err, ErrInvalidMessage)
		})
	}
}

func TestAppendMessageRoundTrip(t *testing.T) {
	messages := []Message{
		{Type: TypeInvocation, InvocationID: "1", Target: "Add",
			Arguments: []json.RawMessage{json.RawMessage(`1`), json.RawMessage(`[2]`)}},
		{Type: TypeInvocation, Target: "Fire", Arguments: []json.RawMessage{}},
		{Type: TypeStreamInvocation, InvocationID: "9", Target: "S",
			Arguments: []json.RawMessage{}, StreamIDs: []string{"a", "b"}},
		{Type: TypeStreamItem, InvocationID: "9", Item: json.RawMessage(`"x"`)},
		{Type: TypeCompletion, InvocationID: "1", Result: json.RawMessage(`{"k":"v"}`)},
		{Type: TypeCompletion, InvocationID: "1", Error: "it failed"},
		{Type: TypeCompletion, InvocationID: "1"},
		{Type: TypeCancelInvocation, InvocationID: "3", Headers: map[string]string{"h": "v"}},
		{Type: TypePing},
		{Type: TypeClose, Error: "bye", AllowReconnect: true},
		{Type: TypeClose},
		{Type: TypeAck, SequenceID: 5},
		{Type: TypeSequence, SequenceID: 1},
	}
	for _, m := range messages {
		t.Run(m.Type.String(), func(t *testing.T) {
			frame := AppendMessage(nil, &m)
			record, rest, ok := SplitRecord(frame)
			require.True(t, ok)
			require.Empty(t, rest)
			require.True(t, json.Valid(record), "invalid JSON: %s", record)
			got, err := ParseMessage(record)
			require.NoError(t, err)
			require.Equal(t, m, got)
		})
	}
}

func TestAppendMessageExactEncoding(t *testing.T) {
	cases := map[string]struct {
		m    Message
		want string
	}{
		"ping": {Message{Type: TypePing}, `{"type":6}`},
		"close": {Message{Type: TypeClose, Error: "e", AllowReconnect: true},
			`{"type":7,"error":"e","allowReconnect":true}`},
		"void completion": {Message{Type: TypeCompletion, InvocationID: "4"},
			`{"type":3,"invocationId":"4"}`},
		"non-blocking invocation": {Message{Type: TypeInvocation, Target: "T",
			Arguments: []json.RawMessage{json.RawMessage(`"a"`)}},
			`{"type":1,"target":"T","arguments":["a"]}`},
		"empty stream item": {Message{Type: TypeStreamItem, InvocationID: "1"},
			`{"type":2,"invocationId":"1","item":null}`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want+"\x1e", string(AppendMessage(nil, &tc.m)))
		})
	}
}

func TestAppendStringEscapes(t *testing.T) {
	cases := map[string]struct {
		in   string
		want string
	}{
		"plain":            {"hello", `"hello"`},
		"quote and slash":  {`a"b\c`, `"a\"b\\c"`},
		"newline and tab":  {"a\nb\tc\r", `"a\nb\tc\r"`},
		"record separator": {"a\x1eb", `"a\u001eb"`},
		"nul":              {"\x00", `"\u0000"`},
		"unicode":          {"héllo ✓", `"héllo ✓"`},
		"invalid utf-8":    {"a\xffb", `"a` + "\uFFFD" + `b"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := AppendString(nil, tc.in)
			require.Equal(t, tc.want, string(got))
			require.Equal(t, tc.want, string(AppendStringBytes(nil, []byte(tc.in))))
			var decoded string
			require.NoError(t, json.Unmarshal(got, &decoded))
		})
	}
}

func TestMessageTypeString(t *testing.T) {
	require.Equal(t, "Invocation", TypeInvocation.String())
	require.Equal(t, "Sequence", TypeSequence.String())
	require.Equal(t, "MessageType(12)", MessageType(12).String())
}

func TestMessageTypeTrackable(t *testing.T) {
	for _, typ := range []MessageType{TypeInvocation, TypeStreamItem, TypeCompletion,
		TypeStreamInvocation, TypeCancelInvocation} {
		require.True(t, typ.Trackable(), typ.String())
	}
	for _, typ := range []MessageType{TypePing, TypeClose, TypeAck, TypeSequence, 0, 10} {
		require.False(t, typ.Trackable(), typ.String())
	}
}
