//go:build !unix

package grpcsink_test

import "time"

// cpuTime is not measured on this platform; CPU metrics then read zero.
func cpuTime() time.Duration { return 0 }
