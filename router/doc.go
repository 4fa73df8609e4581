// Package router moves accepted messages from the durable queue to their
// recipients: the batching processor, live delivery and backlogs through the
// hub, acknowledgements, retries with exponential backoff, and the
// dead-letter queue.
//
// Every state change goes through the storage package first; the router
// keeps in memory only what it can rebuild from the store after a restart
// (which connections exist, which backlog page a connection is on).
package router
