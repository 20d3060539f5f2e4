//go:build !unix

package filedlq

import "os"

// lockFile does nothing where flock is not available: there, the caller must make sure that one
// process at a time writes a directory.
func lockFile(*os.File) error { return nil }
