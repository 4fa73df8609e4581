package hub

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/esh3artech/esh3artech/hub/signalr"
)

// newBenchHub returns a hub with n open connections whose transports drop every frame.
func newBenchHub(b *testing.B, n int) (*Hub, []string) {
	// Long timeouts keep the heartbeat from closing the silent benchmark connections.
	h, err := New(Config{Auth: testAuth, Events: &testEvents{}, Logger: zap.NewNop(),
		ClientTimeout: time.Hour, KeepAliveInterval: time.Hour})
	require.NoError(b, err)
	b.Cleanup(func() { _ = h.Shutdown(context.Background()) })
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("conn-%d", i)
		c := newConn(h, fmt.Sprintf("+1555%07d", i), ids[i], "token-"+ids[i], false)
		c.transport = &discardTransport{c: c}
		c.info.Transport = TransportWebSockets
		c.state = stateConnected
		c.markActive()
		h.reg.addToken(c)
		h.reg.addLive(c)
	}
	return h, ids
}

var benchMessage = MobileMessage{
	ID: "6f1c2a8e-2f3b-4c59-9d3e-0a1b2c3d4e5f", CreatorID: "shop-42",
	RecipientPhoneNumber: "+15551234567", MessageContent: "Your order has shipped.",
	Status: 1, From: "shop-42",
}

func BenchmarkSendMessageManyConnections(b *testing.B) {
	h, ids := newBenchHub(b, 10_000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := h.SendMessage(ids[i%len(ids)], benchMessage); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkSendMessageParallel(b *testing.B) {
	h, ids := newBenchHub(b, 10_000)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if err := h.SendMessage(ids[i%len(ids)], benchMessage); err != nil {
				b.Error(err)
				return
			}
			i += 7
		}
	})
}

// BenchmarkIdleWebSocketMemory opens idle WebSocket connections and reports the heap and
// stack bytes per connection. The clients are bare sockets that wrote the upgrade
// request and handshake by hand, so the client side adds only its net.Conn, well
// under 1 KiB, to the figure.
func BenchmarkIdleWebSocketMemory(b *testing.B) {
	const conns = 2000
	for b.Loop() {
		ts := newTestServer(b, nil)
		before := memStats()
		clients := make([]net.Conn, 0, conns)
		for range conns {
			clients = append(clients, dialIdleWebSocket(b, ts))
		}
		waitFor(b, "every connection to open", func() bool { return ts.hub.ConnCount() == conns })
		after := memStats()
		heap := float64(after.HeapInuse - before.HeapInuse)
		stack := float64(after.StackInuse - before.StackInuse)
		b.ReportMetric((heap+stack)/conns, "bytes/conn")
		b.ReportMetric(heap/conns, "heap-bytes/conn")
		b.ReportMetric(stack/conns, "stack-bytes/conn")
		b.ReportMetric(float64(runtime.NumGoroutine())/conns, "goroutines/conn")
		for _, c := range clients {
			_ = c.Close()
		}
	}
}

func memStats() runtime.MemStats {
	// Each collection halves the stacks that use under a quarter of their size, so a
	// few rounds bring stacks that grew while serving a request down to their idle size.
	for range 5 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms
}

// dialIdleWebSocket upgrades a raw TCP connection by hand and completes the handshake.
func dialIdleWebSocket(b testing.TB, ts *testServer) net.Conn {
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.base, "http://"))
	require.NoError(b, err)
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	req := "GET " + DefaultPath + " HTTP/1.1\r\nHost: " + c.RemoteAddr().String() +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nAuthorization: Bearer " + aliceToken + "\r\n\r\n"
	_, err = c.Write([]byte(req))
	require.NoError(b, err)
	br := bufio.NewReaderSize(c, 512)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(b, err)
	require.Equal(b, http.StatusSwitchingProtocols, resp.StatusCode)
	handshake := signalr.AppendHandshakeRequest(nil,
		signalr.HandshakeRequest{Protocol: "json", Version: 1})
	_, err = c.Write(maskedTextFrame(handshake))
	require.NoError(b, err)
	return c
}

// maskedTextFrame encodes payload (under 126 bytes) as one masked WebSocket text frame,
// as RFC 6455 requires of clients. The zero mask leaves the payload as is.
func maskedTextFrame(payload []byte) []byte {
	frame := []byte{0x81, 0x80 | byte(len(payload)), 0, 0, 0, 0}
	return append(frame, payload...)
}
