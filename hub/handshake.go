package hub

import (
	"fmt"

	"github.com/esh3artech/esh3artech/hub/signalr"
	"go.uber.org/zap"
)

// handleHandshake processes the first record of a connection. A failed handshake queues
// an error response, after which the transport ends.
func (c *conn) handleHandshake(record []byte) error {
	req, err := signalr.ParseHandshakeRequest(record)
	var errText string
	switch {
	case err != nil:
		errText = "Handshake request is invalid."
	case req.Protocol != signalr.ProtocolJSON:
		errText = fmt.Sprintf("Requested protocol '%s' is not available.", req.Protocol)
	case req.Version < minProtocolVersion || req.Version > maxProtocolVersion:
		errText = fmt.Sprintf("The server does not support version %d of the '%s' protocol.",
			req.Version, req.Protocol)
	}
	if errText != "" {
		c.hub.log.Warn("handshake failed", zap.String("conn_id", c.info.ID),
			zap.String("phone", c.info.User), zap.String("reason", errText))
		c.mu.Lock()
		c.failHandshakeLocked(errText)
		c.mu.Unlock()
		return errStopReading
	}
	return c.completeHandshake(req.Version)
}

// completeHandshake queues the success response to a valid handshake, indexes the
// connection and reports it to Events.Connected. Messages sent from Connected follow
// the handshake response.
func (c *conn) completeHandshake(version int) error {
	c.mu.Lock()
	if c.state != stateHandshake {
		c.mu.Unlock()
		return errStopReading
	}
	c.protocolVersion = version
	c.stateful = c.wantStateful && version >= 2 && c.info.Transport == TransportWebSockets
	if c.stateful {
		c.replay = newReplayBuffer(c.hub.cfg.ReconnectBufferSize)
	}
	c.setStateLocked(stateConnected)
	c.events = eventsConnecting
	c.outbox = append(c.outbox, signalr.AppendHandshakeResponse(nil, ""))
	c.transport.wake()
	c.mu.Unlock()

	c.hub.reg.addLive(c)
	c.hub.log.Info("connection opened", zap.String("conn_id", c.info.ID),
		zap.String("phone", c.info.User), zap.String("transport", c.info.Transport),
		zap.Int("protocol_version", version), zap.Bool("stateful", c.stateful))
	c.hub.cfg.Events.Connected(c.ctx, c.info)

	c.mu.Lock()
	closed := c.state == stateClosed
	c.events = eventsConnected
	if closed {
		c.events = eventsDone
	}
	c.mu.Unlock()
	if closed {
		// finish ran while Connected did and left the Disconnected report to this
		// goroutine. It may also have run before addLive, so remove again.
		c.hub.reg.remove(c)
		c.hub.reportDisconnected(c)
		return errStopReading
	}
	return nil
}
