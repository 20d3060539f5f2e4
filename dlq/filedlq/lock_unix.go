//go:build unix

package filedlq

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock on f without waiting. flock locks belong to the open
// file, so a second Open in the same process is refused just like one in another process, and
// the lock goes away with the process however it ends.
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return ErrLocked
	}
	if err != nil {
		return fmt.Errorf("filedlq: lock: %w", err)
	}
	return nil
}
