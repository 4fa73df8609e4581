package hub

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// pollTransport carries server-to-client frames in long-poll responses. It stays
// attached across polls. All fields are guarded by conn.mu.
type pollTransport struct {
	waiter   *pollWaiter // the poll waiting for frames, if any
	lastPoll time.Time   // when the last poll ended or the first one arrived
	aborted  bool
}

// pollWaiter is one poll request waiting for frames.
type pollWaiter struct {
	wakeup     chan struct{} // capacity 1: a pending wake-up
	superseded bool          // a newer poll took over
}

func (t *pollTransport) wake() {
	if t.waiter != nil {
		select {
		case t.waiter.wakeup <- struct{}{}:
		default:
		}
	}
}

func (t *pollTransport) abort() {
	t.aborted = true
	t.wake()
}

// idleLocked reports whether no poll has been waiting for timeout, which means the
// client is gone.
func (t *pollTransport) idleLocked(now time.Time, timeout time.Duration) bool {
	return t.waiter == nil && now.Sub(t.lastPoll) >= timeout
}

// pollOutcome is the result of checking a waiting poll.
type pollOutcome int

const (
	pollWait       pollOutcome = iota // nothing to send yet
	pollDeliver                       // frames to send with 200
	pollTerminated                    // 204: superseded by a newer poll, or the connection ended
)

// servePoll handles a long poll. The first poll of a connection returns 200 at once
// with an empty body. Later polls wait up to LongPollTimeout for frames. A newer poll
// ends a waiting one with 204, and so does the end of the connection.
func (h *Hub) servePoll(w http.ResponseWriter, r *http.Request, c *conn) {
	noCache(w)
	t, waiter, err := h.beginPoll(r, c)
	if err != nil {
		writeAttachError(w, err)
		return
	}
	if waiter == nil {
		writePollBody(w, nil)
		return
	}
	timer := time.NewTimer(h.cfg.LongPollTimeout)
	defer timer.Stop()
	for {
		c.mu.Lock()
		outcome, frames, closingDone := c.collectPollLocked(t, waiter)
		c.mu.Unlock()
		switch outcome {
		case pollDeliver:
			writePollBody(w, frames)
			c.markWritten()
			if closingDone {
				c.transportLost(t, true)
			}
			return
		case pollTerminated:
			w.WriteHeader(http.StatusNoContent)
			return
		}
		select {
		case <-waiter.wakeup:
		case <-timer.C:
			c.endPoll(t, waiter)
			writePollBody(w, nil)
			return
		case <-r.Context().Done():
			c.endPoll(t, waiter)
			return
		}
	}
}

// beginPoll attaches the transport on the first poll, for which it returns a nil
// waiter, and registers later polls as the waiting one.
func (h *Hub) beginPoll(r *http.Request, c *conn) (*pollTransport, *pollWaiter, error) {
	c.mu.Lock()
	t, ok := c.transport.(*pollTransport)
	if ok {
		if c.state == stateClosed || t.aborted {
			c.mu.Unlock()
			return nil, nil, errConnGone
		}
		if t.waiter != nil {
			t.waiter.superseded = true
			t.wake()
		}
		t.waiter = &pollWaiter{wakeup: make(chan struct{}, 1)}
		waiter := t.waiter
		c.mu.Unlock()
		return t, waiter, nil
	}
	c.mu.Unlock()
	t = &pollTransport{lastPoll: time.Now()}
	if _, err := c.attach(t, TransportLongPolling, r.RemoteAddr); err != nil {
		return nil, nil, err
	}
	return t, nil, nil
}

// collectPollLocked decides what the waiting poll returns. closingDone reports that the
// frames end a closing connection.
func (c *conn) collectPollLocked(t *pollTransport, waiter *pollWaiter) (
	outcome pollOutcome, frames [][]byte, closingDone bool) {
	switch {
	case waiter.superseded:
		return pollTerminated, nil, false
	case t.aborted || c.transport != t:
		return pollTerminated, nil, false
	case len(c.outbox) > 0:
		frames, c.outbox = c.outbox, nil
		t.waiter = nil
		t.lastPoll = time.Now()
		return pollDeliver, frames, c.state == stateClosing
	}
	return pollWait, nil, false
}

// endPoll unregisters a poll that ends without frames.
func (c *conn) endPoll(t *pollTransport, waiter *pollWaiter) {
	c.mu.Lock()
	if t.waiter == waiter {
		t.waiter = nil
		t.lastPoll = time.Now()
	}
	c.mu.Unlock()
}

func writePollBody(w http.ResponseWriter, frames [][]byte) {
	size := 0
	for _, f := range frames {
		size += len(f)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(size))
	w.WriteHeader(http.StatusOK)
	for _, f := range frames {
		if _, err := w.Write(f); err != nil {
			return
		}
	}
}

// serveSend processes a POST of client messages for long polling and Server-Sent Events.
// The messages are processed before the response, one POST at a time per connection:
// a concurrent POST gets 409.
func (h *Hub) serveSend(w http.ResponseWriter, r *http.Request, c *conn) {
	c.mu.Lock()
	transportName := c.info.Transport
	c.mu.Unlock()
	switch transportName {
	case TransportWebSockets:
		http.Error(w, "POST requests are not allowed for WebSocket connections.",
			http.StatusMethodNotAllowed)
		return
	case "":
		http.Error(w, "The connection has no transport yet: start polling or open the "+
			"event stream first.", http.StatusBadRequest)
		return
	}
	if !c.posting.CompareAndSwap(false, true) {
		http.Error(w, "Another POST for this connection is in progress.", http.StatusConflict)
		return
	}
	defer c.posting.Store(false)
	err := c.receive(r.Body)
	if err != nil && !errors.Is(err, errStopReading) {
		h.log.Debug("reading POST body failed", zap.String("conn_id", c.info.ID), zap.Error(err))
		http.Error(w, "Reading the request body failed.", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
}

// serveDelete ends a long polling connection and responds with 202, as ASP.NET Core
// does.
// The waiting poll gets 204.
func (h *Hub) serveDelete(w http.ResponseWriter, c *conn) {
	c.mu.Lock()
	transportName := c.info.Transport
	c.mu.Unlock()
	if transportName != TransportLongPolling {
		http.Error(w, "Cannot terminate this connection using the DELETE endpoint.",
			http.StatusBadRequest)
		return
	}
	h.log.Debug("client deleted connection", zap.String("conn_id", c.info.ID))
	c.finish()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusAccepted)
}
