//go:build unix && !linux

package bench_test

import "errors"

var errNoPinning = errors.New("pinning threads to CPUs is implemented for Linux only")

func allowedCPUs() ([]int, error) { return nil, errNoPinning }
func pinThreads(cpus []int) error { return errNoPinning }
