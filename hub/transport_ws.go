package hub

import (
	"crypto/rand"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
)

// wsTransport carries a connection over one WebSocket. Its reader goroutine runs for the
// life of the socket. Its writer goroutine runs only while frames are queued, so an idle
// connection costs one goroutine.
type wsTransport struct {
	c    *conn
	ws   *websocket.Conn // set before ready, then read-only
	idle idleReader      // used only by the reader goroutine after the upgrade

	// Guarded by c.mu.
	ready   bool // the upgrade finished and the previous reader exited
	writing bool // a writer goroutine is running
	stopped bool // no writer may start any more
	aborted bool

	writers sync.WaitGroup
	done    chan struct{} // closed when the reader goroutine has exited
}

func (t *wsTransport) wake() {
	if !t.ready || t.writing || t.stopped {
		return
	}
	t.writing = true
	t.writers.Add(1)
	go t.writeLoop()
}

func (t *wsTransport) abort() {
	t.aborted = true
	if t.ws != nil {
		_ = t.ws.NetConn().Close()
	}
}

// serveWebSocket upgrades r and starts the reader goroutine. Without an id query
// parameter it creates a connection on the spot, which is what clients that skip
// negotiation expect.
func (h *Hub) serveWebSocket(w http.ResponseWriter, r *http.Request, user string) {
	var c *conn
	if queryValue(r.URL.Query(), "id") == "" {
		if !h.admit(w, user) {
			return
		}
		c = newConn(h, user, rand.Text(), newConnectionToken(), false)
		h.reg.addToken(c)
	} else if c = h.lookup(w, r, user); c == nil {
		return
	}
	t := &wsTransport{c: c, done: make(chan struct{})}
	previous, err := c.attach(t, TransportWebSockets, r.RemoteAddr)
	if err != nil {
		writeAttachError(w, err)
		return
	}
	ws, err := h.upgrader.Upgrade(&upgradeWriter{ResponseWriter: w, idle: &t.idle}, r, nil)
	if err != nil || !h.enter() {
		// The upgrader has written an error response, or the hub is shutting down and
		// the upgraded socket must close.
		if ws != nil {
			_ = ws.Close()
		}
		close(t.done)
		c.transportLost(t, false)
		return
	}
	// The reader runs on its own goroutine so that the HTTP server's per-request
	// buffers, which the handler goroutine keeps alive, are freed while it is idle.
	go t.run(ws, previous)
}

// run waits for the previous reader, reads until the socket ends and then detaches the
// transport.
func (t *wsTransport) run(ws *websocket.Conn, previous <-chan struct{}) {
	c := t.c
	defer c.hub.leave()
	defer close(t.done)
	if previous != nil {
		<-previous
	}
	c.mu.Lock()
	t.ws = ws
	if t.aborted || c.transport != t {
		c.mu.Unlock()
		_ = ws.Close()
		return
	}
	t.ready = true
	if len(c.outbox) > 0 {
		t.wake()
	}
	c.mu.Unlock()

	err := t.readLoop()
	graceful := websocket.IsCloseError(err, websocket.CloseNormalClosure,
		websocket.CloseGoingAway)
	c.hub.log.Debug("websocket ended", zap.String("conn_id", c.info.ID), zap.Error(err))

	c.mu.Lock()
	t.stopped = true
	c.mu.Unlock()
	_ = ws.Close()
	t.writers.Wait()
	c.transportLost(t, graceful)
}

// readLoop processes incoming WebSocket messages until the socket fails. Once the
// connection is closing it keeps reading, and discarding, so that the final frame can
// be written before the socket closes.
func (t *wsTransport) readLoop() error {
	discard := false
	done := make(chan error, 1)
	for {
		if err := t.idle.wait(); err != nil {
			return err
		}
		// NB: frames are parsed on a short-lived goroutine, which this one
		// waits for. Parsing and dispatching need a deep stack; that stack is
		// freed when the goroutine exits, so the goroutine that stays parked
		// between frames keeps the small stack it needs for wait. A client
		// ping every keep-alive interval would otherwise grow the parked
		// goroutine's stack again between garbage collections.
		go func() { done <- t.readBuffered(&discard) }()
		if err := <-done; err != nil {
			return err
		}
	}
}

// readBuffered reads and dispatches frames until no more bytes are
// buffered. It reads at least one frame, waiting for it to arrive whole.
func (t *wsTransport) readBuffered(discard *bool) error {
	for {
		_, r, err := t.ws.NextReader()
		if err != nil {
			return err
		}
		if !*discard {
			if err := t.c.receive(r); err != nil {
				if !errors.Is(err, errStopReading) {
					return err
				}
				*discard = true
			}
		}
		if t.idle.br == nil || t.idle.br.Buffered() == 0 {
			return nil
		}
	}
}

// writeLoop writes the queued frames until the queue is empty. After the final frame
// of a closing connection it closes the socket with a close handshake.
func (t *wsTransport) writeLoop() {
	c := t.c
	defer t.writers.Done()
	var batch [][]byte
	for {
		c.mu.Lock()
		if t.stopped || c.transport != t || len(c.outbox) == 0 {
			closing := !t.stopped && c.transport == t && c.state == stateClosing
			t.writing = false
			c.mu.Unlock()
			if closing {
				t.closeSocket()
			}
			return
		}
		batch, c.outbox = c.outbox, batch[:0]
		c.mu.Unlock()

		err := t.writeBatch(batch)
		clear(batch)
		if err != nil {
			c.hub.log.Debug("websocket write failed", zap.String("conn_id", c.info.ID),
				zap.Error(err))
			_ = t.ws.NetConn().Close()
			c.mu.Lock()
			t.writing = false
			c.mu.Unlock()
			return
		}
	}
}

// writeBatch writes frames as one WebSocket text message. Clients split it at the
// record separators.
func (t *wsTransport) writeBatch(frames [][]byte) error {
	_ = t.ws.SetWriteDeadline(time.Now().Add(t.c.hub.cfg.WriteTimeout))
	w, err := t.ws.NextWriter(websocket.TextMessage)
	if err != nil {
		return err
	}
	for _, frame := range frames {
		if _, err := w.Write(frame); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	t.c.markWritten()
	return nil
}

// closeSocket sends a normal-closure close frame and closes the socket.
func (t *wsTransport) closeSocket() {
	deadline := time.Now().Add(t.c.hub.cfg.WriteTimeout)
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	_ = t.ws.WriteControl(websocket.CloseMessage, msg, deadline)
	_ = t.ws.NetConn().Close()
}
