package cluster

import (
	"encoding/json"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// Member is one node of the cluster as the ring and the gossip layer see it.
type Member struct {
	// ID is the node's cluster.node_id. It is unique in the cluster and is
	// the memberlist node name.
	ID string
	// PeerAddr is the host:port of the node's internal HTTP peer listener.
	PeerAddr string
	// APIAddr is the host:port of the node's public API listener.
	APIAddr string
	// GossipAddr is the host:port that memberlist uses to reach the node.
	GossipAddr string
}

// nodeMeta is the memberlist node metadata that carries the addresses a
// Member has besides its gossip address.
type nodeMeta struct {
	PeerAddr string `json:"peer"`
	APIAddr  string `json:"api"`
}

// encodeMeta returns the metadata of m, or an error when it does not fit the
// memberlist.MetaMaxSize bytes that memberlist sends with each node.
func encodeMeta(m Member) ([]byte, error) {
	data, err := json.Marshal(nodeMeta{PeerAddr: m.PeerAddr, APIAddr: m.APIAddr})
	if err != nil {
		return nil, fmt.Errorf("cluster: encoding node metadata: %w", err)
	}
	if len(data) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d: shorten PeerAddr and APIAddr",
			ErrMetaTooLarge, len(data), memberlist.MetaMaxSize)
	}
	return data, nil
}

// memberFromNode returns the Member that a memberlist node describes.
func memberFromNode(n *memberlist.Node) (Member, error) {
	var meta nodeMeta
	if err := json.Unmarshal(n.Meta, &meta); err != nil {
		return Member{}, fmt.Errorf("cluster: decoding metadata of node %q: %w", n.Name, err)
	}
	return Member{
		ID:         n.Name,
		PeerAddr:   meta.PeerAddr,
		APIAddr:    meta.APIAddr,
		GossipAddr: n.Address(),
	}, nil
}
