//go:build unix

package grpcsink_test

import (
	"syscall"
	"time"
)

// cpuTime returns the CPU time (user and system) the process has used, which on a loaded machine
// says more about cost than wall time does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
