// Package cluster assigns mobile users to the nodes of a relay cluster.
//
// A Ring maps a normalised phone number to the member that owns it by
// consistent hashing with virtual nodes, so adding or removing a node moves
// only the keys of that node. A Membership keeps the ring current. It runs
// a hashicorp/memberlist node that gossips which nodes are alive and
// carries each node's peer and API addresses in memberlist's node metadata.
// It rebuilds the ring whenever a node joins, leaves, fails or changes its
// addresses. Nodes that see the same members build rings with the same
// Version and the same owner for every key.
package cluster
