//go:build !unix

package hub

// socketReadable reports true at once: on this platform the reader goroutine parks
// inside gorilla/websocket instead, which keeps its stack at 8 KiB.
func socketReadable(uintptr, []byte) bool { return true }
