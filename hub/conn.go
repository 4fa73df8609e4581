package hub

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/esh3artech/esh3artech/hub/signalr"
	"go.uber.org/zap"
)

// connState is the lifecycle state of a connection.
type connState uint8

const (
	// stateNegotiated: created by negotiate, no transport has connected yet.
	stateNegotiated connState = iota
	// stateHandshake: a transport is attached and the handshake has not arrived.
	stateHandshake
	// stateConnected: the handshake completed and a transport is attached.
	stateConnected
	// stateDetached: a stateful connection lost its transport and waits for the client
	// to reconnect within ReconnectWindow.
	stateDetached
	// stateClosing: a final frame (Close or a failed handshake response) is queued and
	// the transport ends once it is written.
	stateClosing
	// stateClosed: the connection is gone and removed from the registry.
	stateClosed
)

// Progress of the Connected and Disconnected events of a connection.
const (
	eventsNone       uint8 = iota
	eventsConnecting       // Connected is running
	eventsConnected        // Connected returned, so Disconnected is owed
	eventsDone             // Disconnected was reported or is not owed
)

// transport is the server-to-client side of a connection. Its methods are called with
// conn.mu held and must not block.
type transport interface {
	// wake signals the transport that conn.outbox has frames to write.
	wake()
	// abort ends the transport at once, without writing what is queued.
	abort()
}

// conn is one logical hub connection. With stateful reconnect it outlives the
// transports that carry it.
type conn struct {
	hub   *Hub
	token string
	// info is complete before the connection is indexed by ID and user, and it does
	// not change after that.
	info ConnInfo
	// wantStateful records that the client asked for stateful reconnect at negotiate.
	wantStateful bool

	ctx    context.Context
	cancel context.CancelFunc

	lastRead  atomic.Int64 // monotonicNow of the last data from the client
	lastWrite atomic.Int64 // monotonicNow of the last write to the client
	invoking  atomic.Bool  // a hub method is running, which pauses the client timeout
	posting   atomic.Bool  // a POST is being processed (long polling, Server-Sent Events)

	mu        sync.Mutex
	state     connState
	since     time.Time // when state was entered
	events    uint8
	transport transport
	outbox    [][]byte      // frames waiting for the transport, each ending in 0x1E
	replay    *replayBuffer // unacknowledged frames, for stateful connections only

	// The fields below belong to the goroutine that processes incoming data. A new
	// transport starts reading only after the previous reader has exited, and POSTs
	// are processed one at a time, so they are never accessed concurrently.
	protocolVersion int
	stateful        bool
	inbound         inboundSequence
}

func newConn(h *Hub, user, id, token string, wantStateful bool) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	now := time.Now()
	c := &conn{
		hub:          h,
		token:        token,
		info:         ConnInfo{ID: id, User: user},
		wantStateful: wantStateful,
		ctx:          ctx,
		cancel:       cancel,
		since:        now,
	}
	c.inbound.next = 1
	return c
}

func (c *conn) setStateLocked(s connState) {
	c.state = s
	c.since = time.Now()
}

// enqueue queues frame for the client. Trackable frames are also kept for stateful
// replay. A full queue or replay buffer closes the connection and returns
// ErrSlowConsumer.
func (c *conn) enqueue(frame []byte, trackable bool) error {
	c.mu.Lock()
	finishNow, err := c.enqueueLocked(frame, trackable)
	c.mu.Unlock()
	if finishNow {
		c.finish()
	}
	return err
}

// enqueueLocked queues frame. When finishNow is true, the caller must call finish after
// unlocking.
func (c *conn) enqueueLocked(frame []byte, trackable bool) (finishNow bool, err error) {
	if c.state == stateClosing || c.state == stateClosed {
		return false, ErrConnClosing
	}
	if trackable && c.replay != nil && !c.replay.add(frame) {
		return c.closeSlowLocked(), ErrSlowConsumer
	}
	if c.transport == nil {
		// Detached: the replay buffer keeps the frame until the client reconnects.
		return false, nil
	}
	if len(c.outbox) >= c.hub.cfg.SendQueueSize {
		return c.closeSlowLocked(), ErrSlowConsumer
	}
	c.outbox = append(c.outbox, frame)
	c.transport.wake()
	return false, nil
}

// closeSlowLocked closes a connection whose client does not keep up. It returns true
// when the caller must call finish after unlocking.
func (c *conn) closeSlowLocked() bool {
	c.hub.log.Warn("closing slow connection",
		zap.String("conn_id", c.info.ID), zap.String("phone", c.info.User),
		zap.Int("queued_frames", len(c.outbox)))
	// The queued frames are dropped: the router still holds every unacknowledged
	// message and delivers it again after the client reconnects.
	c.outbox = c.outbox[:0]
	return c.closeLocked("Send queue is full.", true)
}

// close queues a Close message and lets the transport end after writing it. Connections
// without an attached transport end at once.
func (c *conn) close(errText string, allowReconnect bool) {
	c.mu.Lock()
	finishNow := c.closeLocked(errText, allowReconnect)
	c.mu.Unlock()
	if finishNow {
		c.finish()
	}
}

// closeLocked queues the Close message. It returns true when the caller must call
// finish after unlocking, because no transport can deliver the message.
func (c *conn) closeLocked(errText string, allowReconnect bool) bool {
	switch c.state {
	case stateClosing, stateClosed:
		return false
	case stateConnected:
		frame := signalr.AppendMessage(nil, &signalr.Message{
			Type: signalr.TypeClose, Error: errText, AllowReconnect: allowReconnect,
		})
		c.outbox = append(c.outbox, frame)
		c.setStateLocked(stateClosing)
		c.transport.wake()
		return false
	}
	return true
}

// failHandshakeLocked queues a failed handshake response and lets the transport end
// after writing it.
func (c *conn) failHandshakeLocked(errText string) {
	if c.state != stateHandshake {
		return
	}
	c.outbox = append(c.outbox, signalr.AppendHandshakeResponse(nil, errText))
	c.setStateLocked(stateClosing)
	c.transport.wake()
}

// finish ends the connection for good: it aborts the transport, removes the connection
// from the registry and reports Disconnected if Connected was reported. It is safe to
// call more than once and from any goroutine that holds no hub lock.
func (c *conn) finish() {
	c.mu.Lock()
	if c.state == stateClosed {
		c.mu.Unlock()
		return
	}
	c.setStateLocked(stateClosed)
	if c.transport != nil {
		c.transport.abort()
		c.transport = nil
	}
	c.outbox = nil
	c.replay = nil
	report := c.events == eventsConnected
	if report || c.events == eventsNone {
		c.events = eventsDone
	}
	c.mu.Unlock()

	c.cancel()
	c.hub.reg.remove(c)
	if report {
		c.hub.reportDisconnected(c)
	}
}

// transportLost detaches t after its connection dropped. A stateful connection whose
// transport dropped without a close handshake waits for the client to reconnect, and
// every other connection ends.
func (c *conn) transportLost(t transport, graceful bool) {
	c.mu.Lock()
	if c.transport != t {
		c.mu.Unlock()
		return
	}
	c.transport = nil
	c.outbox = nil
	if c.state == stateConnected && c.replay != nil && !graceful {
		c.setStateLocked(stateDetached)
		c.mu.Unlock()
		c.hub.log.Info("transport lost, waiting for stateful reconnect",
			zap.String("conn_id", c.info.ID), zap.String("phone", c.info.User))
		return
	}
	c.mu.Unlock()
	c.finish()
}

// markActive records client activity now.
func (c *conn) markActive() {
	c.lastRead.Store(monotonicNow())
}

// markWritten records a write to the client now.
func (c *conn) markWritten() {
	c.lastWrite.Store(monotonicNow())
}

// processStart anchors the activity timestamps that connections keep as integers, so
// that they use the monotonic clock and wall-clock jumps cause no timeouts.
var processStart = time.Now()

// monotonicNow returns the nanoseconds since processStart.
func monotonicNow() int64 { return int64(time.Since(processStart)) }

// elapsedSince returns the time from stamp, a monotonicNow value, to now.
func elapsedSince(now time.Time, stamp int64) time.Duration {
	return now.Sub(processStart) - time.Duration(stamp)
}
