package storage

import "errors"

// Sentinel errors of the store. Callers check them with errors.Is.
var (
	// ErrNotFound is returned for an id or key that the store does not hold.
	ErrNotFound = errors.New("storage: not found")

	// ErrClosed is returned by every operation after Close has started.
	ErrClosed = errors.New("storage: closed")

	// ErrCorrupt is returned when a stored record cannot be decoded.
	ErrCorrupt = errors.New("storage: corrupt record")

	// ErrIdempotencyConflict is returned when an idempotency key is reused
	// with a different request body.
	ErrIdempotencyConflict = errors.New("storage: idempotency key reused with a different request")

	// ErrFailed is returned by every write after the disk failed a write
	// (for example because it is full). Restart the node once the disk is
	// fixed; no acknowledged write is lost.
	ErrFailed = errors.New("storage: store failed after a disk write error")

	// ErrLowDisk is returned when free disk space in the data folder is below
	// the configured minimum, so the store refuses new messages.
	ErrLowDisk = errors.New("storage: free disk space below the minimum")
)
