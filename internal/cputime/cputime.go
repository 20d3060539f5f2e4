// Package cputime reads the CPU time this process has used, for the benchmarks that report CPU
// per event next to wall time: on a shared machine, wall time also measures the neighbours.
package cputime

import (
	"errors"
	"time"
)

// ErrUnsupported is returned where the platform gives no way to read the process's CPU time.
var ErrUnsupported = errors.New("cputime: process CPU time is not available on this platform")

// Process returns the user and system CPU time the process has used so far.
func Process() (time.Duration, error) { return process() }

// OrZero is Process for reports that print a figure whatever happens: it returns 0 where the time
// cannot be read, so that CPU metrics read zero rather than stopping the benchmark.
func OrZero() time.Duration {
	d, err := process()
	if err != nil {
		return 0
	}
	return d
}
