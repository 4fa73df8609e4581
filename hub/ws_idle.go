package hub

import (
	"bufio"
	"net"
	"net/http"
	"syscall"
)

// wsReadBufferSize is the size of the read buffer of each WebSocket. Client messages
// are small (an AcknowledgeMessage invocation is about 120 bytes), and larger ones
// take more reads.
const wsReadBufferSize = 512

// idleReader lets a WebSocket reader goroutine wait for data in a shallow call, so the
// goroutine stack of an idle connection can shrink to 4 KiB. The Go runtime halves a
// stack only while it uses under a quarter of it, and a goroutine parked inside
// gorilla's frame parser uses more than a quarter of 8 KiB.
//
// It owns the bufio.Reader that gorilla/websocket parses from, whose Buffered count
// shows whether bytes are already buffered, and the socket's syscall.RawConn, which
// waits for new ones.
type idleReader struct {
	br   *bufio.Reader
	raw  syscall.RawConn
	peek [1]byte
}

// upgradeWriter wraps the ResponseWriter of an upgrade request so that the hijacked
// connection reads through the idleReader's buffer. gorilla/websocket reuses the
// hijacked bufio.Reader when Upgrader.ReadBufferSize is 0.
type upgradeWriter struct {
	http.ResponseWriter
	idle *idleReader
}

func (w *upgradeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack hijacks the underlying connection and swaps in a small read buffer.
func (w *upgradeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil || brw.Reader.Buffered() > 0 {
		// gorilla/websocket rejects a client that sent data before the upgrade.
		return conn, brw, err
	}
	w.idle.br = bufio.NewReaderSize(conn, wsReadBufferSize)
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			w.idle.raw = raw
		}
	}
	return conn, bufio.NewReadWriter(w.idle.br, brw.Writer), nil
}

// wait returns once the WebSocket has bytes to parse: buffered ones, or new ones on the
// socket. Without a raw socket, as with TLS connections, it returns at once and the
// caller parks inside gorilla/websocket instead.
func (r *idleReader) wait() error {
	if r.br == nil || r.raw == nil || r.br.Buffered() > 0 {
		return nil
	}
	return r.raw.Read(r.readable)
}

// readable reports whether the socket has data or an error pending. Returning false
// makes RawConn.Read wait for the socket to become readable.
func (r *idleReader) readable(fd uintptr) bool {
	return socketReadable(fd, r.peek[:])
}
