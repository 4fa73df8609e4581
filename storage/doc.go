// Package storage keeps the relay's durable state in Pebble: accepted
// messages, the durable queue that the processor drains, per-recipient
// inboxes, message status, the dead-letter index and idempotency keys.
//
// Every write that a caller answers on (accepting a message, an
// acknowledgement's completion, storing a message that another node then
// deletes) is committed with pebble.Sync, and concurrent commits share
// fsyncs through Pebble's group commit. No operation deletes a record
// before the record that replaces it is in the same batch or already
// durable, so a process killed at any moment reopens into a consistent
// state without a repair step.
//
// The package knows nothing about HTTP or SignalR.
package storage
