//go:build race

package lossless_test

// raceEnabled reports that the race detector is on: some scenarios meet a known data race in a
// library package, which the detector turns into a failure of the whole run.
const raceEnabled = true
