//go:build !unix

package cputime

import "time"

func process() (time.Duration, error) { return 0, ErrUnsupported }
