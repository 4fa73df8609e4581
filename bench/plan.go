package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"strings"
)

// Phone numbers of the mobile users: the country code 967, the national
// prefix 77 and seven digits, which the node's default phone pattern
// ^(77|78|70|73|71)\d{7}$ accepts.
const (
	phonePrefix      = "96777"
	phoneNumberSpace = 10_000_000 // seven digits
)

// recipientPoolWithoutUsers is how many recipients the messages are spread
// over when no mobile user connects.
const recipientPoolWithoutUsers = 1_000

// contentPrefix starts the content of every message the bench sends, which
// continues with the run id and the send's sequence number.
const contentPrefix = "esh3artech bench "

// messagePlan fixes, before the load starts, the recipient and the content
// of every send, so that a mobile user can tell from a message's content
// which send it came from.
type messagePlan struct {
	runID     string
	phones    []string // the users' phone numbers, digits only
	offline   []bool   // per user: connects only after the load
	recipient []int32  // per send: index into phones
}

// newMessagePlan draws a recipient for each of sends messages among users
// users, of which the share offline connects late. The phone numbers start
// at a random point of the number space, so runs against one node seldom
// share users.
func newMessagePlan(sends int64, users int, offline float64, seed uint64) (*messagePlan, error) {
	idBytes := make([]byte, 4)
	if _, err := rand.Read(idBytes); err != nil {
		return nil, fmt.Errorf("draw a run id: %w", err)
	}
	pool := users
	if pool == 0 {
		pool = recipientPoolWithoutUsers
	}
	rng := mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	first := rng.IntN(phoneNumberSpace - pool + 1)
	p := &messagePlan{
		runID:     hex.EncodeToString(idBytes),
		phones:    make([]string, pool),
		offline:   make([]bool, pool),
		recipient: make([]int32, sends),
	}
	for i := range p.phones {
		p.phones[i] = fmt.Sprintf("%s%07d", phonePrefix, first+i)
	}
	for _, i := range rng.Perm(pool)[:int(float64(users)*offline)] {
		p.offline[i] = true
	}
	for seq := range p.recipient {
		p.recipient[seq] = int32(rng.IntN(pool))
	}
	return p, nil
}

// appendBody appends the JSON body of send seq to dst.
func (p *messagePlan) appendBody(dst []byte, seq int64) []byte {
	dst = append(dst, `{"recipientPhoneNumber":"`...)
	dst = append(dst, p.phones[p.recipient[seq]]...)
	dst = append(dst, `","messageContent":"`...)
	dst = p.appendContent(dst, seq)
	return append(dst, `"}`...)
}

func (p *messagePlan) appendContent(dst []byte, seq int64) []byte {
	dst = append(dst, contentPrefix...)
	dst = append(dst, p.runID...)
	dst = append(dst, ' ')
	return strconv.AppendInt(dst, seq, 10)
}

// sendOf returns the send whose content is content, or false for a message
// that this run did not send.
func (p *messagePlan) sendOf(content string) (int64, bool) {
	rest, ok := strings.CutPrefix(content, contentPrefix+p.runID+" ")
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseInt(rest, 10, 64)
	if err != nil || seq < 0 || seq >= int64(len(p.recipient)) {
		return 0, false
	}
	return seq, true
}

// toOnlineUser reports whether send seq goes to a user that is connected
// during the load.
func (p *messagePlan) toOnlineUser(seq int64) bool {
	return !p.offline[p.recipient[seq]]
}
