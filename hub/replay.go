package hub

import (
	"fmt"

	"github.com/esh3artech/esh3artech/hub/signalr"
)

// replayBuffer keeps the trackable frames sent on a stateful connection until the client
// acknowledges them, so they can be sent again after a reconnect. It is guarded by
// conn.mu.
type replayBuffer struct {
	frames  []sequencedFrame
	bytes   int
	limit   int
	lastSeq int64 // sequence ID of the last trackable frame sent, counting from 1
}

type sequencedFrame struct {
	seq  int64
	data []byte
}

func newReplayBuffer(limit int) *replayBuffer {
	return &replayBuffer{limit: limit}
}

// add records frame under the next sequence ID. It returns false, recording nothing,
// when the buffer already holds limit bytes or more. A buffer below the limit accepts
// any frame, so one frame larger than the limit still fits.
func (b *replayBuffer) add(frame []byte) bool {
	if b.bytes >= b.limit {
		return false
	}
	b.lastSeq++
	b.frames = append(b.frames, sequencedFrame{seq: b.lastSeq, data: frame})
	b.bytes += len(frame)
	return true
}

// ack drops the frames with sequence IDs up to and including seq.
func (b *replayBuffer) ack(seq int64) {
	n := 0
	for n < len(b.frames) && b.frames[n].seq <= seq {
		b.bytes -= len(b.frames[n].data)
		b.frames[n] = sequencedFrame{}
		n++
	}
	if n == len(b.frames) {
		b.frames = nil
		return
	}
	b.frames = b.frames[n:]
}

// resume appends to dst the Sequence message and the unacknowledged frames that start a
// reconnected transport. The Sequence ID is that of the first frame sent again, or the
// next new ID when nothing is unacknowledged: the official clients align their inbound
// counter to it and then drop the replayed frames they already processed.
func (b *replayBuffer) resume(dst [][]byte) [][]byte {
	first := b.lastSeq + 1
	if len(b.frames) > 0 {
		first = b.frames[0].seq
	}
	dst = append(dst, signalr.AppendMessage(nil, &signalr.Message{
		Type: signalr.TypeSequence, SequenceID: first,
	}))
	for _, f := range b.frames {
		dst = append(dst, f.data)
	}
	return dst
}

// inboundSequence numbers the trackable messages received on a stateful connection and
// detects the duplicates a client sends again after a reconnect.
type inboundSequence struct {
	next   int64 // sequence ID of the next trackable message
	latest int64 // highest sequence ID processed
	ackDue bool  // an Ack for latest should be sent
}

// accept numbers one trackable message and reports whether it is new.
func (s *inboundSequence) accept() bool {
	id := s.next
	s.next++
	s.ackDue = true
	if id <= s.latest {
		return false
	}
	s.latest = id
	return true
}

// reset applies a Sequence message from the client: the next trackable message has
// sequence ID seq. A seq beyond the next expected ID would skip messages and is an error.
func (s *inboundSequence) reset(seq int64) error {
	if seq > s.next {
		return fmt.Errorf("%w: Sequence ID %d is beyond the next expected ID %d",
			errProtocol, seq, s.next)
	}
	if seq < 1 {
		return fmt.Errorf("%w: Sequence ID %d is below 1", errProtocol, seq)
	}
	s.next = seq
	return nil
}
