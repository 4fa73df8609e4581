package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/esh3artech/esh3artech/hub/signalr"
)

// Mobile user settings.
const (
	// phoneClaim is the JWT claim that carries a mobile user's phone number,
	// as the node's default auth.jwt.phone_claim names it.
	phoneClaim = "phone_number"
	// tokenTTL is how long a mobile user's token is valid.
	tokenTTL = 24 * time.Hour
	// hubDialParallelism bounds concurrent hub connection attempts.
	hubDialParallelism = 64
	// hubDialTimeout bounds one connection attempt, negotiate included.
	hubDialTimeout = 15 * time.Second
	// ackTimeout bounds one AcknowledgeMessage call.
	ackTimeout = 10 * time.Second
	// maxReconnects bounds how often a user reconnects after its
	// connection dropped.
	maxReconnects = 3
)

// fleet is the set of mobile users. Each connected user owns one goroutine
// that acknowledges every message the user receives.
type fleet struct {
	hubURL string
	secret []byte
	plan   *messagePlan
	track  *deliveries
	http   *http.Client
	dials  chan struct{} // semaphore of hubDialParallelism slots

	connected     atomic.Int64 // users whose first connection succeeded
	failed        atomic.Int64 // users whose first connection failed
	dropped       atomic.Int64 // connections that ended before the bench closed them
	reconnectFail atomic.Int64 // reconnections that failed

	errMu    sync.Mutex
	firstErr error

	wg sync.WaitGroup
}

func newFleet(hubURL string, secret []byte, plan *messagePlan, track *deliveries) *fleet {
	return &fleet{
		hubURL: hubURL, secret: secret, plan: plan, track: track,
		http:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: hubDialParallelism}},
		dials: make(chan struct{}, hubDialParallelism),
	}
}

// connect connects the given users and returns once each of them connected
// or failed to. The users stay connected until ctx is cancelled, and wait
// returns after they closed their connections.
func (f *fleet) connect(ctx context.Context, users []int) {
	var attempts sync.WaitGroup
	for _, i := range users {
		attempts.Add(1)
		f.wg.Add(1)
		u := &mobileUser{fleet: f, index: i, phone: f.plan.phones[i], wake: make(chan struct{}, 1)}
		go func() {
			defer f.wg.Done()
			u.run(ctx, attempts.Done)
		}()
	}
	attempts.Wait()
}

// wait returns once every user goroutine has stopped.
func (f *fleet) wait() {
	f.wg.Wait()
	f.http.CloseIdleConnections()
}

func (f *fleet) noteError(err error) {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	if f.firstErr == nil {
		f.firstErr = err
	}
}

func (f *fleet) firstError() string {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	if f.firstErr == nil {
		return ""
	}
	return f.firstErr.Error()
}

// token returns an HS256 JWT for the user with the given phone number.
func (f *fleet) token(phone string) (string, error) {
	now := time.Now()
	claims := jwt.MapClaims{
		phoneClaim: phone, "sub": phone, "iat": now.Unix(), "exp": now.Add(tokenTTL).Unix(),
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(f.secret)
	if err != nil {
		return "", fmt.Errorf("sign token of %s: %w", phone, err)
	}
	return tok, nil
}

// mobileUser is one app: a hub connection and the ids it still has to
// acknowledge.
type mobileUser struct {
	fleet *fleet
	index int
	phone string

	mu      sync.Mutex
	pending []ackItem     // messages to acknowledge
	wake    chan struct{} // signalled when pending grows
}

// run connects the user, calls attempted after the first connection attempt,
// and then acknowledges messages until ctx is cancelled. A dropped
// connection is opened again up to maxReconnects times.
func (u *mobileUser) run(ctx context.Context, attempted func()) {
	f := u.fleet
	c, err := u.dial(ctx)
	attempted()
	if err != nil {
		f.failed.Add(1)
		f.noteError(err)
		return
	}
	f.connected.Add(1)
	for reconnects := 0; ; reconnects++ {
		u.serve(ctx, c)
		if ctx.Err() != nil {
			return
		}
		f.dropped.Add(1)
		f.noteError(fmt.Errorf("user %s: connection dropped: %w", u.phone, c.Err()))
		if reconnects == maxReconnects {
			return
		}
		if c, err = u.dial(ctx); err != nil {
			f.reconnectFail.Add(1)
			f.noteError(err)
			return
		}
	}
}

func (u *mobileUser) dial(ctx context.Context) (*signalr.Client, error) {
	f := u.fleet
	select {
	case f.dials <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-f.dials }()
	tok, err := f.token(u.phone)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, hubDialTimeout)
	defer cancel()
	c, err := signalr.Dial(dctx, f.hubURL, signalr.Options{
		AccessToken: tok,
		HTTPClient:  f.http,
		Handlers: map[string]signalr.Handler{
			"ReceiveMessage":         u.onMessage,
			"ReceivePendingMessages": u.onPending,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("user %s: connect to %s: %w", u.phone, f.hubURL, err)
	}
	return c, nil
}

// serve acknowledges messages until ctx is cancelled, when it closes c, or
// until c ends.
func (u *mobileUser) serve(ctx context.Context, c *signalr.Client) {
	for {
		select {
		case <-ctx.Done():
			_ = c.Close()
			return
		case <-c.Done():
			return
		case <-u.wake:
			u.acknowledge(ctx, c)
		}
	}
}

// acknowledge calls AcknowledgeMessage for every pending id, one at a time
// as an app does.
func (u *mobileUser) acknowledge(ctx context.Context, c *signalr.Client) {
	for _, item := range u.takePending() {
		actx, cancel := context.WithTimeout(ctx, ackTimeout)
		_, err := c.Invoke(actx, "AcknowledgeMessage", item.id)
		cancel()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, signalr.ErrClosed) {
				u.fleet.track.ackErrors.Add(1)
				u.fleet.noteError(fmt.Errorf("user %s: acknowledge %s: %w", u.phone, item.id, err))
			}
			continue
		}
		if item.ours {
			u.fleet.track.ackDone(item.seq)
		}
	}
}

// ackItem is a received message that awaits its acknowledgement.
type ackItem struct {
	id   string
	seq  int64
	ours bool // sent by this run, so seq is valid
}

func (u *mobileUser) takePending() []ackItem {
	u.mu.Lock()
	defer u.mu.Unlock()
	ids := u.pending
	u.pending = nil
	return ids
}

// onMessage handles ReceiveMessage, whose argument is one message. It runs
// on the connection's reader goroutine, so it only records and queues.
func (u *mobileUser) onMessage(args []json.RawMessage) {
	var m mobileMessage
	if len(args) == 0 || decodeArgument(args[0], &m) != nil {
		u.fleet.track.badPayloads.Add(1)
		return
	}
	u.received([]mobileMessage{m})
}

// onPending handles ReceivePendingMessages, whose argument is the user's
// backlog as an array of messages.
func (u *mobileUser) onPending(args []json.RawMessage) {
	var ms []mobileMessage
	if len(args) == 0 || decodeArgument(args[0], &ms) != nil {
		u.fleet.track.badPayloads.Add(1)
		return
	}
	u.received(ms)
}

func (u *mobileUser) received(ms []mobileMessage) {
	now := time.Now()
	u.mu.Lock()
	for _, m := range ms {
		seq, ours := u.fleet.track.receive(u.index, m, now)
		u.pending = append(u.pending, ackItem{id: m.ID, seq: seq, ours: ours})
	}
	u.mu.Unlock()
	select {
	case u.wake <- struct{}{}:
	default:
	}
}
