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
