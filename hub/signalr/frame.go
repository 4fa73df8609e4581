package signalr

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
)

// RecordSeparator terminates every JSON record: the handshake messages and each hub
// message.
const RecordSeparator = 0x1E

var (
	// ErrMessageTooLarge is returned by ReadRecords for a record longer than its limit.
	ErrMessageTooLarge = errors.New("signalr: message exceeds the size limit")
	// ErrIncompleteRecord is returned by ReadRecords when the input ends inside a record.
	ErrIncompleteRecord = errors.New("signalr: input ends without a record separator")
)

// SplitRecord returns the first record of data without its separator, and the bytes
// after the separator. ok is false when data contains no separator, in which case
// record and rest are nil.
func SplitRecord(data []byte) (record, rest []byte, ok bool) {
	i := bytes.IndexByte(data, RecordSeparator)
	if i < 0 {
		return nil, nil, false
	}
	return data[:i], data[i+1:], true
}

// ScanRecords is a bufio.SplitFunc that yields each record without its separator. At the
// end of input, bytes that are not terminated by a separator are ErrIncompleteRecord.
func ScanRecords(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexByte(data, RecordSeparator); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return 0, nil, ErrIncompleteRecord
	}
	return 0, nil, nil
}

// scanBufferSize is the starting size of the pooled buffers that ReadRecords uses. Most
// hub messages fit, and larger records grow a private buffer up to the caller's limit.
const scanBufferSize = 4096

var scanBuffers = sync.Pool{New: func() any {
	buf := make([]byte, scanBufferSize)
	return &buf
}}

// ReadRecords reads r to its end and calls fn with each record, without its separator.
//
// The record slice is valid only until fn returns. A record longer than maxSize bytes
// stops reading with an error wrapping ErrMessageTooLarge. Input that ends inside a
// record is ErrIncompleteRecord. An error from fn stops reading and is returned as is.
// The read buffer comes from a pool and is returned before ReadRecords returns, so an
// idle connection keeps no buffer.
func ReadRecords(r io.Reader, maxSize int, fn func(record []byte) error) error {
	bufp := scanBuffers.Get().(*[]byte)
	defer scanBuffers.Put(bufp)

	// The buffer must hold a whole record plus its separator. Its capacity also caps
	// the token size, so a pooled buffer larger than the limit is cut down to it.
	limit := maxSize + 1
	buf := (*bufp)[:0]
	if cap(buf) > limit {
		buf = buf[:0:limit]
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(buf, limit)
	sc.Split(ScanRecords)
	for sc.Scan() {
		if err := fn(sc.Bytes()); err != nil {
			return err
		}
	}
	err := sc.Err()
	if errors.Is(err, bufio.ErrTooLong) {
		return fmt.Errorf("%w: a record is longer than %d bytes", ErrMessageTooLarge, maxSize)
	}
	return err
}
