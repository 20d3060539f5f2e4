package filedlq

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/retry"
)

// Queue is a dead-letter queue kept in a directory of JSON Lines segment files. It implements
// dlq.Queue and dlq.Reader and is safe for concurrent use. Close releases it.
type Queue struct {
	dir string
	cfg config

	lock      *os.File // holds the directory's flock; nil when read-only
	recovered []Damage

	// Lock order: mu, then fileMu, then segMu.
	mu     ctxMutex // serialises appends; guards active, activeSeq, size, closed, broken
	active *os.File // the segment appended to; nil when read-only
	// activeSeq is the sequence number of the active segment; size its length, every byte of which
	// belongs to a complete line.
	activeSeq uint64
	size      int64
	closed    bool
	broken    error
	// isBroken is set with broken, for handOver, which cannot take mu.
	isBroken atomic.Bool

	fileMu sync.Mutex // held while the active file is fsynced, and while it is replaced or closed
	// rewritingActive is set while a Delete rewrites the active segment: between its rename and
	// the switch to the new file, the active file is rightly no longer the one at its name.
	rewritingActive atomic.Bool

	segMu sync.Mutex // guards segs, and the files of segments that are not active
	segs  []uint64

	late lateLines

	sy syncState

	written   atomic.Uint64 // lines appended; a line's sequence number is the count after it
	syncs     atomic.Uint64
	rotations atomic.Uint64
	dropped   atomic.Uint64
	damaged   atomic.Uint64
}

// lateLines holds the lines of Puts that stopped waiting for mu (see handOver). It has a lock of
// its own, taken with or without mu, and nothing else under it.
type lateLines struct {
	mu      sync.Mutex
	lines   [][]byte
	bytes   int
	waiting bool // a goroutine waits for mu to write them
	shut    bool // Close took the last of them: no more are taken
}

// pending reports whether lines wait to be written.
func (l *lateLines) pending() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines) > 0
}

// maxLateBytes bounds the lines waiting in lateLines (at least one entry of the largest size is
// taken): past it, a Put that gives up waiting writes nothing.
const maxLateBytes = 16 << 20

// syncState tracks which appended lines are durable, for Puts waiting under SyncAlways.
type syncState struct {
	mu      sync.Mutex
	synced  uint64        // lines known to be fsynced
	err     error         // a failed fsync; sticky, since the kernel may have dropped the data
	closed  bool          // the queue is closed: no more fsyncs
	running bool          // a Put is running an fsync round
	done    chan struct{} // closed and replaced whenever the state above changes
	quit    chan struct{} // stops the SyncInterval goroutine
	exited  chan struct{}
}

var (
	_ dlq.Queue  = (*Queue)(nil)
	_ dlq.Reader = (*Queue)(nil)
)

// Open opens the queue in dir, creating the directory (mode 0700) and its first segment when
// needed. For writing it takes an exclusive lock on the directory (ErrLocked when another queue
// holds it), removes files left by an interrupted Delete, and truncates a torn write off the end
// of every segment, reporting each repair to WithOnDamage, the logger and Recovered.
func Open(dir string, opts ...Option) (*Queue, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if dir == "" {
		return nil, fmt.Errorf("%w: empty directory name", ErrInvalidOption)
	}
	q := &Queue{dir: dir, cfg: cfg, mu: make(ctxMutex, 1)}
	q.sy.done = make(chan struct{})
	if cfg.readOnly {
		segs, _, err := scanDir(dir)
		if err != nil {
			return nil, fmt.Errorf("filedlq: open %s: %w", dir, err)
		}
		q.segs = segs
		return q, nil
	}
	if err := q.openWriter(); err != nil {
		if q.lock != nil {
			q.lock.Close()
		}
		return nil, fmt.Errorf("filedlq: open %s: %w", dir, err)
	}
	q.startSyncer()
	return q, nil
}

// makeDir creates the queue's directory and any missing parent, and makes each new directory's
// own entry durable by syncing the directory that holds it: a Put acknowledged soon after the
// first Open must not depend on the file system writing the mkdir before the segment's data.
func (q *Queue) makeDir() error {
	var created []string // from the deepest up
	for d := filepath.Clean(q.dir); ; {
		if _, err := os.Lstat(d); err == nil || !errors.Is(err, fs.ErrNotExist) {
			break
		}
		created = append(created, d)
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if err := os.MkdirAll(q.dir, 0o700); err != nil {
		return err
	}
	for i := len(created) - 1; i >= 0; i-- {
		if err := q.cfg.syncDir(filepath.Dir(created[i])); err != nil {
			return err
		}
	}
	return nil
}

func (q *Queue) openWriter() error {
	if err := q.makeDir(); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(q.dir, lockName), os.O_RDWR|os.O_CREATE, q.cfg.fileMode)
	if err != nil {
		return err
	}
	q.lock = lock
	if err := lockFile(lock); err != nil {
		return err
	}
	segs, tmps, err := scanDir(q.dir)
	if err != nil {
		return err
	}
	for _, name := range tmps {
		if err := os.Remove(filepath.Join(q.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	for _, seg := range segs {
		d, ok, err := repairTail(q.dir, seg, q.maxLine())
		if err != nil {
			return err
		}
		if ok {
			q.recovered = append(q.recovered, d)
			q.report(d)
		}
	}
	if len(segs) == 0 {
		segs = []uint64{1}
		f, err := q.createSegment(1)
		if err != nil {
			return err
		}
		f.Close()
	}
	q.segs = segs
	q.activeSeq = segs[len(segs)-1]
	f, err := os.OpenFile(filepath.Join(q.dir, segName(q.activeSeq)), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	q.active, q.size = f, fi.Size()
	return nil
}

// createSegment creates an empty segment file and makes its directory entry durable, so that an
// fsynced entry in it cannot vanish with a machine crash.
func (q *Queue) createSegment(seq uint64) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(q.dir, segName(seq)), os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, q.cfg.fileMode)
	if err != nil {
		return nil, err
	}
	if err := q.cfg.syncDir(q.dir); err != nil {
		f.Close()
		os.Remove(f.Name()) // so that the next attempt can create it again
		return nil, err
	}
	return f, nil
}

// Err reports whether the queue takes entries: nil when it does, an error wrapping ErrBroken
// after a storage failure (a failed fsync or write, the active segment gone), which lasts until
// the queue is reopened, or dlq.ErrClosed after Close. A readiness probe can call it; it touches
// no file and does not wait for a Put under way.
func (q *Queue) Err() error {
	if err := q.syncErr(); err != nil {
		return fmt.Errorf("%w: fsync: %w", ErrBroken, err)
	}
	select {
	case q.mu <- struct{}{}:
		defer q.mu.Unlock()
	default:
		return nil // a Put or Delete holds it: the queue is working
	}
	switch {
	case q.closed:
		return fmt.Errorf("filedlq: %w", dlq.ErrClosed)
	case q.broken != nil:
		return fmt.Errorf("%w: %w", ErrBroken, q.broken)
	}
	return nil
}

// Recovered returns the torn writes Open truncated away. Under SyncAlways none of them held an
// acknowledged entry: Open keeps the entries it finds among the bytes after a segment's last
// newline, and truncates only what follows the last of them.
func (q *Queue) Recovered() []Damage { return append([]Damage(nil), q.recovered...) }

func (q *Queue) report(d Damage) {
	q.damaged.Add(1)
	q.cfg.logger.Warn("filedlq: damaged bytes in a segment", "dir", q.dir, "segment", d.Segment,
		"offset", d.Offset, "length", d.Length, "repaired", d.Repaired, "reason", d.Err)
	if q.cfg.onDamage != nil {
		q.cfg.onDamage(d)
	}
}

// bufPool holds line buffers, so that a Put in steady state allocates little.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// Put appends e to the active segment with a single write and, under SyncAlways, returns once the
// write is fsynced. It returns an error wrapping dlq.ErrInvalidEntry or ErrTooLarge (permanent)
// for an entry it refuses, dlq.ErrClosed after Close, ErrBroken after a storage failure, the
// context's error when ctx ends first, and the storage error otherwise.
//
// An error does not prove the entry absent: a Put whose context ended while it waited for the
// fsync has still written its entry, which becomes durable with the next fsync. A Put whose
// context ended while it waited for its turn to write (another Put's rotation or a Delete's
// rewrite holds the queue for as long as an fsync takes) returns the context's error at once and
// hands its entry over: the queue writes it as soon as it is free, and Close writes it before it
// closes, unless the queue breaks first (ErrBroken: the entry is then logged as lost). A write
// of it that fails without breaking the queue (a full disk, a segment that cannot be created) is
// tried again: by the queue itself, waiting 10 ms, then twice as long each time up to 5 s; by
// each Put, before its own entry (which is written all the same when it can be); and by Close. Up to 16 MiB of entries wait so; past that, or on a
// queue already broken, such a Put writes nothing.
func (q *Queue) Put(ctx context.Context, e dlq.Entry) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("filedlq: put: %w", err)
	}
	if q.cfg.readOnly {
		return fmt.Errorf("filedlq: put: read-only queue: %w", dlq.ErrUnsupported)
	}
	e, err := dlq.Prepare(e)
	if err != nil {
		return retry.Permanent(fmt.Errorf("filedlq: put: %w", err))
	}
	bp := bufPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 1<<20 { // do not pin huge buffers in the pool
			bufPool.Put(bp)
		}
	}()
	line, err := AppendLine((*bp)[:0], e)
	*bp = line
	if err != nil {
		return retry.Permanent(fmt.Errorf("filedlq: put: %w", err))
	}
	if len(line) > q.cfg.maxEntrySize {
		return retry.Permanent(fmt.Errorf("%w: %d bytes encoded, at most %d", ErrTooLarge, len(line), q.cfg.maxEntrySize))
	}
	seq, err := q.append(ctx, line)
	if err != nil {
		return err
	}
	if q.cfg.sync.mode != syncAlways || q.cfg.noGroupCommit {
		return nil
	}
	return q.waitSynced(ctx, seq)
}

// append writes one line at the end of the active segment, rotating first when it would overflow,
// and returns the line's sequence number.
func (q *Queue) append(ctx context.Context, line []byte) (uint64, error) {
	// Another Put's rotation (an fsync) or a Delete rewriting the active segment may hold the
	// lock for long on a slow disk: the wait ends with ctx, and the line is handed over to be
	// written once the lock is free. A caller that gives up on a dead-letter write may have no
	// one to retry it (an Async dispatch already acknowledged): dropping the line would lose it.
	if err := q.mu.LockContext(ctx); err != nil {
		if q.handOver(line) {
			return 0, fmt.Errorf("filedlq: put: gave up waiting to write; the entry is written once the queue is free, unless it breaks first: %w", err)
		}
		return 0, fmt.Errorf("filedlq: put: gave up waiting to write: %w", err)
	}
	defer q.mu.Unlock()
	if err := q.writable(); err != nil {
		return 0, err
	}
	if q.late.pending() {
		// Lines handed over earlier go first. One that cannot be written stays for the next try,
		// and this Put's line is written all the same when it can be: a large line waiting for a
		// segment that cannot be made must not hold back a small one that fits (a queue keeps
		// no order), unless the failure broke the queue.
		if _, err := q.writeLateLocked(); err != nil {
			if err := q.writable(); err != nil {
				return 0, err
			}
		}
	}
	return q.writeLocked(line)
}

// breakWith makes the queue refuse entries from now on, for err. The caller holds mu.
func (q *Queue) breakWith(err error) {
	q.broken = err
	q.isBroken.Store(true)
}

// writable says whether a Put may write now. The caller holds mu.
func (q *Queue) writable() error {
	switch {
	case q.closed:
		return fmt.Errorf("filedlq: put: %w", dlq.ErrClosed)
	case q.broken != nil:
		return fmt.Errorf("filedlq: put: %w: %w", ErrBroken, q.broken)
	}
	if err := q.syncErr(); err != nil {
		return fmt.Errorf("filedlq: put: %w: fsync: %w", ErrBroken, err)
	}
	return nil
}

// handOver keeps a copy of line for the next holder of mu to write, and makes sure there is one:
// a goroutine that waits for mu. It returns false, keeping nothing, when the queue is closing,
// an fsync has failed, or too many bytes already wait (counted until they are written).
func (q *Queue) handOver(line []byte) bool {
	if q.isBroken.Load() || q.syncErr() != nil {
		return false
	}
	l := &q.late
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shut || (l.bytes > 0 && l.bytes+len(line) > max(maxLateBytes, q.cfg.maxEntrySize)) {
		return false
	}
	l.lines = append(l.lines, bytes.Clone(line))
	l.bytes += len(line)
	if !l.waiting {
		l.waiting = true
		go q.writeLateWhenFree()
	}
	return true
}

// Waits between tries of a goroutine writing lines handed over, after a write failed.
const (
	lateRetryFirst = 10 * time.Millisecond
	lateRetryMax   = 5 * time.Second
)

// writeLateWhenFree writes the lines handed over once mu is free, and again, with a growing wait,
// while a write fails and the queue still takes entries: the Puts that handed them over have
// returned, and no one else would. It ends when every line is written (clearing waiting in the
// same step as it finds none left, so that a line handed over later starts another goroutine), or
// when the queue breaks or closes, leaving the lines to Close.
func (q *Queue) writeLateWhenFree() {
	l := &q.late
	wait := lateRetryFirst
	for {
		q.mu.Lock()
		if q.writable() != nil {
			q.mu.Unlock()
			l.mu.Lock()
			l.waiting = false
			l.mu.Unlock()
			return
		}
		wrote, err := q.writeLateLocked()
		if wrote && q.cfg.sync.mode == syncAlways && !q.cfg.noGroupCommit {
			// No Put waits for these lines' fsync: start a round for them, as a Put would.
			q.startSyncRound()
		}
		if err == nil {
			l.mu.Lock()
			done := len(l.lines) == 0
			if done {
				l.waiting = false
			}
			l.mu.Unlock()
			q.mu.Unlock()
			if done {
				return
			}
			continue
		}
		q.mu.Unlock()
		q.cfg.logger.Warn("filedlq: entries whose Puts gave up waiting could not be written yet; trying again",
			"dir", q.dir, "retry_in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-q.sy.quit:
			// Close writes them, or logs them as lost.
			l.mu.Lock()
			l.waiting = false
			l.mu.Unlock()
			return
		}
		wait = min(2*wait, lateRetryMax)
	}
}

// writeLateLocked writes the lines handed over by Puts that gave up waiting, and reports whether
// it wrote any. When a write fails, that line and the ones after it stay, first in line and still
// counted against maxLateBytes, and the error is returned. The caller holds mu and has checked
// that the queue is writable.
func (q *Queue) writeLateLocked() (wrote bool, err error) {
	l := &q.late
	l.mu.Lock()
	lines := l.lines
	l.lines = nil
	l.mu.Unlock()
	for i, line := range lines {
		if _, err := q.writeLocked(line); err != nil {
			l.mu.Lock()
			l.lines = append(lines[i:len(lines):len(lines)], l.lines...)
			l.mu.Unlock()
			return i > 0, fmt.Errorf("filedlq: put: writing entries handed over earlier: %w", err)
		}
		l.mu.Lock()
		l.bytes -= len(line)
		l.mu.Unlock()
	}
	return len(lines) > 0, nil
}

// writeLocked writes line at the end of the active segment, rotating first when it would
// overflow, and returns the line's sequence number. The caller holds mu and has checked that the
// queue is writable.
func (q *Queue) writeLocked(line []byte) (uint64, error) {
	if q.size > 0 && q.size+int64(len(line)) > q.cfg.maxSegmentSize {
		if err := q.rotateLocked(); err != nil {
			return 0, err
		}
	}
	// One write call for the whole line: O_APPEND puts it at the end, and a crash can tear it but
	// never interleave it with another.
	n, err := q.active.Write(line)
	if err != nil {
		// Take a partial line back off, so that the next line starts on a line of its own.
		if n > 0 {
			if terr := q.active.Truncate(q.size); terr != nil {
				q.breakWith(fmt.Errorf("write failed (%v) and its partial line could not be removed: %w", err, terr))
				q.cfg.logger.Error("filedlq: segment left with a partial line", "dir", q.dir, "segment", segName(q.activeSeq), "err", q.broken)
			}
		}
		return 0, fmt.Errorf("filedlq: put: %w", err)
	}
	q.size += int64(n)
	seq := q.written.Add(1)
	if q.cfg.sync.mode == syncAlways && q.cfg.noGroupCommit {
		q.syncs.Add(1)
		if err := q.syncActive(); err != nil {
			q.breakWith(err)
			return 0, fmt.Errorf("filedlq: put: fsync: %w", err)
		}
	}
	return seq, nil
}

// syncActive fsyncs the active segment and checks that it is still the file at its name: one
// removed or replaced under the running queue (an operator's rm, a cleanup job) takes every line
// written to it since with it, and a Put must not report those as stored. The caller holds
// fileMu, or mu with no Delete rewriting the active segment.
func (q *Queue) syncActive() error {
	if err := q.cfg.syncFile(q.active); err != nil {
		return err
	}
	return q.checkActiveName()
}

// checkActiveName returns an error when the active segment is no longer the file at its name.
// The caller holds what syncActive's caller holds.
func (q *Queue) checkActiveName() error {
	held, err := q.active.Stat()
	if err != nil {
		return err
	}
	name := filepath.Join(q.dir, segName(q.activeSeq))
	named, err := os.Stat(name)
	// The flag is read after the look at the name: a rewrite sets it before its rename, and
	// clears it only after the switch, which waits for fileMu.
	if (err != nil || !os.SameFile(held, named)) && !q.rewritingActive.Load() {
		return fmt.Errorf("the active segment %s was removed or replaced under the queue, with the lines written to it", name)
	}
	return nil
}

// rotateLocked makes a new, empty segment the active one and applies the retention. The caller
// holds mu.
func (q *Queue) rotateLocked() error {
	q.fileMu.Lock()
	defer q.fileMu.Unlock()
	if q.cfg.sync.mode != syncNever {
		target := q.written.Load()
		q.syncs.Add(1)
		if err := q.syncActive(); err != nil {
			q.failSync(err)
			return fmt.Errorf("filedlq: put: fsync before rotation: %w", err)
		}
		q.markSynced(target)
	}
	next := q.activeSeq + 1
	f, err := q.createSegment(next)
	if err != nil {
		return fmt.Errorf("filedlq: put: new segment: %w", err)
	}
	q.active.Close()
	q.active, q.activeSeq, q.size = f, next, 0
	q.rotations.Add(1)

	q.segMu.Lock()
	defer q.segMu.Unlock()
	q.segs = append(q.segs, next)
	if q.cfg.retention > 0 && len(q.segs) > q.cfg.retention {
		drop := q.segs[:len(q.segs)-q.cfg.retention]
		removed := map[uint64]bool{}
		for _, seg := range drop {
			path := filepath.Join(q.dir, segName(seg))
			fi, _ := os.Stat(path)
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				// The segment stays; retention tries again at the next rotation.
				q.cfg.logger.Error("filedlq: retention could not remove a segment", "dir", q.dir, "segment", segName(seg), "err", err)
				continue
			}
			removed[seg] = true
			q.dropped.Add(1)
			var size int64
			if fi != nil {
				size = fi.Size()
			}
			q.cfg.logger.Warn("filedlq: retention removed a segment with its entries", "dir", q.dir, "segment", segName(seg), "bytes", size)
		}
		q.segs = slices.DeleteFunc(q.segs, func(s uint64) bool { return removed[s] })
		if err := q.cfg.syncDir(q.dir); err != nil {
			q.cfg.logger.Error("filedlq: directory sync after retention failed", "dir", q.dir, "err", err)
		}
	}
	return nil
}

// ctxMutex is a mutex whose Lock can give up when a context ends. Make it with room for one.
type ctxMutex chan struct{}

func (m ctxMutex) Lock()   { m <- struct{}{} }
func (m ctxMutex) Unlock() { <-m }

// LockContext locks m, or returns ctx's error when ctx ends first.
func (m ctxMutex) LockContext(ctx context.Context) error {
	select {
	case m <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
