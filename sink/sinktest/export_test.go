package sinktest

import "time"

// SetDeadlines shortens the suite's deadlines for a test of the suite itself, and returns what
// puts them back.
func SetDeadlines(subtest, late time.Duration) (restore func()) {
	oldSubtest, oldLate := subtestTimeout, returnLate
	subtestTimeout, returnLate = subtest, late
	return func() { subtestTimeout, returnLate = oldSubtest, oldLate }
}
