package filedlq

import "os"

// WithoutGroupCommit makes every SyncAlways Put fsync on its own, under the append lock, as a
// naive implementation would: the baseline of the group-commit benchmarks.
func WithoutGroupCommit() Option {
	return optionFunc(func(c *config) { c.noGroupCommit = true })
}

// WithSyncFunc replaces the fsync of segment files, and of the copy of a segment a Delete
// writes, to observe or fail it.
func WithSyncFunc(f func(*os.File) error) Option {
	return optionFunc(func(c *config) { c.syncFile = f })
}

// WithDirSyncFunc replaces the fsync of the queue's directory, to observe or fail it.
func WithDirSyncFunc(f func(dir string) error) Option {
	return optionFunc(func(c *config) { c.syncDir = f })
}

// WithBeforeRename sets a function a Delete calls with the segment's file name once it has
// written and fsynced the segment's copy, before renaming it over the segment.
func WithBeforeRename(f func(segment string)) Option {
	return optionFunc(func(c *config) { c.beforeRename = f })
}

// DurableLines returns how many appended lines the queue counts as fsynced: the Puts waiting
// under SyncAlways for lines up to that count have been told their entries are durable.
func (q *Queue) DurableLines() uint64 {
	q.sy.mu.Lock()
	defer q.sy.mu.Unlock()
	return q.sy.synced
}

// CRCSpan returns the CRC-32C of n bytes from the CRCs of the bytes before them and of both.
func CRCSpan(prefix, whole uint32, n int64) uint32 { return crcSpan(prefix, whole, n) }

// Crash gives the queue up as a killed process would: it closes the segment file and the LOCK
// file, which releases the directory's flock, and stops the SyncInterval goroutine without a
// last round, with no fsync and nothing written. What the queue wrote stays in the kernel's page
// cache, where a kill leaves it too. Later calls fail with dlq.ErrClosed. A Delete rewriting an
// older segment is let finish first, as Close does: one still writing after the lock is released
// would be a dead process writing. Whatever Queue gains that Close flushes, Crash must drop.
func (q *Queue) Crash() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.closed = true
	if q.cfg.readOnly {
		return // it holds no file between calls
	}
	q.segMu.Lock()
	q.segMu.Unlock()
	close(q.sy.quit) // syncOnTimer returns on quit without an fsync
	<-q.sy.exited

	q.fileMu.Lock()
	q.active.Close() // close(2) writes nothing back
	q.active = nil
	q.fileMu.Unlock()
	q.sy.mu.Lock()
	q.sy.closed = true
	q.sy.wakeLocked()
	q.sy.mu.Unlock()
	q.lock.Close()
}
