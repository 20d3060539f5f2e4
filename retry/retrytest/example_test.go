package retrytest_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/retry/retrytest"
)

// A Retrier on a fake clock waits until the test moves the clock: WaitTimers says the Retrier has
// started waiting, NextDue how long it waits, Advance lets it go. No real time passes.
func ExampleNewClock() {
	clk := retrytest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	r, err := retry.New(retry.Policy{InitialInterval: time.Minute, Jitter: retry.NoJitter, MaxAttempts: 3},
		retry.WithClock(clk))
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	attempts := 0
	done := make(chan error, 1)
	go func() {
		done <- r.Do(ctx, func(context.Context) error {
			attempts++
			if attempts == 1 {
				return errors.New("connection refused")
			}
			return nil
		})
	}()

	if err := clk.WaitTimers(ctx, 1); err != nil { // the first attempt failed; the Retrier waits
		panic(err)
	}
	wait, _ := clk.NextDue()
	fmt.Println("waiting", wait)
	clk.Advance(wait)
	fmt.Println("Do returned", <-done, "after", attempts, "attempts; the clock reads", clk.Now().Format(time.Kitchen))
	// Output:
	// waiting 1m0s
	// Do returned <nil> after 2 attempts; the clock reads 12:01PM
}
