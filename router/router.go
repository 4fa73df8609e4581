package router

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/esh3artech/esh3artech/hub"
	"github.com/esh3artech/esh3artech/storage"
)

// Pusher sends to the hub's connections. *hub.Hub implements it. Sends
// must not block.
type Pusher interface {
	Connections(user string) []hub.ConnInfo
	SendMessage(connID string, m hub.MobileMessage) error
	SendPending(connID string, ms []hub.MobileMessage) error
}

// Router delivers accepted messages. It implements hub.Events.
type Router struct {
	cfg     Config
	store   *storage.Store
	hub     Pusher
	log     *zap.Logger
	acked   *suppressor
	breaker *gobreaker.CircuitBreaker[struct{}]

	wakeProcessor chan struct{} // one slot: the queue has new entries
	wakeScheduler chan struct{} // one slot: the retry schedule changed
	acks          chan *ackRequest

	backlogs  backlogSet
	placement Placement
	peers     *peerClient
	peerToken string
	remote    remoteConns
	edge      edgeConns

	wakeRebalance chan struct{} // one slot: the ring changed

	ringMu    sync.Mutex
	ringNodes []string // members of the last ring RingChanged saw; guarded by ringMu

	nextDue atomic.Int64 // unix nanos the scheduler sleeps until

	// When the processor scans the whole queue; see drainQueue.
	// lastFullScan is used by the processor goroutine only.
	rescan       atomic.Bool
	lastFullScan time.Time

	stop     chan struct{}
	wg       sync.WaitGroup
	start    sync.Once
	shutdown sync.Once
}

var _ hub.Events = (*Router)(nil)

// New returns a Router over store. Call Start to run it.
func New(cfg Config, store *storage.Store) *Router {
	cfg = cfg.withDefaults()
	r := &Router{
		cfg: cfg, store: store, log: cfg.Logger,
		acked:         newSuppressor(30 * time.Second),
		wakeProcessor: make(chan struct{}, 1),
		wakeScheduler: make(chan struct{}, 1),
		acks:          make(chan *ackRequest, 4*cfg.AckBatch),
		wakeRebalance: make(chan struct{}, 1),
		stop:          make(chan struct{}),
		placement:     cfg.Placement,
	}
	if len(cfg.PeerSecret) > 0 {
		r.peerToken = PeerToken(cfg.PeerSecret)
	}
	r.peers = &peerClient{
		placement: cfg.Placement, token: r.peerToken, log: cfg.Logger, stop: r.stop, wg: &r.wg,
		http:  &http.Client{Timeout: cfg.PeerTimeout, Transport: peerTransport()},
		peers: map[string]*peerState{},
	}
	r.edge.conns = map[string]*edgeConn{}
	r.backlogs.byUser = map[string][]*backlog{}
	r.breaker = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:    "hub",
		Timeout: cfg.RetryBase,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= 20
		},
		IsSuccessful: func(err error) bool {
			// Peers have breakers of their own; a gone connection is normal.
			return err == nil || errors.Is(err, hub.ErrConnNotFound) ||
				errors.Is(err, ErrPeerUnavailable) || errors.Is(err, ErrPushQueueFull)
		},
		OnStateChange: func(name string, from, to gobreaker.State) {
			r.log.Warn("circuit breaker changed state", zap.String("peer", name),
				zap.Stringer("from", from), zap.Stringer("to", to))
		},
	})
	return r
}

// Start runs the processor, the retry scheduler and the acknowledgement
// writer, sending through p. The processor first drains whatever the queue
// held at startup. Later calls do nothing.
func (r *Router) Start(p Pusher) {
	r.start.Do(func() {
		r.hub = p
		r.goLoop(r.runProcessor)
		r.goLoop(r.runScheduler)
		r.goLoop(r.runAckWriter)
		r.goLoop(r.runRebalancer)
		if _, ok := r.placement.(standalone); !ok {
			r.goLoop(r.runAttachRefresh)
		}
		r.Notify()
		signal(r.wakeRebalance)
	})
}

func (r *Router) goLoop(f func()) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
}

// Notify wakes the processor because the queue has new entries. It never
// blocks.
func (r *Router) Notify() { signal(r.wakeProcessor) }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Shutdown stops the router's loops and waits for them, or for ctx. It is
// safe to call more than once. Work in progress is not lost: whatever was
// not written stays in the store and resumes on the next Start.
func (r *Router) Shutdown(ctx context.Context) error {
	r.shutdown.Do(func() { close(r.stop) })
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("router: shutdown: %w", ctx.Err())
	}
}

// sleep waits for d, a wake signal or the stop signal, and reports whether
// the router is still running.
func (r *Router) sleep(d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.stop:
		return false
	case <-wake:
		return true
	case <-t.C:
		return true
	}
}

// stopped reports whether Shutdown was called.
func (r *Router) stopped() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// requeueLocal puts a dead-lettered message of this node's store back into
// the queue with its attempts reset, and wakes the processor.
func (r *Router) requeueLocal(ctx context.Context, id storage.ID) (*storage.Message, error) {
	m, err := r.store.Requeue(ctx, id)
	if err != nil {
		return nil, err
	}
	r.log.Info("message requeued", zap.Stringer("msg_id", id))
	r.rescan.Store(true)
	r.Notify()
	return m, nil
}

// BreakerOpen reports whether the local delivery circuit breaker is open.
func (r *Router) BreakerOpen() bool { return r.breaker.State() == gobreaker.StateOpen }

// peerTransport keeps a few idle connections per peer for the batches of
// the peer link.
func peerTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 16
	return t
}

// owns reports whether this node owns phone.
func (r *Router) owns(phone string) bool {
	_, local := r.placement.Owner(phone)
	return local
}
