package signalr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// closeWriteTimeout bounds the Close and WebSocket close frames that Close sends.
const closeWriteTimeout = time.Second

// errNoResult is the completion error for a server invocation that expects a result,
// which this client never provides.
const errNoResult = "Client did not provide a result."

var frameBuffers = sync.Pool{New: func() any {
	buf := make([]byte, 0, 512)
	return &buf
}}

func newClient(ws *websocket.Conn, connectionID string, opts Options) *Client {
	c := &Client{
		ws:           ws,
		opts:         opts,
		connectionID: connectionID,
		handlers:     make(map[string]Handler, len(opts.Handlers)),
		done:         make(chan struct{}),
		readerDone:   make(chan struct{}),
	}
	for method, h := range opts.Handlers {
		c.handlers[strings.ToLower(method)] = h
	}
	return c
}

// handshake sends the handshake request and reads the response. Records that arrive
// after the response in the same WebSocket message are kept for the reader goroutine.
func (c *Client) handshake(ctx context.Context) error {
	frame := AppendHandshakeRequest(nil, HandshakeRequest{Protocol: ProtocolJSON, Version: 1})
	if err := c.write(ctx, frame); err != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	deadline := time.Now().Add(c.opts.HandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.ws.SetReadDeadline(deadline)
	// Cancelling ctx moves the read deadline to the past, which unblocks the read.
	stop := context.AfterFunc(ctx, func() { _ = c.ws.SetReadDeadline(time.Unix(1, 0)) })
	err := c.readHandshakeResponse()
	if !stop() {
		return fmt.Errorf("%w: %w", ErrHandshake, ctx.Err())
	}
	return err
}

func (c *Client) readHandshakeResponse() error {
	received := false
	onRecord := func(record []byte) error {
		if received {
			c.leftover = append(c.leftover, bytes.Clone(record))
			return nil
		}
		resp, err := ParseHandshakeResponse(record)
		if err != nil {
			return err
		}
		if resp.Error != "" {
			return fmt.Errorf("%w: server returned error: %s", ErrHandshake, resp.Error)
		}
		received = true
		return nil
	}
	for !received {
		_, r, err := c.ws.NextReader()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrHandshake, err)
		}
		if err := ReadRecords(r, c.opts.MaxMessageSize, onRecord); err != nil {
			return fmt.Errorf("%w: %w", ErrHandshake, err)
		}
	}
	return nil
}

// start launches the reader goroutine and the keep-alive timer.
func (c *Client) start() {
	c.writeMu.Lock()
	c.keepAlive = time.AfterFunc(c.opts.KeepAliveInterval, c.keepAliveTick)
	c.writeMu.Unlock()
	go c.readLoop()
}

// keepAliveTick sends a Ping when nothing was written for KeepAliveInterval. It runs on
// a timer goroutine and does nothing once the client is closed.
func (c *Client) keepAliveTick() {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.closed {
		return
	}
	interval := c.opts.KeepAliveInterval
	idle := time.Since(time.Unix(0, c.lastWrite.Load()))
	if idle >= interval {
		ping := AppendMessage(nil, &Message{Type: TypePing})
		if err := c.writeLocked(context.Background(), ping); err != nil {
			return
		}
		idle = 0
	}
	c.keepAlive.Reset(interval - idle)
}

func (c *Client) readLoop() {
	defer close(c.readerDone)
	err := c.read()
	c.fail(err)
	c.writeMu.Lock()
	c.closed = true
	c.keepAlive.Stop()
	c.writeMu.Unlock()
	_ = c.ws.Close()
}

func (c *Client) read() error {
	for _, record := range c.leftover {
		if err := c.dispatch(record); err != nil {
			return err
		}
	}
	c.leftover = nil
	for {
		_ = c.ws.SetReadDeadline(time.Now().Add(c.opts.ServerTimeout))
		_, r, err := c.ws.NextReader()
		if err != nil {
			return err
		}
		if err := ReadRecords(r, c.opts.MaxMessageSize, c.dispatch); err != nil {
			return err
		}
	}
}

// dispatch handles one incoming record on the reader goroutine.
func (c *Client) dispatch(record []byte) error {
	m, err := ParseMessage(record)
	if err != nil {
		return err
	}
	switch m.Type {
	case TypeInvocation:
		c.handlersMu.RLock()
		h := c.handlers[strings.ToLower(m.Target)]
		c.handlersMu.RUnlock()
		if h != nil {
			h(m.Arguments)
		}
		if m.InvocationID != "" {
			reply := AppendMessage(nil, &Message{
				Type: TypeCompletion, InvocationID: m.InvocationID, Error: errNoResult,
			})
			return c.write(context.Background(), reply)
		}
	case TypeCompletion:
		c.pendingMu.Lock()
		ch := c.pending[m.InvocationID]
		delete(c.pending, m.InvocationID)
		c.pendingMu.Unlock()
		if ch != nil {
			ch <- m
		}
	case TypeClose:
		return &CloseError{Message: m.Error, AllowReconnect: m.AllowReconnect}
	}
	return nil
}

// fail records why the connection ended, once, and releases every waiter.
func (c *Client) fail(err error) {
	c.errOnce.Do(func() {
		c.err = err
		close(c.done)
	})
}

// On registers handler for the server-to-client method, compared case-insensitively.
// It replaces an earlier handler for the same method, and a nil handler removes it.
func (c *Client) On(method string, handler Handler) {
	c.handlersMu.Lock()
	defer c.handlersMu.Unlock()
	if handler == nil {
		delete(c.handlers, strings.ToLower(method))
		return
	}
	c.handlers[strings.ToLower(method)] = handler
}

// Invoke calls a hub method and waits for its completion. It returns the encoded result,
// which is nil for methods without one, or an *InvocationError with the server's error
// text. Each argument is encoded with encoding/json unless it is a json.RawMessage.
func (c *Client) Invoke(ctx context.Context, method string, args ...any) (json.RawMessage, error) {
	encoded, err := encodeArguments(args)
	if err != nil {
		return nil, err
	}
	id := strconv.FormatUint(c.nextID.Add(1), 10)
	ch := make(chan Message, 1)
	c.pendingMu.Lock()
	if c.pending == nil {
		c.pending = make(map[string]chan Message)
	}
	c.pending[id] = ch
	c.pendingMu.Unlock()
	defer func() {
		c.pendingMu.Lock()
		delete(c.pending, id)
		c.pendingMu.Unlock()
	}()

	msg := Message{Type: TypeInvocation, InvocationID: id, Target: method, Arguments: encoded}
	if err := c.writeMessage(ctx, &msg); err != nil {
		return nil, err
	}
	select {
	case m := <-ch:
		if m.Error != "" {
			return nil, &InvocationError{Method: method, Message: m.Error}
		}
		return m.Result, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, c.closedError()
	}
}

// Send calls a hub method without waiting for it: the server sends no completion.
// It returns once the invocation is written.
func (c *Client) Send(ctx context.Context, method string, args ...any) error {
	encoded, err := encodeArguments(args)
	if err != nil {
		return err
	}
	return c.writeMessage(ctx, &Message{Type: TypeInvocation, Target: method, Arguments: encoded})
}

func encodeArguments(args []any) ([]json.RawMessage, error) {
	encoded := make([]json.RawMessage, len(args))
	for i, arg := range args {
		if raw, ok := arg.(json.RawMessage); ok {
			encoded[i] = raw
			continue
		}
		b, err := json.Marshal(arg)
		if err != nil {
			return nil, fmt.Errorf("signalr: encoding argument %d: %w", i+1, err)
		}
		encoded[i] = b
	}
	return encoded, nil
}

func (c *Client) writeMessage(ctx context.Context, m *Message) error {
	bufp := frameBuffers.Get().(*[]byte)
	defer frameBuffers.Put(bufp)
	*bufp = AppendMessage((*bufp)[:0], m)
	return c.write(ctx, *bufp)
}

func (c *Client) write(ctx context.Context, frame []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.writeLocked(ctx, frame)
}

// writeLocked writes one WebSocket text message. A failed write closes the socket, which
// ends the reader goroutine.
func (c *Client) writeLocked(ctx context.Context, frame []byte) error {
	if c.closed {
		return c.closedError()
	}
	deadline := time.Now().Add(c.opts.ServerTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.ws.SetWriteDeadline(deadline)
	if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
		_ = c.ws.NetConn().Close()
		return fmt.Errorf("%w: write failed: %w", ErrClosed, err)
	}
	c.lastWrite.Store(time.Now().UnixNano())
	return nil
}

func (c *Client) closedError() error {
	select {
	case <-c.done:
		if errors.Is(c.err, ErrClosed) {
			return c.err
		}
		return fmt.Errorf("%w: %w", ErrClosed, c.err)
	default:
		return ErrClosed
	}
}

// ConnectionID returns the connection ID from negotiate, or "" when negotiation was
// skipped.
func (c *Client) ConnectionID() string { return c.connectionID }

// Done returns a channel that is closed when the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended: a *CloseError for a Close message from the
// server, ErrClosed after Close, or the read error. It returns nil while the connection
// is open.
func (c *Client) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Close sends a Close message and a WebSocket close frame, closes the socket and waits
// for the reader goroutine to exit. Calling it again does nothing.
func (c *Client) Close() error {
	c.fail(ErrClosed)
	c.writeMu.Lock()
	if !c.closed {
		c.closed = true
		if c.keepAlive != nil {
			c.keepAlive.Stop()
		}
		deadline := time.Now().Add(closeWriteTimeout)
		_ = c.ws.SetWriteDeadline(deadline)
		_ = c.ws.WriteMessage(websocket.TextMessage, AppendMessage(nil, &Message{Type: TypeClose}))
		closeFrame := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		_ = c.ws.WriteControl(websocket.CloseMessage, closeFrame, deadline)
	}
	c.writeMu.Unlock()
	// The reader goroutine may have closed the socket already, so the error is moot.
	_ = c.ws.Close()
	<-c.readerDone
	return nil
}
