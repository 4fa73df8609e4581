package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/esh3artech/esh3artech/hub/signalr"
)

// idleCloseParallelism bounds concurrent closes of idle connections.
const idleCloseParallelism = 64

// idleClient is one idle app: a SignalR connection that sends nothing but
// its own pings, and the byte counts of its socket.
type idleClient struct {
	client  *signalr.Client
	read    atomic.Int64 // bytes read from the socket, the WebSocket upgrade included
	written atomic.Int64 // bytes written to the socket, the WebSocket upgrade included
}

// countingConn is a net.Conn that adds the bytes it reads and writes to
// two counters.
type countingConn struct {
	net.Conn
	read, written *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

// idleFleet opens idle connections to the hub and keeps them until close.
type idleFleet struct {
	hubURL    string
	signer    *fleet // signs the tokens; only its secret is set
	phones    []string
	sources   []*net.TCPAddr // nil: the system chooses the source address
	keepAlive time.Duration
	http      *http.Client
	writePool *sync.Pool // shared WebSocket write buffers, as the signalr default dialer has

	clients []*idleClient // nil where the connection failed
	failed  atomic.Int64

	errMu    sync.Mutex
	firstErr error
}

func newIdleFleet(hubURL string, secret []byte, n int, sources []*net.TCPAddr,
	keepAlive time.Duration) (*idleFleet, error) {
	phones, err := idlePhones(n)
	if err != nil {
		return nil, err
	}
	return &idleFleet{
		hubURL: hubURL, signer: &fleet{secret: secret}, phones: phones, sources: sources,
		keepAlive: keepAlive,
		http:      &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: hubDialParallelism}},
		writePool: &sync.Pool{},
		clients:   make([]*idleClient, n),
	}, nil
}

// idlePhones returns n consecutive phone numbers from a random start in
// the number space, so that runs against one node seldom share users.
func idlePhones(n int) ([]string, error) {
	if n > phoneNumberSpace {
		return nil, fmt.Errorf("%d connections need more phone numbers than the %d available", n, phoneNumberSpace)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("draw the first phone number: %w", err)
	}
	first := int(binary.LittleEndian.Uint64(b[:]) % uint64(phoneNumberSpace-n+1))
	phones := make([]string, n)
	for i := range phones {
		phones[i] = fmt.Sprintf("%s%07d", phonePrefix, first+i)
	}
	return phones, nil
}

// connect opens every connection, hubDialParallelism at a time, and
// returns once each of them completed its handshake or failed. It then
// closes the idle negotiate connections, so that the node keeps only the
// WebSockets open.
func (f *idleFleet) connect(ctx context.Context) {
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range hubDialParallelism {
		wg.Go(func() {
			for i := range jobs {
				c, err := f.dial(ctx, i)
				if err != nil {
					f.failed.Add(1)
					f.noteError(err)
					continue
				}
				f.clients[i] = c
			}
		})
	}
	for i := range f.clients {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	f.http.CloseIdleConnections()
}

// dial opens connection i: negotiate, the WebSocket upgrade and the
// SignalR handshake.
func (f *idleFleet) dial(ctx context.Context, i int) (*idleClient, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	phone := f.phones[i]
	tok, err := f.signer.token(phone)
	if err != nil {
		return nil, err
	}

	ic := &idleClient{}
	var local *net.TCPAddr
	if len(f.sources) > 0 {
		local = f.sources[i%len(f.sources)]
	}
	dialer := &websocket.Dialer{
		HandshakeTimeout: hubDialTimeout,
		ReadBufferSize:   1024,
		WriteBufferSize:  4096,
		WriteBufferPool:  f.writePool,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			if local != nil {
				// Assigned only when set: a nil *net.TCPAddr in the interface is not nil.
				d.LocalAddr = local
			}
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: conn, read: &ic.read, written: &ic.written}, nil
		},
	}

	dctx, cancel := context.WithTimeout(ctx, hubDialTimeout)
	defer cancel()
	timeout := idleTimeout(f.keepAlive)
	ic.client, err = signalr.Dial(dctx, f.hubURL, signalr.Options{
		AccessToken:       tok,
		HTTPClient:        f.http,
		Dialer:            dialer,
		KeepAliveInterval: f.keepAlive,
		ServerTimeout:     timeout,
	})
	if err != nil {
		return nil, fmt.Errorf("user %s: connect to %s: %w", phone, f.hubURL, err)
	}
	return ic, nil
}

func (f *idleFleet) noteError(err error) {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	if f.firstErr == nil {
		f.firstErr = err
	}
}

func (f *idleFleet) firstError() string {
	f.errMu.Lock()
	defer f.errMu.Unlock()
	if f.firstErr == nil {
		return ""
	}
	return f.firstErr.Error()
}

// connected returns how many connections completed their handshake.
func (f *idleFleet) connected() int64 {
	var n int64
	for _, c := range f.clients {
		if c != nil {
			n++
		}
	}
	return n
}

// dropped returns how many connections ended before close, and the reason
// of the first of them.
func (f *idleFleet) dropped() (int64, string) {
	var n int64
	var first string
	for _, c := range f.clients {
		if c == nil {
			continue
		}
		select {
		case <-c.client.Done():
			n++
			if first == "" {
				first = fmt.Sprint(c.client.Err())
			}
		default:
		}
	}
	return n, first
}

// traffic returns the bytes read and written so far by each connection,
// zero where it failed.
func (f *idleFleet) traffic() []socketBytes {
	out := make([]socketBytes, len(f.clients))
	for i, c := range f.clients {
		if c != nil {
			out[i] = socketBytes{read: c.read.Load(), written: c.written.Load()}
		}
	}
	return out
}

// close closes every open connection, idleCloseParallelism at a time.
func (f *idleFleet) close() {
	jobs := make(chan *idleClient)
	var wg sync.WaitGroup
	for range idleCloseParallelism {
		wg.Go(func() {
			for c := range jobs {
				_ = c.client.Close()
			}
		})
	}
	for _, c := range f.clients {
		if c != nil {
			jobs <- c
		}
	}
	close(jobs)
	wg.Wait()
}

// socketBytes is the byte count of one socket in each direction so far.
type socketBytes struct {
	read, written int64
}

// holdTraffic counts the traffic of a hold from the counters before and
// after it: the connections that read at least one byte, those that wrote
// at least one, and the bytes in each direction. An idle connection reads
// only the hub's pings and writes only its own, so a connection that did
// not read and write missed a keep-alive.
type holdTraffic struct {
	Receiving    int64 `json:"receiving"`     // connections that read data during the hold
	Sending      int64 `json:"sending"`       // connections that wrote data during the hold
	BytesRead    int64 `json:"bytes_read"`    // by all connections during the hold
	BytesWritten int64 `json:"bytes_written"` // by all connections during the hold
}

// countHoldTraffic compares the counters of each connection before and
// after the hold. Both slices are indexed by connection.
func countHoldTraffic(before, after []socketBytes) holdTraffic {
	var t holdTraffic
	for i := range min(len(before), len(after)) {
		read := after[i].read - before[i].read
		written := after[i].written - before[i].written
		if read > 0 {
			t.Receiving++
			t.BytesRead += read
		}
		if written > 0 {
			t.Sending++
			t.BytesWritten += written
		}
	}
	return t
}
