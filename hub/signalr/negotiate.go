package signalr

// Transport names as they appear in negotiate responses.
const (
	TransportWebSockets       = "WebSockets"
	TransportServerSentEvents = "ServerSentEvents"
	TransportLongPolling      = "LongPolling"
)

// TransferFormatText is the transfer format of text protocols such as JSON.
const TransferFormatText = "Text"

// NegotiateResponse is the JSON body of a successful reply to POST {endpoint}/negotiate.
type NegotiateResponse struct {
	// ConnectionID is the public ID of the new connection.
	ConnectionID string `json:"connectionId,omitempty"`
	// ConnectionToken is the secret that later transport requests pass as the id query
	// parameter. Only negotiate version 1 and later send it: under version 0 the
	// connection ID serves as the token.
	ConnectionToken string `json:"connectionToken,omitempty"`
	// NegotiateVersion is the negotiate protocol version the server chose.
	NegotiateVersion int `json:"negotiateVersion"`
	// AvailableTransports lists the transports the server offers, in order of
	// preference.
	AvailableTransports []AvailableTransport `json:"availableTransports"`
	// UseStatefulReconnect is true when the server agreed to stateful reconnect.
	UseStatefulReconnect bool `json:"useStatefulReconnect,omitempty"`
	// URL redirects the client to another endpoint.
	URL string `json:"url,omitempty"`
	// AccessToken is the bearer token to use with URL.
	AccessToken string `json:"accessToken,omitempty"`
	// Error stops the connection attempt with this reason.
	Error string `json:"error,omitempty"`
}

// AvailableTransport is one entry of NegotiateResponse.AvailableTransports.
type AvailableTransport struct {
	// Transport is the transport name, such as "WebSockets".
	Transport string `json:"transport"`
	// TransferFormats lists the transfer formats the transport carries.
	TransferFormats []string `json:"transferFormats"`
}

// Token returns the value that transport requests must pass as the id query parameter:
// the connection token, or the connection ID under negotiate version 0.
func (r *NegotiateResponse) Token() string {
	if r.NegotiateVersion >= 1 {
		return r.ConnectionToken
	}
	return r.ConnectionID
}

// Offers reports whether the response lists transport.
func (r *NegotiateResponse) Offers(transport string) bool {
	for _, t := range r.AvailableTransports {
		if t.Transport == transport {
			return true
		}
	}
	return false
}
