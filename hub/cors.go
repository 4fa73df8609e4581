package hub

import (
	"net/http"
	"net/url"
	"strings"
)

// corsMaxAge is the time in seconds that browsers may cache a preflight response.
const corsMaxAge = "600"

// originAllowed reports whether origin is in AllowedOrigins, compared case-insensitively.
func (h *Hub) originAllowed(origin string) bool {
	for _, allowed := range h.cfg.AllowedOrigins {
		if strings.EqualFold(allowed, origin) {
			return true
		}
	}
	return false
}

// writeCORSHeaders lets an allowed origin read the response, with credentials. It
// returns whether the request's origin is allowed.
func (h *Hub) writeCORSHeaders(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	w.Header().Add("Vary", "Origin")
	if !h.originAllowed(origin) {
		return false
	}
	w.Header().Set("Access-Control-Allow-Origin", origin)
	w.Header().Set("Access-Control-Allow-Credentials", "true")
	return true
}

// servePreflight responds to a CORS preflight request: 204 with the allowed methods and
// headers for an allowed origin, 403 otherwise.
func (h *Hub) servePreflight(w http.ResponseWriter, r *http.Request, allowed bool) {
	if !allowed {
		http.Error(w, "Origin not allowed.", http.StatusForbidden)
		return
	}
	w.Header().Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
	if requested := r.Header.Get("Access-Control-Request-Headers"); requested != "" {
		w.Header().Set("Access-Control-Allow-Headers", requested)
	}
	w.Header().Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
}

// originMatchesHost reports whether origin names host, the same-origin case that
// browsers send for pages served by the hub's own server.
func originMatchesHost(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, host)
}
