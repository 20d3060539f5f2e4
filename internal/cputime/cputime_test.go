package cputime_test

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/fanbridge/fanbridge/internal/cputime"
)

// TestProcessCountsWork spins until the process's CPU time has visibly grown: a reader that
// returned a constant, or wall time, would not end the loop with the figures below.
func TestProcessCountsWork(t *testing.T) {
	before, err := cputime.Process()
	if errors.Is(err, cputime.ErrUnsupported) {
		if runtime.GOOS != "windows" && runtime.GOOS != "plan9" && runtime.GOOS != "js" && runtime.GOOS != "wasip1" {
			t.Fatalf("Process unsupported on %s, which is a Unix", runtime.GOOS)
		}
		if got := cputime.OrZero(); got != 0 {
			t.Fatalf("OrZero = %v where unsupported, want 0", got)
		}
		t.Skip("no process CPU time here")
	}
	if err != nil {
		t.Fatal(err)
	}
	if before <= 0 {
		t.Fatalf("Process = %v at the start of a test binary, want > 0", before)
	}
	deadline := time.Now().Add(10 * time.Second)
	x := uint64(1)
	for {
		for range 1 << 20 {
			x = x*6364136223846793005 + 1442695040888963407
		}
		now, err := cputime.Process()
		if err != nil {
			t.Fatal(err)
		}
		if now < before {
			t.Fatalf("CPU time went back: %v then %v", before, now)
		}
		if now-before >= 20*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s of spinning added only %v of CPU time (x=%d)", now-before, x)
		}
	}
	if got := cputime.OrZero(); got < before {
		t.Fatalf("OrZero = %v, below the earlier reading %v", got, before)
	}
}
