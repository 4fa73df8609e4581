package router

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"

	"github.com/esh3artech/esh3artech/hub"
	"github.com/esh3artech/esh3artech/storage"
)

// The peer link is HTTP with JSON bodies on each node's internal listener.
// Every request carries the sending node's id and a token derived from the
// cluster secret.
const (
	peerPathForward = "/peer/v1/forward"
	peerPathHandoff = "/peer/v1/handoff"
	peerPathAttach  = "/peer/v1/attach"
	peerPathDetach  = "/peer/v1/detach"
	peerPathRefresh = "/peer/v1/attach-refresh"
	peerPathPush    = "/peer/v1/push"
	peerPathAck     = "/peer/v1/ack"
	peerPathMessage = "/peer/v1/messages/"
	peerPathDLQ     = "/peer/v1/dlq"
	peerPathRequeue = "/peer/v1/requeue/"

	headerPeerNode  = "X-Peer-Node"
	headerPeerToken = "X-Peer-Token"
)

// PeerToken derives the token that authenticates peer requests from the
// cluster secret, so the secret itself never crosses the network.
func PeerToken(secret []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("esh3artech peer link v1"))
	return hex.EncodeToString(mac.Sum(nil))
}

// messagesBody carries messages for forward and handoff.
type messagesBody struct {
	Messages []*storage.Message `json:"messages"`
}

// connBody names a connection for attach, detach and ack.
type connBody struct {
	User      string `json:"user"`
	ConnID    string `json:"connId"`
	MessageID string `json:"messageId,omitempty"`
	// Forwarded marks an acknowledgement that a node which no longer owns
	// the user passed on; its receiver does not pass it on again.
	Forwarded bool `json:"forwarded,omitempty"`
}

// refreshBody lists every connection a node keeps attached to the
// receiving node.
type refreshBody struct {
	Conns []connBody `json:"conns"`
}

// pushItem is one send to a connection on the receiving node.
type pushItem struct {
	ConnID   string              `json:"connId"`
	Pending  bool                `json:"pending,omitempty"`
	Messages []hub.MobileMessage `json:"messages"`
}

type pushBody struct {
	Items []pushItem `json:"items"`
}

// pushResult lists the connections the receiving node could not send to.
type pushResult struct {
	Gone []string `json:"gone,omitempty"`
}

// errorBody is the body of a failed peer request. ClientVisible marks an
// error whose text the mobile client may see.
type errorBody struct {
	Error         string `json:"error"`
	ClientVisible bool   `json:"clientVisible,omitempty"`
}

// dlqBody is a page of a node's dead-letter queue.
type dlqBody struct {
	Messages []*storage.Message `json:"messages"`
}
