package signalr

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// ErrInvalidHandshake is wrapped by the errors of ParseHandshakeRequest and
// ParseHandshakeResponse.
var ErrInvalidHandshake = errors.New("signalr: invalid handshake message")

// ProtocolJSON is the name of the JSON hub protocol in a handshake request.
const ProtocolJSON = "json"

// HandshakeRequest is the first message a client sends on a new connection.
type HandshakeRequest struct {
	// Protocol is the name of the hub protocol, such as "json".
	Protocol string
	// Version is the hub protocol version. Version 2 of the JSON protocol adds the Ack
	// and Sequence messages of stateful reconnect.
	Version int
}

// HandshakeResponse is the server's reply to a HandshakeRequest.
type HandshakeResponse struct {
	// Error is the reason the handshake failed, or empty on success.
	Error string `json:"error,omitempty"`
}

// ParseHandshakeRequest decodes a handshake request record, given without its
// separator. Both "protocol" (a string) and "version" (an integer) are required.
func ParseHandshakeRequest(record []byte) (HandshakeRequest, error) {
	var w struct {
		Protocol *string `json:"protocol"`
		Version  *int    `json:"version"`
	}
	if err := json.Unmarshal(record, &w); err != nil {
		return HandshakeRequest{}, fmt.Errorf("%w: %w", ErrInvalidHandshake, err)
	}
	if w.Protocol == nil {
		return HandshakeRequest{}, fmt.Errorf("%w: missing property 'protocol'", ErrInvalidHandshake)
	}
	if w.Version == nil {
		return HandshakeRequest{}, fmt.Errorf("%w: missing property 'version'", ErrInvalidHandshake)
	}
	return HandshakeRequest{Protocol: *w.Protocol, Version: *w.Version}, nil
}

// AppendHandshakeRequest appends the encoding of req and the record separator to dst.
func AppendHandshakeRequest(dst []byte, req HandshakeRequest) []byte {
	dst = append(dst, `{"protocol":`...)
	dst = AppendString(dst, req.Protocol)
	dst = append(dst, `,"version":`...)
	dst = strconv.AppendInt(dst, int64(req.Version), 10)
	return append(dst, '}', RecordSeparator)
}

// ParseHandshakeResponse decodes a handshake response record, given without its
// separator.
func ParseHandshakeResponse(record []byte) (HandshakeResponse, error) {
	var resp HandshakeResponse
	if err := json.Unmarshal(record, &resp); err != nil {
		return HandshakeResponse{}, fmt.Errorf("%w: %w", ErrInvalidHandshake, err)
	}
	return resp, nil
}

// AppendHandshakeResponse appends a handshake response and the record separator to dst.
// An empty errText encodes success as the empty object {}.
func AppendHandshakeResponse(dst []byte, errText string) []byte {
	if errText == "" {
		return append(dst, '{', '}', RecordSeparator)
	}
	dst = append(dst, `{"error":`...)
	dst = AppendString(dst, errText)
	return append(dst, '}', RecordSeparator)
}
