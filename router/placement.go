package router

// Placement maps recipients to the nodes that own them. A node owns a
// recipient's inbox, retries and acknowledgements; other nodes forward
// messages and acknowledgements to it.
type Placement interface {
	// Owner returns the node id that owns phone and whether it is this
	// node.
	Owner(phone string) (node string, local bool)
	// Self returns this node's id.
	Self() string
	// Nodes returns the ids of every live node, this one included.
	Nodes() []string
	// PeerAddr returns the peer link address (host:port) of node.
	PeerAddr(node string) (string, bool)
}

// standalone is the Placement of a node without a cluster: it owns every
// recipient.
type standalone struct{}

func (standalone) Owner(string) (string, bool)    { return "", true }
func (standalone) Self() string                   { return "" }
func (standalone) Nodes() []string                { return nil }
func (standalone) PeerAddr(string) (string, bool) { return "", false }
