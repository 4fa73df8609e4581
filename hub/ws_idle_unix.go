//go:build unix

package hub

import "syscall"

// socketReadable peeks at one byte of the socket without consuming it and without
// blocking. Any result but "would block", including EOF and errors such as EINTR,
// counts as readable, so that the next read reports or retries it.
func socketReadable(fd uintptr, scratch []byte) bool {
	_, _, err := syscall.Recvfrom(int(fd), scratch, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
}
