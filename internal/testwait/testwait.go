// Package testwait bounds the waits of fanbridge's own tests, so that a regression fails the test
// at once with a message instead of hanging until go test's timeout. Call its functions from the
// test's goroutine only: they end the test with t.Fatalf.
package testwait

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Recv returns the next value on ch, and fails the test when none comes within d.
func Recv[T any](t testing.TB, ch <-chan T, d time.Duration) T {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("nothing received within %v", d)
		panic("unreachable")
	}
}

// RecvCtx returns the next value on ch, and fails the test when ctx ends first.
func RecvCtx[T any](t testing.TB, ctx context.Context, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		t.Fatalf("nothing received: %v", ctx.Err())
		panic("unreachable")
	}
}

// Group waits for wg, and fails the test when it does not finish within d.
func Group(t testing.TB, wg *sync.WaitGroup, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	Recv(t, done, d)
}

// Goroutines returns the stack of every goroutine running now, by its id (the number after
// "goroutine " in the stack's first line), for tests that look for goroutines left behind.
func Goroutines() map[string]string {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := make(map[string]string)
	for _, g := range strings.Split(string(buf), "\n\n") {
		// "goroutine 7 [chan receive]:"
		if f := strings.Fields(g); len(f) > 1 && f[0] == "goroutine" {
			out[f[1]] = g
		}
	}
	return out
}
