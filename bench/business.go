package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// maxAnswerBytes bounds the answer body that a business client reads.
const maxAnswerBytes = 64 << 10

// dialParallelism bounds concurrent connection attempts, so that the
// listener's accept backlog does not overflow while thousands of clients
// connect.
const dialParallelism = 128

// businessClient is one business client: a keep-alive HTTP/1.1 connection
// that posts one message per request to /api/v1/messages. It writes the
// requests itself and parses the answers with net/http, so that the bench
// spends little CPU per request on a machine it shares with the node.
type businessClient struct {
	target  *target
	local   *net.TCPAddr // source address, nil for the system's choice
	msgs    *messagePlan
	conn    net.Conn
	reader  *bufio.Reader
	writer  *bufio.Writer
	prefix  []byte // request line and fixed headers
	body    []byte
	request []byte
	timeout time.Duration
}

func newBusinessClient(t *target, local *net.TCPAddr, msgs *messagePlan, timeout time.Duration) *businessClient {
	prefix := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
		"X-Api-Key: %s\r\nContent-Length: ", t.path("/api/v1/messages"), t.host, t.apiKey)
	return &businessClient{target: t, local: local, msgs: msgs, prefix: prefix, timeout: timeout}
}

// connect opens the client's connection unless it is open.
func (c *businessClient) connect(ctx context.Context) error {
	if c.conn != nil {
		return nil
	}
	var d net.Dialer
	if c.local != nil {
		// Assigned only when set: a nil *net.TCPAddr in the interface is not nil.
		d.LocalAddr = c.local
	}
	conn, err := d.DialContext(ctx, "tcp", c.target.addr)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", c.target.addr, err)
	}
	c.conn = conn
	c.reader = bufio.NewReaderSize(conn, 4096)
	c.writer = bufio.NewWriterSize(conn, 4096)
	return nil
}

func (c *businessClient) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}

// send posts message seq and classifies the answer. A failed connection is
// closed and opened again by the next send.
func (c *businessClient) send(ctx context.Context, seq int64) outcome {
	if err := c.connect(ctx); err != nil {
		return outcome{kind: outcomeConnection}
	}
	c.body = c.msgs.appendBody(c.body[:0], seq)
	c.request = append(append(c.request[:0], c.prefix...), strconv.Itoa(len(c.body))...)
	c.request = append(append(c.request, "\r\n\r\n"...), c.body...)
	status, body, err := c.roundTrip(ctx)
	if err != nil {
		c.close()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return outcome{kind: outcomeTimeout}
		}
		return outcome{kind: outcomeConnection}
	}
	return classifyAnswer(status, body)
}

func (c *businessClient) roundTrip(ctx context.Context) (int, []byte, error) {
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		return 0, nil, err
	}
	if _, err := c.writer.Write(c.request); err != nil {
		return 0, nil, err
	}
	if err := c.writer.Flush(); err != nil {
		return 0, nil, err
	}
	resp, err := http.ReadResponse(c.reader, nil)
	if err != nil {
		return 0, nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	_ = resp.Body.Close()
	if err != nil {
		return 0, nil, err
	}
	if resp.Close {
		c.close()
	}
	return resp.StatusCode, body, nil
}

// classifyAnswer turns an HTTP answer to a send into an outcome.
func classifyAnswer(status int, body []byte) outcome {
	switch status {
	case http.StatusAccepted:
		var answer struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(body, &answer) != nil {
			return outcome{kind: outcomeBadAnswer, status: status}
		}
		id, err := uuid.Parse(answer.ID)
		if err != nil {
			return outcome{kind: outcomeBadAnswer, status: status}
		}
		return outcome{kind: outcomeAccepted, status: status, id: id}
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return outcome{kind: outcomeRefused, status: status}
	}
	return outcome{kind: outcomeStatus, status: status}
}

// dialClients creates n business clients spread over the source addresses
// and opens their connections before the load starts, so that connecting is
// not measured.
func dialClients(ctx context.Context, n int, t *target, sources []*net.TCPAddr,
	msgs *messagePlan, timeout time.Duration) ([]*businessClient, error) {
	clients := make([]*businessClient, n)
	for i := range clients {
		var local *net.TCPAddr
		if len(sources) > 0 {
			local = sources[i%len(sources)]
		}
		clients[i] = newBusinessClient(t, local, msgs, timeout)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(dialParallelism)
	for _, c := range clients {
		g.Go(func() error { return c.connect(gctx) })
	}
	if err := g.Wait(); err != nil {
		closeClients(clients)
		return nil, fmt.Errorf("open %d business connections: %w", n, err)
	}
	return clients, nil
}

func closeClients(clients []*businessClient) {
	for _, c := range clients {
		c.close()
	}
}
