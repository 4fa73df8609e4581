package signalr

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
)

var benchPayload = json.RawMessage(`"{\"Id\":\"6f1c2a8e-2f3b-4c59-9d3e-0a1b2c3d4e5f\",` +
	`\"CreatorId\":\"shop-42\",\"RecipientPhoneNumber\":\"+15551234567\",` +
	`\"MessageContent\":\"Your order has shipped.\",\"Status\":1,\"From\":\"shop-42\",` +
	`\"AccessUrl\":\"\",\"UrlExpiresAt\":null}"`)

func BenchmarkAppendInvocation(b *testing.B) {
	m := Message{Type: TypeInvocation, Target: "ReceiveMessage",
		Arguments: []json.RawMessage{benchPayload}}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendMessage(buf[:0], &m)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkParseInvocation(b *testing.B) {
	record := []byte(`{"type":1,"invocationId":"17","target":"AcknowledgeMessage",` +
		`"arguments":["6f1c2a8e-2f3b-4c59-9d3e-0a1b2c3d4e5f"]}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(record)))
	for b.Loop() {
		if _, err := ParseMessage(record); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadRecords(b *testing.B) {
	var data []byte
	for range 16 {
		data = AppendMessage(data, &Message{Type: TypeInvocation, Target: "ReceiveMessage",
			Arguments: []json.RawMessage{benchPayload}})
	}
	r := bytes.NewReader(data)
	count := 0
	onRecord := func([]byte) error { count++; return nil }
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r.Reset(data)
		if err := ReadRecords(io.Reader(r), 32<<10, onRecord); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendString(b *testing.B) {
	text := string(benchPayload)
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		buf = AppendString(buf[:0], text)
	}
}
