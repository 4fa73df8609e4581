package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"golang.org/x/sys/unix"
)

// Options configure a Store. The zero value of each field means its default.
type Options struct {
	// MaxOpenFiles caps the files Pebble keeps open, so that client
	// connections keep most of the process's file limit. Default 256.
	MaxOpenFiles int

	// MinFreeDisk is the free space, in bytes, below which Accept returns
	// ErrLowDisk. Zero disables the check. Default 0.
	MinFreeDisk uint64

	// Events receives the store's events. Default: none.
	Events EventListener

	// Logf receives Pebble's error messages. Default: discarded.
	Logf func(format string, args ...any)

	// fs replaces the operating system's file system in tests.
	fs vfs.FS
}

// EventListener receives notable events from Pebble so that the host can log
// and count them. Each method may be nil.
type EventListener struct {
	// WriteStallBegin is called when Pebble starts delaying writes.
	WriteStallBegin func(reason string)
	// WriteStallEnd is called when the stall ends.
	WriteStallEnd func()
	// BackgroundError is called for a failed flush or compaction.
	BackgroundError func(err error)
}

// Store is the relay's durable state. All methods are safe for concurrent use.
type Store struct {
	db   *pebble.DB
	dir  string
	opts Options

	// mu guards db against Close: operations hold it for reading.
	mu     sync.RWMutex
	closed bool

	idemLocks [64]sync.Mutex

	// transMu serialises the state transitions of stored messages.
	transMu sync.Mutex
	// afterCommit holds the counter updates of the transition in
	// progress. Guarded by transMu.
	afterCommit []func()
	stalled     atomic.Bool
	disk        diskProbe

	count counters
	feed  feed

	// failed holds the first fatal write error. Pebble's commit pipeline
	// cannot be used after one, so every later write returns it at once.
	failed atomic.Pointer[error]
}

// Open opens or creates the store in dir. Opening after a crash replays
// Pebble's write-ahead log and needs no repair step.
func Open(dir string, opts Options) (*Store, error) {
	if opts.MaxOpenFiles == 0 {
		opts.MaxOpenFiles = 256
	}
	s := &Store{dir: dir, opts: opts}
	s.disk.dir = dir
	po := &pebble.Options{
		MaxOpenFiles:  opts.MaxOpenFiles,
		EventListener: s.pebbleEvents(),
		Logger:        pebbleLogger{logf: opts.Logf},
	}
	if opts.fs != nil {
		po.FS = opts.fs
	}
	db, err := pebble.Open(dir, po)
	if errors.Is(err, syscall.EAGAIN) {
		return nil, fmt.Errorf("storage: %s is in use by another running node (it holds "+
			"the folder's LOCK file); stop that node or set storage.dir: %w", dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}
	s.db = db
	if err := s.count.load(db); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) pebbleEvents() *pebble.EventListener {
	ev := s.opts.Events
	return &pebble.EventListener{
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			s.stalled.Store(true)
			s.count.stalls.Add(1)
			s.count.stallStart.Store(time.Now().UnixNano())
			if ev.WriteStallBegin != nil {
				ev.WriteStallBegin(info.Reason)
			}
		},
		WriteStallEnd: func() {
			s.stalled.Store(false)
			if start := s.count.stallStart.Swap(0); start != 0 {
				s.count.stallNanos.Add(time.Now().UnixNano() - start)
			}
			if ev.WriteStallEnd != nil {
				ev.WriteStallEnd()
			}
		},
		BackgroundError: func(err error) {
			if ev.BackgroundError != nil {
				ev.BackgroundError(err)
			}
		},
	}
}

// Dir returns the folder the store was opened in.
func (s *Store) Dir() string { return s.dir }

// Stalled reports whether Pebble is currently delaying writes.
func (s *Store) Stalled() bool { return s.stalled.Load() }

// Close flushes and closes the store. Operations that start afterwards
// return ErrClosed; Close waits for operations in progress. It is safe to
// call more than once.
func (s *Store) Close() error {
	if err := s.Failure(); err != nil {
		// NB: a commit blocked in Pebble's broken pipeline may hold s.mu
		// for reading forever, so a failed store is abandoned, not closed.
		// Its write-ahead log is replayed on the next Open.
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("storage: close: %w", err)
	}
	return nil
}

// enter starts an operation. A nil error must be followed by s.exit().
func (s *Store) enter(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.Failure(); err != nil {
		return err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// Failure returns the fatal write error that stopped the store, or nil. A
// failed store serves no more writes; restarting the process recovers every
// write that was acknowledged before the failure.
func (s *Store) Failure() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *Store) exit() { s.mu.RUnlock() }

// Get returns the message with the given id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id ID) (*Message, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	return s.getLocked(id)
}

// getLocked reads a message. The caller must be inside enter/exit.
func (s *Store) getLocked(id ID) (*Message, error) {
	v, closer, err := s.db.Get(messageKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("storage: get %s: %w", id, err)
	}
	defer closer.Close()
	return decodeMessage(v)
}

// commit writes b durably. A failed commit leaves nothing of b applied.
//
// Pebble reports a failed write-ahead log write (a full or failing disk)
// through Logger.Fatalf, which pebbleLogger turns into a fatalError panic.
// commit recovers that panic and marks the store failed, so the caller gets
// an error instead of the process stopping.
func (s *Store) commit(b *pebble.Batch) error { return s.commitWith(b, pebble.Sync) }

// commitWith commits b with the given durability; see commit.
func (s *Store) commitWith(b *pebble.Batch, opts *pebble.WriteOptions) (err error) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		fe, ok := r.(fatalError)
		if !ok {
			panic(r)
		}
		err = fmt.Errorf("%w: %s", ErrFailed, string(fe))
		s.failed.CompareAndSwap(nil, &err)
	}()
	if err := b.Commit(opts); err != nil {
		return fmt.Errorf("storage: commit: %w", err)
	}
	return nil
}

// diskProbe caches the free space of a folder for a second.
type diskProbe struct {
	dir     string
	mu      sync.Mutex
	checked time.Time
	free    uint64
	err     error
}

// Free returns the bytes available to unprivileged users in the folder.
func (p *diskProbe) Free() (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.checked) < time.Second {
		return p.free, p.err
	}
	var st unix.Statfs_t
	p.err = unix.Statfs(p.dir, &st)
	p.free = st.Bavail * uint64(st.Bsize)
	p.checked = time.Now()
	return p.free, p.err
}

// FreeDisk returns the free space in the store's folder, in bytes.
func (s *Store) FreeDisk() (uint64, error) { return s.disk.Free() }

// pebbleLogger drops Pebble's informational output and passes its errors to
// the host. Failures of operations also reach callers as returned errors.
type pebbleLogger struct {
	logf func(format string, args ...any)
}

func (pebbleLogger) Infof(string, ...any) {}

func (l pebbleLogger) Errorf(format string, args ...any) {
	if l.logf != nil {
		l.logf(format, args...)
	}
}

// fatalError is the panic value of pebbleLogger.Fatalf.
type fatalError string

// Fatalf reports an error Pebble cannot continue from. It panics with a
// fatalError, which Store.commit recovers; elsewhere the process stops, and
// a restart recovers from the write-ahead log.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	l.Errorf(format, args...)
	panic(fatalError(fmt.Sprintf(format, args...)))
}
