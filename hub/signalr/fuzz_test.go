package signalr

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func FuzzParseMessage(f *testing.F) {
	for _, seed := range []string{
		`{"type":1,"invocationId":"1","target":"AcknowledgeMessage","arguments":["id"]}`,
		`{"type":1,"target":"x","arguments":[],"streamIds":["1"]}`,
		`{"type":2,"invocationId":"1","item":{}}`,
		`{"type":3,"invocationId":"1","result":[1,2]}`,
		`{"type":3,"invocationId":"1","error":"e"}`,
		`{"type":4,"invocationId":"1","target":"s","arguments":[]}`,
		`{"type":5,"invocationId":"1"}`,
		`{"type":6}`,
		`{"type":7,"error":"x","allowReconnect":true}`,
		`{"type":8,"sequenceId":3}`,
		`{"type":9,"sequenceId":1}`,
		`{"type":1,"headers":{"a":"b"},"target":"t","arguments":[null]}`,
		`{"type":99}`,
		`[]`,
		`{"type":1e400}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, record []byte) {
		m, err := ParseMessage(record)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidMessage)
			return
		}
		// Every accepted message re-encodes to one valid record that parses the same.
		frame := AppendMessage(nil, &m)
		again, rest, ok := SplitRecord(frame)
		require.True(t, ok)
		require.Empty(t, rest)
		require.True(t, json.Valid(again), "re-encoded %q as invalid JSON %q", record, again)
		m2, err := ParseMessage(again)
		require.NoError(t, err)
		require.Equal(t, m.Type, m2.Type)
		require.Equal(t, m.InvocationID, m2.InvocationID)
		require.Equal(t, m.Target, m2.Target)
		require.Equal(t, len(m.Arguments), len(m2.Arguments))
		require.Equal(t, m.Error, m2.Error)
		require.Equal(t, m.AllowReconnect, m2.AllowReconnect)
		require.Equal(t, m.SequenceID, m2.SequenceID)
	})
}

func FuzzReadRecords(f *testing.F) {
	f.Add([]byte("{}\x1e{\"type\":6}\x1e"), 8)
	f.Add([]byte("\x1e\x1e\x1e"), 1)
	f.Add([]byte("abc"), 2)
	f.Add([]byte(strings.Repeat("x", 100)+"\x1e"), 100)
	f.Fuzz(func(t *testing.T, data []byte, maxSize int) {
		if maxSize < 1 || maxSize > 1<<16 {
			return
		}
		var got [][]byte
		err := ReadRecords(bytes.NewReader(data), maxSize, func(record []byte) error {
			got = append(got, bytes.Clone(record))
			return nil
		})
		// The streaming reader must agree with splitting the whole input.
		var want [][]byte
		rest := data
		for {
			record, after, ok := SplitRecord(rest)
			if !ok {
				break
			}
			if len(record) > maxSize {
				require.ErrorIs(t, err, ErrMessageTooLarge)
				require.Equal(t, want, got)
				return
			}
			want = append(want, record)
			rest = after
		}
		require.Equal(t, want, got)
		switch {
		case len(rest) > maxSize:
			require.ErrorIs(t, err, ErrMessageTooLarge)
		case len(rest) > 0:
			require.ErrorIs(t, err, ErrIncompleteRecord)
		default:
			require.NoError(t, err)
		}
	})
}

func FuzzParseHandshakeRequest(f *testing.F) {
	f.Add([]byte(`{"protocol":"json","version":1}`))
	f.Add([]byte(`{"protocol":"messagepack","version":2}`))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"protocol":"json","version":99999999999999999999}`))
	f.Fuzz(func(t *testing.T, record []byte) {
		req, err := ParseHandshakeRequest(record)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidHandshake)
			return
		}
		again, _, ok := SplitRecord(AppendHandshakeRequest(nil, req))
		require.True(t, ok)
		req2, err := ParseHandshakeRequest(again)
		require.NoError(t, err)
		require.Equal(t, req.Version, req2.Version)
	})
}

func FuzzAppendString(f *testing.F) {
	f.Add("plain")
	f.Add("quote \" slash \\ sep \x1e nul \x00")
	f.Add("bad \xff\xfe utf-8")
	f.Add("emoji 😀 and \u2028")
	f.Fuzz(func(t *testing.T, s string) {
		encoded := AppendString(nil, s)
		require.True(t, utf8.Valid(encoded))
		require.NotContains(t, string(encoded), "\x1e")
		var decoded string
		require.NoError(t, json.Unmarshal(encoded, &decoded))
		require.Equal(t, strings.ToValidUTF8(s, "\uFFFD"), decoded)
		require.Equal(t, encoded, AppendStringBytes(nil, []byte(s)))
	})
}
