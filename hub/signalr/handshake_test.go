package signalr

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseHandshakeRequest(t *testing.T) {
	req, err := ParseHandshakeRequest([]byte(`{"protocol":"json","version":2}`))
	require.NoError(t, err)
	require.Equal(t, HandshakeRequest{Protocol: "json", Version: 2}, req)
}

func TestParseHandshakeRequestInvalid(t *testing.T) {
	for name, in := range map[string]string{
		"not json":         `{"protocol":`,
		"missing protocol": `{"version":1}`,
		"missing version":  `{"protocol":"json"}`,
		"version fraction": `{"protocol":"json","version":1.5}`,
		"protocol number":  `{"protocol":1,"version":1}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseHandshakeRequest([]byte(in))
			require.ErrorIs(t, err, ErrInvalidHandshake)
		})
	}
}

func TestHandshakeRoundTrip(t *testing.T) {
	frame := AppendHandshakeRequest(nil, HandshakeRequest{Protocol: "json", Version: 1})
	require.Equal(t, "{\"protocol\":\"json\",\"version\":1}\x1e", string(frame))
	record, _, ok := SplitRecord(frame)
	require.True(t, ok)
	req, err := ParseHandshakeRequest(record)
	require.NoError(t, err)
	require.Equal(t, HandshakeRequest{Protocol: "json", Version: 1}, req)
}

func TestHandshakeResponse(t *testing.T) {
	require.Equal(t, "{}\x1e", string(AppendHandshakeResponse(nil, "")))

	frame := AppendHandshakeResponse(nil, `Requested protocol "x" is not available.`)
	record, _, ok := SplitRecord(frame)
	require.True(t, ok)
	resp, err := ParseHandshakeResponse(record)
	require.NoError(t, err)
	require.Equal(t, `Requested protocol "x" is not available.`, resp.Error)

	_, err = ParseHandshakeResponse([]byte(`[`))
	require.ErrorIs(t, err, ErrInvalidHandshake)
}

func TestNegotiateResponseToken(t *testing.T) {
	v1 := NegotiateResponse{ConnectionID: "id", ConnectionToken: "tok", NegotiateVersion: 1}
	require.Equal(t, "tok", v1.Token())
	v0 := NegotiateResponse{ConnectionID: "id"}
	require.Equal(t, "id", v0.Token())
	require.False(t, v0.Offers(TransportWebSockets))
	v0.AvailableTransports = []AvailableTransport{{Transport: TransportWebSockets}}
	require.True(t, v0.Offers(TransportWebSockets))
}
