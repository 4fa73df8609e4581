package hub

import (
	"time"

	"github.com/esh3artech/esh3artech/hub/signalr"
	"go.uber.org/zap"
)

// pingFrame is the encoded Ping message.
var pingFrame = signalr.AppendMessage(nil, &signalr.Message{Type: signalr.TypePing})

// clientTimeoutText is the Close error sent to a client that stayed silent too long.
const clientTimeoutText = "Client timeout elapsed without a message from the client."

// tick enforces the timeouts of c and sends a keep-alive Ping when due. The heartbeat
// goroutine calls it every tick interval.
func (c *conn) tick(now time.Time) {
	cfg := &c.hub.cfg
	c.mu.Lock()
	finishNow := false
	elapsed := now.Sub(c.since)
	switch c.state {
	case stateNegotiated:
		finishNow = elapsed >= cfg.NegotiateTimeout
	case stateHandshake:
		if lp, ok := c.transport.(*pollTransport); ok && lp.idleLocked(now, cfg.ClientTimeout) {
			finishNow = true
			break
		}
		finishNow = elapsed >= cfg.HandshakeTimeout
		if finishNow {
			c.hub.log.Warn("handshake timed out", zap.String("conn_id", c.info.ID),
				zap.String("phone", c.info.User))
		}
	case stateConnected:
		finishNow = c.checkClientLocked(now)
	case stateDetached:
		finishNow = elapsed >= cfg.ReconnectWindow
	case stateClosing:
		finishNow = elapsed >= cfg.WriteTimeout
	}
	c.mu.Unlock()
	if finishNow {
		c.finish()
	}
}

// checkClientLocked applies the client timeout and keep-alive to a connected
// connection. It returns true when the caller must call finish.
func (c *conn) checkClientLocked(now time.Time) bool {
	cfg := &c.hub.cfg
	if lp, ok := c.transport.(*pollTransport); ok {
		// Long polling keeps itself alive with polls and has no pings.
		if lp.idleLocked(now, cfg.ClientTimeout) {
			c.hub.log.Info("long polling client stopped polling",
				zap.String("conn_id", c.info.ID), zap.String("phone", c.info.User))
			return true
		}
		return false
	}
	silent := elapsedSince(now, c.lastRead.Load())
	if silent >= cfg.ClientTimeout && !c.invoking.Load() {
		c.hub.log.Warn("client timed out", zap.String("conn_id", c.info.ID),
			zap.String("phone", c.info.User), zap.Duration("silent", silent))
		if c.replay != nil {
			// A silent stateful client may be behind a dead network path: drop the
			// transport and let the client resume within ReconnectWindow.
			c.transport.abort()
			return false
		}
		c.outbox = c.outbox[:0]
		return c.closeLocked(clientTimeoutText, true)
	}
	idle := elapsedSince(now, c.lastWrite.Load())
	if idle >= cfg.KeepAliveInterval && len(c.outbox) == 0 {
		c.outbox = append(c.outbox, pingFrame)
		c.transport.wake()
	}
	return false
}
