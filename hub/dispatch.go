package hub

import (
	"errors"
	"fmt"
	"io"

	"github.com/esh3artech/esh3artech/hub/signalr"
	"go.uber.org/zap"
)

var (
	// errProtocol marks a client message that breaks the hub protocol.
	errProtocol = errors.New("hub: protocol error")
	// errStopReading makes a transport stop processing client data because the
	// connection is closing.
	errStopReading = errors.New("hub: connection is closing, stop reading")
)

// Protocol versions of the JSON hub protocol that the hub accepts. Version 2 adds the
// Ack and Sequence messages of stateful reconnect.
const (
	minProtocolVersion = 1
	maxProtocolVersion = 2
)

// receive processes the records of one incoming transport message: a WebSocket message
// or a POST body. It returns errStopReading when the connection is closing, and the
// reader's error when reading failed.
func (c *conn) receive(r io.Reader) error {
	c.markActive()
	err := signalr.ReadRecords(r, c.hub.cfg.MaxMessageSize, c.handleRecord)
	c.sendAckIfDue()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errStopReading):
		return errStopReading
	case isProtocolError(err):
		c.failProtocol(err)
		return errStopReading
	}
	return err
}

func isProtocolError(err error) bool {
	return errors.Is(err, errProtocol) ||
		errors.Is(err, signalr.ErrInvalidMessage) ||
		errors.Is(err, signalr.ErrMessageTooLarge) ||
		errors.Is(err, signalr.ErrIncompleteRecord)
}

// failProtocol closes the connection after a protocol error, telling the client why. A
// connection still in its handshake gets a failed handshake response.
func (c *conn) failProtocol(err error) {
	c.hub.log.Warn("closing connection after protocol error",
		zap.String("conn_id", c.info.ID), zap.String("phone", c.info.User), zap.Error(err))
	text := "Connection closed with an error: invalid message."
	if errors.Is(err, signalr.ErrMessageTooLarge) {
		text = fmt.Sprintf("Connection closed with an error: a message exceeds the "+
			"maximum size of %d bytes.", c.hub.cfg.MaxMessageSize)
	}
	c.mu.Lock()
	if c.state == stateHandshake {
		c.failHandshakeLocked("Handshake request is invalid.")
		c.mu.Unlock()
		return
	}
	finishNow := c.closeLocked(text, false)
	c.mu.Unlock()
	if finishNow {
		c.finish()
	}
}

// handleRecord processes one incoming record: the handshake request first, then hub
// messages.
func (c *conn) handleRecord(record []byte) error {
	if c.protocolVersion == 0 {
		return c.handleHandshake(record)
	}
	m, err := signalr.ParseMessage(record)
	if err != nil {
		return err
	}
	if c.stateful && m.Type.Trackable() && !c.inbound.accept() {
		c.hub.log.Debug("dropped duplicate message after reconnect",
			zap.String("conn_id", c.info.ID), zap.Stringer("type", m.Type))
		return nil
	}
	return c.handleMessage(&m)
}

func (c *conn) handleMessage(m *signalr.Message) error {
	switch m.Type {
	case signalr.TypeInvocation:
		c.invoke(m)
	case signalr.TypeStreamInvocation:
		c.complete(m.InvocationID, streamInvocationError(m.Target))
	case signalr.TypeStreamItem, signalr.TypeCompletion, signalr.TypeCancelInvocation:
		// No hub method takes a client stream or streams results, and invocations run
		// to completion before the next message is read, so these refer to nothing.
		c.hub.log.Debug("ignored message for unknown invocation or stream",
			zap.String("conn_id", c.info.ID), zap.Stringer("type", m.Type))
	case signalr.TypeClose:
		c.hub.log.Debug("client sent close", zap.String("conn_id", c.info.ID))
		c.finish()
		return errStopReading
	case signalr.TypeAck:
		if c.stateful {
			c.mu.Lock()
			if c.replay != nil {
				c.replay.ack(m.SequenceID)
			}
			c.mu.Unlock()
		}
	case signalr.TypeSequence:
		if c.stateful {
			return c.inbound.reset(m.SequenceID)
		}
	}
	// Ping needs nothing beyond the activity receive recorded, and unknown message
	// types are ignored as the protocol specification allows.
	return nil
}

// sendAckIfDue acknowledges the trackable messages processed so far on a stateful
// connection.
func (c *conn) sendAckIfDue() {
	if !c.stateful || !c.inbound.ackDue {
		return
	}
	c.inbound.ackDue = false
	frame := signalr.AppendMessage(nil, &signalr.Message{
		Type: signalr.TypeAck, SequenceID: c.inbound.latest,
	})
	// A full queue closes the connection, which makes the Ack moot.
	_ = c.enqueue(frame, false)
}

// complete sends the Completion of a blocking invocation. Non-blocking invocations,
// which have no invocation ID, get none.
func (c *conn) complete(invocationID, errText string) {
	if invocationID == "" {
		return
	}
	frame := signalr.AppendMessage(nil, &signalr.Message{
		Type: signalr.TypeCompletion, InvocationID: invocationID, Error: errText,
	})
	// A failed enqueue means the connection is closing, which makes the completion moot.
	_ = c.enqueue(frame, true)
}
