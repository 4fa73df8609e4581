package app

import (
	"fmt"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// limiter applies the per-client token buckets and the node-wide bound on
// requests in progress. Its settings are replaced whole on reload.
type limiter struct {
	settings atomic.Pointer[limitSettings]
	inFlight atomic.Int64

	mu      sync.Mutex
	buckets map[string]*bucket // by client id
}

type limitSettings struct {
	limits  LimitsConfig
	clients map[string]ClientConfig
}

// bucket is one client's token bucket and the settings it was built from.
type bucket struct {
	*rate.Limiter
	rate  float64
	burst int
}

func newLimiter(l LimitsConfig, clients []ClientConfig) *limiter {
	lm := &limiter{buckets: map[string]*bucket{}}
	lm.set(l, clients)
	return lm
}

// set replaces the limits. Buckets whose rate or burst changed are rebuilt
// full on their next use.
func (lm *limiter) set(l LimitsConfig, clients []ClientConfig) {
	byID := make(map[string]ClientConfig, len(clients))
	for _, c := range clients {
		byID[c.ID] = c
	}
	lm.settings.Store(&limitSettings{limits: l, clients: byID})
}

func (lm *limiter) limits() LimitsConfig { return lm.settings.Load().limits }

// clientRate returns the rate and burst that apply to client.
func (lm *limiter) clientRate(client string) (float64, int) {
	s := lm.settings.Load()
	r, b := s.limits.Rate, s.limits.Burst
	if c, ok := s.clients[client]; ok {
		if c.Rate > 0 {
			r = c.Rate
		}
		if c.Burst > 0 {
			b = c.Burst
		}
	}
	return r, b
}

func (lm *limiter) bucket(client string) *bucket {
	r, b := lm.clientRate(client)
	lm.mu.Lock()
	defer lm.mu.Unlock()
	bk := lm.buckets[client]
	if bk == nil || bk.rate != r || bk.burst != b {
		bk = &bucket{Limiter: rate.NewLimiter(rate.Limit(r), b), rate: r, burst: b}
		lm.buckets[client] = bk
	}
	return bk
}

// take removes n tokens from client's bucket and returns a function that
// puts them back. When it cannot, it removes none and returns how long
// until n tokens are available (or -1 when n is above the burst, so it
// never will be).
func (lm *limiter) take(client string, n int, now time.Time) (
	ok bool, wait time.Duration, refund func()) {
	bk := lm.bucket(client)
	if n > bk.burst {
		return false, -1, nil
	}
	res := bk.ReserveN(now, n)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d, nil
	}
	return true, 0, func() { res.CancelAt(now) }
}

// setHeaders writes the RateLimit-Policy and RateLimit fields of the IETF
// httpapi rate-limit headers draft. The quota is the burst, refilled over
// the window burst/rate. In RateLimit, r is the tokens left and t the
// seconds until the bucket is full again.
func (lm *limiter) setHeaders(h http.Header, client string, now time.Time) {
	bk := lm.bucket(client)
	window := int(math.Ceil(float64(bk.burst) / bk.rate))
	tokens := max(bk.TokensAt(now), 0)
	refill := int(math.Ceil((float64(bk.burst) - tokens) / bk.rate))
	h.Set("RateLimit-Policy", fmt.Sprintf(`"client";q=%d;w=%d`, bk.burst, window))
	h.Set("RateLimit", fmt.Sprintf(`"client";r=%d;t=%d`, int(tokens), max(refill, 0)))
}

// boundInFlight responds with 503 at once when max_in_flight requests are
// already in progress, rather than queueing without limit.
func (a *API) boundInFlight(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		n := a.limits.inFlight.Add(1)
		defer a.limits.inFlight.Add(-1)
		if n > int64(a.limits.limits().MaxInFlight) {
			a.metrics.refused.WithLabelValues("in_flight").Inc()
			e := newAPIError(http.StatusServiceUnavailable, "overloaded",
				"The node has too many requests in progress and accepted nothing; retry shortly.")
			e.RetryAfter = time.Second
			return writeAPIError(c, e)
		}
		return next(c)
	}
}

// admit checks the node-wide and per-recipient limits and then takes n
// tokens from the client's bucket. It returns an *APIError for a refusal.
//
// The client's limit comes first, so that a client over its limit learns
// that rather than the node's state. The tokens of a request that the node
// then rejects are put back.
func (a *API) admit(c echo.Context, drafts []draft) error {
	p := principal(c)
	ok, wait, refund := a.limits.take(p.ClientID, len(drafts), time.Now())
	if ok {
		if err := a.checkNode(); err != nil {
			refund()
			return err
		}
		if err := a.checkRecipients(drafts); err != nil {
			refund()
			return err
		}
		return nil
	}
	a.metrics.refused.WithLabelValues("rate_limit").Inc()
	if wait < 0 {
		_, burst := a.limits.clientRate(p.ClientID)
		return newAPIError(http.StatusTooManyRequests, "batch_over_burst", fmt.Sprintf(
			"The batch has %d messages, more than this client's burst of %d; split it.",
			len(drafts), burst))
	}
	e := newAPIError(http.StatusTooManyRequests, "rate_limited",
		"This client is over its rate limit and nothing was accepted; retry after Retry-After seconds.")
	e.RetryAfter = wait
	return e
}

// checkNode refuses new messages while the queue is past its high-water
// mark or Pebble is stalling writes.
func (a *API) checkNode() error {
	l := a.limits.limits()
	depth := a.store.QueueDepth()
	switch {
	case depth >= l.QueueHighWater:
		a.metrics.refused.WithLabelValues("queue_full").Inc()
		e := newAPIError(http.StatusServiceUnavailable, "queue_full", fmt.Sprintf(
			"The node has %d messages waiting to be routed, at or above its high-water mark of %d, "+
				"and accepted nothing; retry later.", depth, l.QueueHighWater))
		e.RetryAfter = 5 * time.Second
		return e
	case a.store.Stalled():
		a.metrics.refused.WithLabelValues("write_stall").Inc()
		e := newAPIError(http.StatusServiceUnavailable, "storage_stalled",
			"The node's storage is stalling writes and accepted nothing; retry shortly.")
		e.RetryAfter = 2 * time.Second
		return e
	}
	return nil
}

// checkRecipients refuses a request with a message to a recipient whose
// inbox is at its cap, naming the recipient.
//
// NOTE: the count is this node's: its queue and its inboxes. In a cluster
// the owner's inbox lives on another node, so the cap holds only for
// requests that reach the recipient's owner.
func (a *API) checkRecipients(drafts []draft) error {
	limit := a.limits.limits().InboxCap
	inRequest := map[string]int{}
	for _, d := range drafts {
		inRequest[d.phone]++
		if n := a.store.Pending(d.phone) + inRequest[d.phone] - 1; n >= limit {
			a.metrics.refused.WithLabelValues("inbox_full").Inc()
			e := newAPIError(http.StatusTooManyRequests, "recipient_inbox_full", fmt.Sprintf(
				"Recipient %s has %d messages waiting, at or above the cap of %d, so nothing was "+
					"accepted; retry once the recipient has caught up.", d.phone, n, limit))
			e.RetryAfter = 30 * time.Second
			return e
		}
	}
	return nil
}
