package filedlq

import "os"

// WithoutGroupCommit makes every SyncAlways Put fsync on its own, under the append lock, as a
// naive implementation would: the baseline of the group-commit benchmarks.
func WithoutGroupCommit() Option {
	return optionFunc(func(c *config) { c.noGroupCommit = true })
}

// WithSyncFunc replaces the fsync of segment files, to observe or fail it.
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
