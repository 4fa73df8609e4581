package hub

import (
	"bytes"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// sseTransport carries server-to-client frames over a Server-Sent Events response. The
// request handler goroutine writes the frames, and clients send with POST.
type sseTransport struct {
	wakeup  chan struct{} // capacity 1: a pending wake-up
	aborted bool          // guarded by conn.mu
}

func (t *sseTransport) wake() {
	select {
	case t.wakeup <- struct{}{}:
	default:
	}
}

func (t *sseTransport) abort() {
	t.aborted = true
	t.wake()
}

// serveServerSentEvents streams frames to the client as SSE data events until the
// client goes away or the connection ends.
func (h *Hub) serveServerSentEvents(w http.ResponseWriter, r *http.Request, c *conn) {
	t := &sseTransport{wakeup: make(chan struct{}, 1)}
	if _, err := c.attach(t, TransportServerSentEvents, r.RemoteAddr); err != nil {
		writeAttachError(w, err)
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		c.transportLost(t, false)
		return
	}
	var batch [][]byte
	var buf []byte
	for {
		c.mu.Lock()
		detached := t.aborted || c.transport != t
		batch, c.outbox = c.outbox, batch[:0]
		closingDone := c.state == stateClosing
		c.mu.Unlock()
		if detached {
			return
		}
		if len(batch) > 0 {
			buf = appendSSEEvent(buf[:0], batch)
			clear(batch)
			if err := h.writeSSE(rc, w, buf); err != nil {
				h.log.Debug("sse write failed", zap.String("conn_id", c.info.ID), zap.Error(err))
				c.transportLost(t, false)
				return
			}
			c.markWritten()
		}
		if closingDone {
			c.transportLost(t, true)
			return
		}
		select {
		case <-t.wakeup:
		case <-r.Context().Done():
			c.transportLost(t, false)
			return
		}
	}
}

func (h *Hub) writeSSE(rc *http.ResponseController, w http.ResponseWriter, event []byte) error {
	_ = rc.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
	if _, err := w.Write(event); err != nil {
		return err
	}
	return rc.Flush()
}

// appendSSEEvent appends one SSE event whose data is the concatenated frames. Each line
// of the data gets its own "data:" field, which clients join with "\n".
func appendSSEEvent(dst []byte, frames [][]byte) []byte {
	dst = append(dst, "data: "...)
	for _, frame := range frames {
		for {
			i := bytes.IndexByte(frame, '\n')
			if i < 0 {
				break
			}
			dst = append(dst, bytes.TrimSuffix(frame[:i], []byte{'\r'})...)
			dst = append(dst, "\r\ndata: "...)
			frame = frame[i+1:]
		}
		dst = append(dst, frame...)
	}
	return append(dst, "\r\n\r\n"...)
}
