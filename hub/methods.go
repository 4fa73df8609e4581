package hub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/esh3artech/esh3artech/hub/signalr"
	"go.uber.org/zap"
)

// Names of the client methods the hub invokes.
const (
	methodReceiveMessage         = "ReceiveMessage"
	methodReceivePendingMessages = "ReceivePendingMessages"
)

// hubMethod is a method that clients can invoke.
type hubMethod struct {
	name  string
	arity int
	// call runs the method with exactly arity arguments and returns the completion
	// error text, empty on success.
	call func(c *conn, args []json.RawMessage) string
}

// hubMethods maps lower-cased method names to methods, so that names match
// case-insensitively as they do on ASP.NET Core.
var hubMethods = map[string]*hubMethod{
	"acknowledgemessage": {name: "AcknowledgeMessage", arity: 1, call: acknowledgeMessage},
}

func lookupMethod(target string) *hubMethod {
	return hubMethods[strings.ToLower(target)]
}

// invoke runs an Invocation on the calling goroutine, so one connection runs one hub
// method at a time, and sends its completion. Binding errors become completion errors
// and never close the connection.
func (c *conn) invoke(m *signalr.Message) {
	method := lookupMethod(m.Target)
	var errText string
	switch {
	case method == nil:
		errText = fmt.Sprintf("Unknown hub method '%s'.", m.Target)
	case len(m.StreamIDs) > 0:
		errText = fmt.Sprintf("Hub method '%s' takes no streams, but the client sent %d.",
			method.name, len(m.StreamIDs))
	case len(m.Arguments) != method.arity:
		errText = fmt.Sprintf("Invocation provides %d argument(s) but hub method '%s' "+
			"expects %d.", len(m.Arguments), method.name, method.arity)
	default:
		errText = method.call(c, m.Arguments)
	}
	if errText != "" {
		c.hub.log.Debug("invocation failed", zap.String("conn_id", c.info.ID),
			zap.String("method", m.Target), zap.String("reason", errText))
	}
	c.complete(m.InvocationID, errText)
}

// streamInvocationError returns the completion error of a StreamInvocation: no hub
// method streams results.
func streamInvocationError(target string) string {
	method := lookupMethod(target)
	if method == nil {
		return fmt.Sprintf("Unknown hub method '%s'.", target)
	}
	return fmt.Sprintf("Hub method '%s' is not a streaming method.", method.name)
}

// acknowledgeMessage implements AcknowledgeMessage(id string) by calling
// Events.Acknowledge, which blocks until the ack is durable.
func acknowledgeMessage(c *conn, args []json.RawMessage) string {
	var id string
	if bytes.Equal(bytes.TrimSpace(args[0]), []byte("null")) || json.Unmarshal(args[0], &id) != nil {
		return "Failed to invoke 'AcknowledgeMessage': argument 1 must be a string."
	}
	c.invoking.Store(true)
	err := c.hub.cfg.Events.Acknowledge(c.ctx, c.info, id)
	c.invoking.Store(false)
	// The client could not send while the method ran, so its timeout restarts now.
	c.markActive()
	if err == nil {
		c.hub.log.Debug("message acknowledged", zap.String("conn_id", c.info.ID),
			zap.String("msg_id", id))
		return ""
	}
	return c.hub.clientErrorText(c, id, err)
}

// genericAckError is the completion error for failures whose text is not meant for
// clients.
const genericAckError = "AcknowledgeMessage failed because of a server error."

// clientErrorText returns the completion error text for err, a failed Acknowledge.
func (h *Hub) clientErrorText(c *conn, msgID string, err error) string {
	var clientErr *ClientError
	if errors.As(err, &clientErr) {
		return clientErr.Message
	}
	if errors.Is(err, ErrClientVisible) {
		return strings.TrimPrefix(err.Error(), ErrClientVisible.Error()+": ")
	}
	if c.ctx.Err() == nil {
		h.log.Error("acknowledge failed", zap.String("conn_id", c.info.ID),
			zap.String("phone", c.info.User), zap.String("msg_id", msgID), zap.Error(err))
	}
	return genericAckError
}
