package filedlq

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/fanbridge/fanbridge/retry"
)

// SyncPolicy says when written entries are flushed to stable storage with fsync. Make one with
// SyncAlways, SyncInterval or SyncNever.
type SyncPolicy struct {
	mode     syncMode
	interval time.Duration
}

type syncMode int

const (
	syncAlways syncMode = iota
	syncInterval
	syncNever
)

// SyncAlways makes Put return only after its entry is fsynced. Concurrent Puts share one fsync
// (group commit). Acknowledged entries survive a process crash and a machine crash.
func SyncAlways() SyncPolicy { return SyncPolicy{mode: syncAlways} }

// SyncInterval makes Put return once its entry is written to the file (the operating system's
// page cache), and fsyncs written entries every d in the background. Acknowledged entries survive
// a process crash; a machine crash loses at most the last d of them. d must be positive.
func SyncInterval(d time.Duration) SyncPolicy { return SyncPolicy{mode: syncInterval, interval: d} }

// SyncNever makes Put return once its entry is written to the file and never fsync entries, leaving
// the flush to the operating system. Acknowledged entries survive a process crash; a machine crash
// may lose any that the system had not yet written back. Delete still fsyncs the copy of a segment
// it writes before renaming it into place (see "Deleting entries" in the package documentation),
// since a rename that outlives its copy's data would empty the segment.
func SyncNever() SyncPolicy { return SyncPolicy{mode: syncNever} }

// String names the policy as in configuration files: "always", "interval(1s)" or "never".
func (p SyncPolicy) String() string {
	switch p.mode {
	case syncAlways:
		return "always"
	case syncInterval:
		return fmt.Sprintf("interval(%v)", p.interval)
	case syncNever:
		return "never"
	}
	return "invalid"
}

// Option configures Open.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	sync           SyncPolicy
	maxSegmentSize int64
	retention      int
	maxEntrySize   int
	readOnly       bool
	logger         *slog.Logger
	onDamage       func(Damage)
	clock          retry.Clock
	fileMode       os.FileMode
	// Hooks for this package's tests.
	noGroupCommit bool
	syncFile      func(*os.File) error // fsyncs segment files, and the copies Delete writes
	syncDir       func(dir string) error
	beforeRename  func(segment string) // called by a rewrite before it renames its temporary file
}

// Defaults of Open.
const (
	DefaultMaxSegmentSize = 64 << 20
	DefaultMaxEntrySize   = 8 << 20
)

func defaultConfig() config {
	return config{
		sync:           SyncAlways(),
		maxSegmentSize: DefaultMaxSegmentSize,
		maxEntrySize:   DefaultMaxEntrySize,
		logger:         slog.New(slog.DiscardHandler),
		clock:          retry.SystemClock,
		fileMode:       0o600,
		syncFile:       (*os.File).Sync,
		syncDir:        syncDir,
	}
}

func (c *config) validate() error {
	switch {
	case c.sync.mode < syncAlways || c.sync.mode > syncNever:
		return fmt.Errorf("%w: sync policy not made by SyncAlways, SyncInterval or SyncNever", ErrInvalidOption)
	case c.sync.mode == syncInterval && c.sync.interval <= 0:
		return fmt.Errorf("%w: sync interval %v, want a positive duration", ErrInvalidOption, c.sync.interval)
	case c.maxSegmentSize < 1:
		return fmt.Errorf("%w: max segment size %d, want at least 1", ErrInvalidOption, c.maxSegmentSize)
	case c.retention < 0:
		return fmt.Errorf("%w: retention %d, want 0 (keep all) or more", ErrInvalidOption, c.retention)
	case c.maxEntrySize < 1024:
		return fmt.Errorf("%w: max entry size %d, want at least 1024", ErrInvalidOption, c.maxEntrySize)
	case c.logger == nil:
		return fmt.Errorf("%w: nil logger", ErrInvalidOption)
	case c.clock == nil:
		return fmt.Errorf("%w: nil clock", ErrInvalidOption)
	case c.fileMode&^os.ModePerm != 0 || c.fileMode&0o600 != 0o600:
		return fmt.Errorf("%w: file mode %v, want permission bits including 0600", ErrInvalidOption, c.fileMode)
	}
	return nil
}

// WithSync sets when entries are fsynced: see SyncAlways, SyncInterval and SyncNever, and the
// package documentation for what each promises. The default is SyncAlways().
func WithSync(p SyncPolicy) Option {
	return optionFunc(func(c *config) { c.sync = p })
}

// WithMaxSegmentSize sets the size in bytes at which the queue starts a new segment file. A
// segment holds at least one entry, so an entry larger than n makes a segment of its own. The
// default is DefaultMaxSegmentSize (64 MiB).
func WithMaxSegmentSize(n int64) Option {
	return optionFunc(func(c *config) { c.maxSegmentSize = n })
}

// WithRetention keeps at most n segments: starting a new segment deletes the oldest beyond n,
// with the entries in them, and logs a warning. Zero keeps every segment. Dead letters are events
// the sender was told were delivered, so set a retention only when losing the oldest of them is
// better than filling the disk. The default is 0.
func WithRetention(n int) Option {
	return optionFunc(func(c *config) { c.retention = n })
}

// WithMaxEntrySize sets the size in bytes of the longest line (one encoded entry) Put writes; a
// larger entry is refused with ErrTooLarge. Readers accept lines up to twice this size, or 16 MiB
// if more. The default is DefaultMaxEntrySize (8 MiB).
func WithMaxEntrySize(n int) Option {
	return optionFunc(func(c *config) { c.maxEntrySize = n })
}

// WithReadOnly opens the queue for reading only, as inspection tools do: it takes no lock, so it
// may run beside the process that writes the queue, repairs nothing, and refuses Put and Delete
// with dlq.ErrUnsupported. The default is read-write.
func WithReadOnly() Option {
	return optionFunc(func(c *config) { c.readOnly = true })
}

// WithLogger sets the logger for repairs, damaged lines, retention and storage failures. Entry
// contents are never logged. The default discards everything.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger = l })
}

// WithOnDamage sets a hook called with each damaged or torn piece of a segment found by Open, List,
// Get or Delete, on the calling goroutine. The default is no hook.
func WithOnDamage(f func(Damage)) Option {
	return optionFunc(func(c *config) { c.onDamage = f })
}

// WithClock sets the clock that paces SyncInterval. The default is retry.SystemClock.
func WithClock(clk retry.Clock) Option {
	return optionFunc(func(c *config) { c.clock = clk })
}

// WithFileMode sets the permission bits of new segment files; they must include 0600. Dead
// letters hold customer events, so the default keeps them private to the owner: 0600.
func WithFileMode(m os.FileMode) Option {
	return optionFunc(func(c *config) { c.fileMode = m })
}
