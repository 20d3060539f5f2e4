package testwait

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
)

// fakeT records a failure instead of failing the test, so that the failing paths can be checked;
// its Fatalf ends the calling goroutine, as the real one does.
type fakeT struct {
	testing.TB
	failed chan string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed <- format
	runtime.Goexit()
}

func TestRecv(t *testing.T) {
	ch := make(chan int, 1)
	ch <- 7
	if got := Recv(t, ch, time.Second); got != 7 {
		t.Fatalf("Recv = %d, want 7", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	ch <- 8
	if got := RecvCtx(t, ctx, ch); got != 8 {
		t.Fatalf("RecvCtx = %d, want 8", got)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go wg.Done()
	Group(t, &wg, 10*time.Second)
}

func TestFailsInsteadOfHanging(t *testing.T) {
	for name, wait := range map[string]func(testing.TB){
		"Recv": func(ft testing.TB) { Recv(ft, make(chan int), time.Millisecond) },
		"RecvCtx": func(ft testing.TB) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			RecvCtx(ft, ctx, make(chan int))
		},
		"Group": func(ft testing.TB) {
			var wg sync.WaitGroup
			wg.Add(1) // never done
			Group(ft, &wg, time.Millisecond)
		},
	} {
		ft := &fakeT{TB: t, failed: make(chan string, 1)}
		go wait(ft)
		select {
		case <-ft.failed:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not fail the test", name)
		}
	}
}
