package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/esh3artech/esh3artech/hub"
)

// Errors of the peer link.
var (
	// ErrPeerUnavailable is returned while a peer's circuit breaker is open
	// or the peer is not in the cluster.
	ErrPeerUnavailable = errors.New("router: peer unavailable")
	// ErrPushQueueFull is returned when a peer's outgoing push queue is
	// full; the messages stay in the inbox and are retried.
	ErrPushQueueFull = errors.New("router: push queue to peer full")
)

// pushQueueLen bounds the pushes waiting for one peer.
const pushQueueLen = 4096

// peerClient sends requests to the other nodes, with a circuit breaker and
// a batching push queue per peer.
type peerClient struct {
	placement Placement
	token     string
	http      *http.Client
	log       *zap.Logger
	stop      <-chan struct{}
	wg        *sync.WaitGroup
	onBreaker func(peer string, open bool)

	mu    sync.Mutex
	peers map[string]*peerState
}

type peerState struct {
	breaker *gobreaker.CircuitBreaker[[]byte]
	pushes  chan pushItem
}

func (pc *peerClient) peer(node string) *peerState {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if p := pc.peers[node]; p != nil {
		return p
	}
	p := &peerState{pushes: make(chan pushItem, pushQueueLen)}
	p.breaker = gobreaker.NewCircuitBreaker[[]byte](gobreaker.Settings{
		Name:        node,
		MaxRequests: 1,
		Timeout:     2 * time.Second,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 },
		IsSuccessful: func(err error) bool {
			var pe *peerError
			return err == nil || errors.As(err, &pe) // the peer responded
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			pc.log.Warn("peer circuit breaker changed state", zap.String("peer", name),
				zap.Stringer("from", from), zap.Stringer("to", to))
			if pc.onBreaker != nil {
				pc.onBreaker(name, to == gobreaker.StateOpen)
			}
		},
	})
	pc.peers[node] = p
	pc.wg.Add(1)
	go func() {
		defer pc.wg.Done()
		pc.runPushes(node, p)
	}()
	return p
}

// peerError is an error response from a peer.
type peerError struct {
	Status int
	Body   errorBody
}

func (e *peerError) Error() string {
	return fmt.Sprintf("router: peer responded %d: %s", e.Status, e.Body.Error)
}

// call sends one request to node through its circuit breaker and decodes
// the response into out (when out is not nil).
func (pc *peerClient) call(ctx context.Context, node, method, path string, in, out any) error {
	addr, ok := pc.placement.PeerAddr(node)
	if !ok {
		return fmt.Errorf("%w: %s is not a member", ErrPeerUnavailable, node)
	}
	p := pc.peer(node)
	body, err := p.breaker.Execute(func() ([]byte, error) {
		return pc.do(ctx, method, "http://"+addr+path, in)
	})
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return fmt.Errorf("%w: %s: %w", ErrPeerUnavailable, node, err)
	}
	if err != nil {
		return err
	}
	if out == nil || len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("router: decode response of %s %s: %w", node, path, err)
	}
	return nil
}

func (pc *peerClient) do(ctx context.Context, method, url string, in any) ([]byte, error) {
	var rd io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("router: encode peer request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, fmt.Errorf("router: peer request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(headerPeerNode, pc.placement.Self())
	req.Header.Set(headerPeerToken, pc.token)
	resp, err := pc.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("router: peer request %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("router: read peer response %s: %w", url, err)
	}
	if resp.StatusCode >= 300 {
		pe := &peerError{Status: resp.StatusCode}
		_ = json.Unmarshal(body, &pe.Body)
		return nil, pe
	}
	return body, nil
}

// push queues a send to a connection on node without blocking.
func (pc *peerClient) push(node string, it pushItem) error {
	p := pc.peer(node)
	if p.breaker.State() == gobreaker.StateOpen {
		return fmt.Errorf("%w: %s", ErrPeerUnavailable, node)
	}
	select {
	case p.pushes <- it:
		return nil
	default:
		return fmt.Errorf("%w: %s", ErrPushQueueFull, node)
	}
}

// runPushes sends queued pushes to node, as many per request as are
// waiting.
func (pc *peerClient) runPushes(node string, p *peerState) {
	for {
		var batch []pushItem
		select {
		case <-pc.stop:
			return
		case it := <-p.pushes:
			batch = append(batch, it)
		}
		for len(batch) < 512 {
			select {
			case it := <-p.pushes:
				batch = append(batch, it)
				continue
			default:
			}
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := pc.call(ctx, node, http.MethodPost, peerPathPush, pushBody{Items: batch}, nil)
		cancel()
		if err != nil {
			// The messages stay in their inbox; the retry schedule sends
			// them again.
			pc.log.Debug("push to peer failed", zap.String("peer", node),
				zap.Int("count", len(batch)), zap.Error(err))
		}
	}
}

// sendAck reports an acknowledgement to the owner and returns its result.
func (pc *peerClient) sendAck(ctx context.Context, node string, c hub.ConnInfo, id string,
	forwarded bool) error {
	err := pc.call(ctx, node, http.MethodPost, peerPathAck,
		connBody{User: c.User, ConnID: c.ID, MessageID: id, Forwarded: forwarded}, nil)
	var pe *peerError
	if errors.As(err, &pe) && pe.Body.ClientVisible {
		return &hub.ClientError{Message: pe.Body.Error}
	}
	return err
}
