package hub

import (
	"bytes"
	"context"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// discardTransport drops every frame, standing in for a client.
type discardTransport struct{ c *conn }

func (t *discardTransport) wake()  { t.c.outbox = t.c.outbox[:0] }
func (t *discardTransport) abort() {}

// newFuzzConn returns a connection that completed a handshake of protocol version.
func newFuzzConn(h *Hub, version int) *conn {
	c := newConn(h, alicePhone, "fuzz", "fuzz-token", true)
	c.transport = &discardTransport{c: c}
	c.info.Transport = TransportLongPolling
	c.state = stateHandshake
	if version > 0 {
		_ = c.completeHandshake(version)
	}
	return c
}

func newFuzzHub(t testing.TB) *Hub {
	h, err := New(Config{Auth: testAuth, Events: &testEvents{}, Logger: zap.NewNop(),
		MaxMessageSize: 4096})
	require.NoError(t, err)
	return h
}

func FuzzLongPollBody(f *testing.F) {
	for _, seed := range []string{
		"{\"protocol\":\"json\",\"version\":1}\x1e",
		"{\"type\":1,\"invocationId\":\"1\",\"target\":\"AcknowledgeMessage\",\"arguments\":[\"a\"]}\x1e",
		"{\"type\":1,\"target\":\"acknowledgemessage\",\"arguments\":[1,2]}\x1e{\"type\":6}\x1e",
		"{\"type\":4,\"invocationId\":\"1\",\"target\":\"x\",\"arguments\":[]}\x1e",
		"{\"type\":9,\"sequenceId\":1}\x1e{\"type\":8,\"sequenceId\":99}\x1e",
		"{\"type\":7}\x1e",
		"\x1e\x1e",
		"{\"type\":1,",
	} {
		f.Add([]byte(seed), 1)
		f.Add([]byte(seed), 0)
	}
	h := newFuzzHub(f)
	f.Cleanup(func() { _ = h.Shutdown(context.Background()) })
	f.Fuzz(func(t *testing.T, body []byte, version int) {
		c := newFuzzConn(h, version%3)
		err := c.receive(bytes.NewReader(body))
		// Client data never yields an I/O error here: protocol errors close the
		// connection and report errStopReading instead.
		if err != nil {
			require.ErrorIs(t, err, errStopReading)
		}
		c.finish()
	})
}

func FuzzNegotiateQuery(f *testing.F) {
	for _, seed := range []string{
		"negotiateVersion=1", "negotiateVersion=0&useStatefulReconnect=true",
		"NEGOTIATEVERSION=5", "negotiateVersion=-3", "negotiateVersion=abc",
		"negotiateVersion=99999999999999999999", "useStatefulReconnect=TRUE&id=x", "%zz",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		query, err := url.ParseQuery(rawQuery)
		if err != nil {
			return
		}
		version, errText := parseNegotiateVersion(query)
		if errText != "" {
			require.Equal(t, 0, version)
		} else {
			require.GreaterOrEqual(t, version, 0)
			require.LessOrEqual(t, version, maxNegotiateVersion)
		}
		_ = parseStatefulReconnect(query)
	})
}

func FuzzAcceptsEventStream(f *testing.F) {
	f.Add("text/event-stream")
	f.Add("text/html, TEXT/EVENT-STREAM;q=0.9")
	f.Add("*/*")
	f.Fuzz(func(t *testing.T, accept string) {
		r := httptestRequest(accept)
		_ = acceptsEventStream(r)
	})
}
