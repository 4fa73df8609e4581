package hub

import (
	"net/http"
	"strings"
)

// AccessToken returns the bearer token of r: the token of an "Authorization: Bearer"
// header, or else the access_token query parameter, which browser WebSocket and
// Server-Sent Events clients must use because they cannot set headers. It returns ""
// when r carries neither. Authenticators use it to read the token the official
// SignalR clients send.
func AccessToken(r *http.Request) string {
	if scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok &&
		strings.EqualFold(scheme, "Bearer") {
		if token = strings.TrimSpace(token); token != "" {
			return token
		}
	}
	return r.URL.Query().Get("access_token")
}
