package retry_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/retry/retrytest"
)

var errFlaky = errors.New("flaky")

// run calls r.Do on a goroutine and advances clk through every wait Do starts, recording each wait.
// It returns Do's result and the waits in order. The test fails if Do does not finish in 10 s.
func run(t *testing.T, clk *retrytest.Clock, r *retry.Retrier, op func(context.Context) error, opts ...retry.CallOption) (error, []time.Duration) {
	t.Helper()
	return runCtx(t, context.Background(), clk, r, op, opts...)
}

func runCtx(t *testing.T, ctx context.Context, clk *retrytest.Clock, r *retry.Retrier, op func(context.Context) error, opts ...retry.CallOption) (error, []time.Duration) {
	t.Helper()
	deadline, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Do(ctx, op, opts...) }()
	var waits []time.Duration
	for {
		timerUp := make(chan struct{})
		go func() {
			if clk.WaitTimers(deadline, 1) == nil {
				close(timerUp)
			}
		}()
		select {
		case err := <-done:
			return err, waits
		case <-timerUp:
			d, ok := clk.NextDue()
			if !ok {
				continue
			}
			waits = append(waits, d)
			clk.Advance(d)
		case <-deadline.Done():
			t.Fatal("Do did not finish")
		}
	}
}

func newRetrier(t *testing.T, p retry.Policy, opts ...retry.Option) (*retry.Retrier, *retrytest.Clock) {
	t.Helper()
	clk := retrytest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	r, err := retry.New(p, append([]retry.Option{retry.WithClock(clk)}, opts...)...)
	require.NoError(t, err)
	return r, clk
}

func failN(n int, err error) (func(context.Context) error, *int) {
	calls := 0
	return func(context.Context) error {
		calls++
		if calls <= n {
			return err
		}
		return nil
	}, &calls
}

func TestExponentialGrowthAndCap(t *testing.T) {
	r, clk := newRetrier(t, retry.Policy{
		InitialInterval: 100 * time.Millisecond,
		Multiplier:      2,
		MaxInterval:     time.Second,
		Jitter:          retry.NoJitter,
		MaxAttempts:     8,
	})
	op, calls := failN(7, errFlaky)
	err, waits := run(t, clk, r, op)
	require.NoError(t, err)
	assert.Equal(t, 8, *calls)
	ms := time.Millisecond
	assert.Equal(t, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second, time.Second}, waits)
}

// Interval gives the growth Do follows: the waits of a call without jitter, one by one.
func TestIntervalIsTheGrowthDoFollows(t *testing.T) {
	for _, p := range []retry.Policy{
		{InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: time.Second, Jitter: retry.NoJitter, MaxAttempts: 8},
		{InitialInterval: 30 * time.Millisecond, Multiplier: 1.5, MaxInterval: 200 * time.Millisecond, Jitter: retry.NoJitter, MaxAttempts: 8},
		{InitialInterval: time.Second, Multiplier: 1, MaxInterval: time.Second, Jitter: retry.NoJitter, MaxAttempts: 4},
	} {
		r, clk := newRetrier(t, p)
		op, _ := failN(p.MaxAttempts-1, errFlaky)
		err, waits := run(t, clk, r, op)
		require.NoError(t, err)
		require.Len(t, waits, p.MaxAttempts-1)
		for i, w := range waits {
			assert.Equal(t, w, r.Interval(i+1), "retry %d under %+v", i+1, p)
		}
	}
}

// Sleep waits on the clock, and ends early with the context.
func TestSleep(t *testing.T) {
	clk := retrytest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- retry.Sleep(ctx, clk, time.Minute) }()
	require.NoError(t, clk.WaitTimers(ctx, 1))
	clk.Advance(time.Minute)
	require.NoError(t, sleepResult(t, ctx, done))

	cctx, ccancel := context.WithCancel(ctx)
	go func() { done <- retry.Sleep(cctx, clk, time.Minute) }()
	require.NoError(t, clk.WaitTimers(ctx, 1))
	ccancel()
	assert.ErrorIs(t, sleepResult(t, ctx, done), context.Canceled)
	assert.NoError(t, retry.Sleep(ctx, clk, 0), "no wait at all")
}

// sleepResult returns what a Sleep sent on done, and fails the test when nothing comes before ctx
// ends.
func sleepResult(t *testing.T, ctx context.Context, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		t.Fatal("Sleep did not return")
		return nil
	}
}

func TestFullJitterStaysWithinBounds(t *testing.T) {
	draws := []float64{0, 0.5, 0.999, 0.25}
	i := 0
	r, clk := newRetrier(t, retry.Policy{InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second, MaxAttempts: 5},
		retry.WithRandom(func() float64 { v := draws[i%len(draws)]; i++; return v }))
	var seen []time.Duration
	r2 := r
	op, _ := failN(4, errFlaky)
	err, _ := run(t, clk, r2, op, retry.OnRetry(func(a retry.Attempt) { seen = append(seen, a.Wait) }))
	require.NoError(t, err)
	ms := time.Millisecond
	// interval 100, 200, 400, 800 ms scaled by the draws 0, 0.5, 0.999, 0.25
	assert.Equal(t, []time.Duration{0, 100 * ms, time.Duration(0.999 * float64(400*ms)), 200 * ms}, seen)

	// With the real random source every wait lies in [0, interval].
	real, err := retry.New(retry.Policy{InitialInterval: 10 * time.Millisecond, MaxInterval: 40 * time.Millisecond, MaxAttempts: 6},
		retry.WithClock(clk))
	require.NoError(t, err)
	for range 50 {
		var waits []retry.Attempt
		op, _ := failN(5, errFlaky)
		err, _ := run(t, clk, real, op, retry.OnRetry(func(a retry.Attempt) { waits = append(waits, a) }))
		require.NoError(t, err)
		ceil := []time.Duration{10, 20, 40, 40, 40}
		for k, a := range waits {
			assert.GreaterOrEqual(t, a.Wait, time.Duration(0))
			assert.LessOrEqual(t, a.Wait, ceil[k]*time.Millisecond)
		}
	}
}

// A random source that strays out of [0, 1) must not turn waits into none, negative or longer than
// the interval: each such draw counts as 1.
func TestBrokenRandomSourceWaitsTheWholeInterval(t *testing.T) {
	draws := []float64{math.NaN(), -0.5, 1.5, math.Inf(1)}
	i := 0
	r, clk := newRetrier(t, retry.Policy{InitialInterval: 100 * time.Millisecond, MaxInterval: time.Second, MaxAttempts: 5},
		retry.WithRandom(func() float64 { v := draws[i%len(draws)]; i++; return v }))
	var seen []time.Duration
	op, _ := failN(4, errFlaky)
	err, _ := run(t, clk, r, op, retry.OnRetry(func(a retry.Attempt) { seen = append(seen, a.Wait) }))
	require.NoError(t, err)
	ms := time.Millisecond
	assert.Equal(t, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms}, seen)
}

// Waits at the top of time.Duration's range neither wrap to a negative wait (a draw of 1 on the
// largest interval) nor slip past the age budget (elapsed plus wait overflowing): the first would
// retry at once, the second would sleep for centuries.
func TestHugeWaitsDoNotOverflow(t *testing.T) {
	t.Run("jitter", func(t *testing.T) {
		r, clk := newRetrier(t, retry.Policy{InitialInterval: math.MaxInt64, MaxInterval: math.MaxInt64, MaxAttempts: 2},
			retry.WithRandom(func() float64 { return 1 }))
		var seen []time.Duration
		op, _ := failN(1, errFlaky)
		err, waits := run(t, clk, r, op, retry.OnRetry(func(a retry.Attempt) { seen = append(seen, a.Wait) }))
		require.NoError(t, err)
		assert.Equal(t, []time.Duration{math.MaxInt64}, seen)
		assert.Equal(t, []time.Duration{math.MaxInt64}, waits)
	})
	t.Run("age", func(t *testing.T) {
		r, clk := newRetrier(t, retry.Policy{MaxAge: time.Hour, MaxRetryAfter: math.MaxInt64, MaxAttempts: -1, Jitter: retry.NoJitter})
		err, waits := run(t, clk, r, func(context.Context) error {
			clk.Advance(time.Second) // the attempt takes a second
			return retry.After(errFlaky, math.MaxInt64)
		})
		var re *retry.Error
		require.ErrorAs(t, err, &re)
		assert.Equal(t, retry.ReasonAge, re.Reason)
		assert.Empty(t, waits)
	})
}

func TestRetryAfterIsHonouredAndCapped(t *testing.T) {
	r, clk := newRetrier(t, retry.Policy{
		InitialInterval: 10 * time.Millisecond, MaxInterval: 100 * time.Millisecond,
		Jitter: retry.NoJitter, MaxAttempts: 3, MaxRetryAfter: 5 * time.Second,
	})
	op, _ := failN(2, retry.After(errFlaky, 3*time.Second))
	err, waits := run(t, clk, r, op)
	require.NoError(t, err)
	assert.Equal(t, []time.Duration{3 * time.Second, 3 * time.Second}, waits, "Retry-After beats the shorter backoff")

	op, _ = failN(1, retry.After(errFlaky, time.Hour))
	err, waits = run(t, clk, r, op)
	require.NoError(t, err)
	assert.Equal(t, []time.Duration{5 * time.Second}, waits, "Retry-After is capped by MaxRetryAfter")

	op, _ = failN(1, retry.After(errFlaky, time.Millisecond))
	err, waits = run(t, clk, r, op)
	require.NoError(t, err)
	assert.Equal(t, []time.Duration{10 * time.Millisecond}, waits, "a shorter Retry-After does not shorten the backoff")
}

// With MaxRetryAfter left at zero, a Retry-After is capped by the policy's own MaxInterval, below
// or above the default one.
func TestRetryAfterCapDefaultsToMaxInterval(t *testing.T) {
	for _, maxInterval := range []time.Duration{time.Second, 30 * time.Second} {
		r, clk := newRetrier(t, retry.Policy{InitialInterval: 10 * time.Millisecond, MaxInterval: maxInterval,
			Jitter: retry.NoJitter, MaxAttempts: 2})
		assert.Equal(t, maxInterval, r.Policy().MaxRetryAfter)
		op, _ := failN(1, retry.After(errFlaky, time.Hour))
		err, waits := run(t, clk, r, op)
		require.NoError(t, err)
		assert.Equal(t, []time.Duration{maxInterval}, waits, "MaxInterval %v", maxInterval)
	}
}

func TestAttemptBudget(t *testing.T) {
	r, clk := newRetrier(t, retry.Policy{InitialInterval: time.Millisecond, MaxAttempts: 3, Jitter: retry.NoJitter})
	op, calls := failN(100, errFlaky)
	err, _ := run(t, clk, r, op)
	var re *retry.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 3, *calls)
	assert.Equal(t, 3, re.Attempts)
	assert.Equal(t, retry.ReasonAttempts, re.Reason)
	assert.Equal(t, 3*time.Millisecond, re.Elapsed) // 1 ms + 2 ms of fake time
	assert.ErrorIs(t, err, errFlaky, "unwraps to the last cause")
	assert.Equal(t, retry.ClassRetryable, retry.Classify(err))
	assert.Contains(t, err.Error(), "3 attempt(s)")
	assert.Contains(t, err.Error(), "attempts")
}

func TestAgeBudget(t *testing.T) {
	r, clk := newRetrier(t, retry.Policy{
		InitialInterval: time.Second, MaxInterval: time.Second, Jitter: retry.NoJitter,
		MaxAttempts: -1, MaxAge: 3500 * time.Millisecond,
	})
	op, calls := failN(100, errFlaky)
	err, waits := run(t, clk, r, op)
	var re *retry.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, retry.ReasonAge, re.Reason)
	assert.Equal(t, 4, *calls, "attempts at 0, 1, 2 and 3 s; a fourth wait would cross 3.5 s")
	assert.Len(t, waits, 3)

	// The age counts from Since: an event that is already old gets fewer attempts.
	op, calls = failN(100, errFlaky)
	err, _ = run(t, clk, r, op, retry.Since(clk.Now().Add(-3*time.Second)))
	require.ErrorAs(t, err, &re)
	assert.Equal(t, retry.ReasonAge, re.Reason)
	assert.Equal(t, 1, *calls)
	assert.Equal(t, 3*time.Second, re.Elapsed)

	// An event older than the whole budget gets no attempt at all.
	op, calls = failN(100, errFlaky)
	err, waits = run(t, clk, r, op, retry.Since(clk.Now().Add(-time.Hour)))
	require.ErrorAs(t, err, &re)
	assert.Equal(t, retry.ReasonAge, re.Reason)
	assert.Zero(t, re.Attempts)
	assert.Zero(t, *calls)
	assert.Empty(t, waits)
	assert.ErrorIs(t, err, retry.ErrAgeSpent)
	assert.Contains(t, err.Error(), "MaxAge is 3.5s")
}

func TestPermanentStopsAtOnce(t *testing.T) {
	r, clk := newRetrier(t, retry.Policy{MaxAttempts: 10})
	cause := errors.New("record too large")
	op, calls := failN(100, retry.Permanent(fmt.Errorf("produce: %w", cause)))
	err, waits := run(t, clk, r, op)
	assert.Equal(t, 1, *calls)
	assert.Empty(t, waits)
	var re *retry.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, retry.ReasonPermanent, re.Reason)
	assert.True(t, retry.IsPermanent(err))
	assert.ErrorIs(t, err, cause)
	assert.Equal(t, retry.ClassPermanent, retry.Classify(err))
}

// A permanent mark counts wherever it is in an error, in one error of an errors.Join too, as
// Permanent's doc says: a join of a permanent failure and an outage is permanent as a whole. A
// join is retried only when nothing in it is marked.
func TestPermanentInAJoin(t *testing.T) {
	rejected := errors.New("search index: 400 bad document")
	down := errors.New("warehouse: connection refused")
	for _, tc := range []struct {
		name      string
		err       error
		permanent bool
	}{
		{"one of two marked", errors.Join(retry.Permanent(rejected), down), true},
		{"the other marked", errors.Join(down, fmt.Errorf("index: %w", retry.Permanent(rejected))), true},
		{"the join marked", retry.Permanent(errors.Join(rejected, down)), true},
		{"with a cancellation", errors.Join(retry.Permanent(rejected), context.Canceled), true},
		{"none marked", errors.Join(rejected, down), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.permanent, retry.IsPermanent(tc.err))
			r, clk := newRetrier(t, retry.Policy{MaxAttempts: 3, Jitter: retry.NoJitter})
			op, calls := failN(100, tc.err)
			err, _ := run(t, clk, r, op)
			var re *retry.Error
			require.ErrorAs(t, err, &re)
			if tc.permanent {
				assert.Equal(t, retry.ClassPermanent, retry.Classify(tc.err))
				assert.Equal(t, retry.ReasonPermanent, re.Reason)
				assert.Equal(t, 1, *calls, "no retry: the outage in the join is never tried again")
				assert.Same(t, tc.err, retry.Permanent(tc.err), "already permanent: no second mark")
			} else {
				assert.NotEqual(t, retry.ClassPermanent, retry.Classify(tc.err))
				assert.Equal(t, retry.ReasonAttempts, re.Reason)
				assert.Equal(t, 3, *calls)
			}
			assert.ErrorIs(t, err, rejected)
		})
	}
}

func TestContextCancellationDuringWait(t *testing.T) {
	r, clk := newRetrier(t, retry.Policy{InitialInterval: time.Minute, MaxInterval: time.Minute, Jitter: retry.NoJitter, MaxAttempts: 5})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- r.Do(ctx, func(context.Context) error { return errFlaky })
	}()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	require.NoError(t, clk.WaitTimers(wctx, 1), "Do starts its wait")
	cancel()
	var err error
	select {
	case err = <-done:
	case <-wctx.Done():
		t.Fatal("Do did not return after cancel")
	}
	var re *retry.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, retry.ReasonCanceled, re.Reason)
	assert.Equal(t, 1, re.Attempts)
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, err, errFlaky)
	assert.False(t, retry.IsPermanent(err), "our own cancellation is never permanent")
	assert.Equal(t, retry.ClassCanceled, retry.Classify(err))
	assert.Equal(t, 0, clk.Pending(), "the wait's timer is stopped")
}

// A caller that cancels while an attempt runs ends the call there, as ReasonCanceled, and no hook
// announces a retry that will not come: also when that attempt was the last the policy allowed,
// where the attempt budget must not take the blame.
func TestContextCancellationDuringAttempt(t *testing.T) {
	for _, tc := range []struct{ maxAttempts, cancelIn int }{
		{maxAttempts: 1, cancelIn: 1},
		{maxAttempts: 2, cancelIn: 2},
		{maxAttempts: 3, cancelIn: 2},
	} {
		t.Run(fmt.Sprintf("attempt %d of %d", tc.cancelIn, tc.maxAttempts), func(t *testing.T) {
			hooks := 0
			r, clk := newRetrier(t, retry.Policy{InitialInterval: time.Millisecond, Jitter: retry.NoJitter, MaxAttempts: tc.maxAttempts},
				retry.WithOnRetry(func(retry.Attempt) { hooks++ }))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			calls := 0
			err, _ := runCtx(t, ctx, clk, r, func(context.Context) error {
				if calls++; calls == tc.cancelIn {
					cancel()
				}
				return errFlaky
			})
			var re *retry.Error
			require.ErrorAs(t, err, &re)
			assert.Equal(t, retry.ReasonCanceled, re.Reason)
			assert.Equal(t, tc.cancelIn, re.Attempts)
			assert.Equal(t, tc.cancelIn, calls)
			assert.ErrorIs(t, err, context.Canceled)
			assert.ErrorIs(t, err, errFlaky)
			assert.Equal(t, tc.cancelIn-1, hooks, "a hook for each retry that happened, none for the cancelled attempt")
		})
	}
}

// With EndBeforeDeadline, a wait that would end past the context's deadline is not begun: Do
// returns at once what the deadline would have made it return. Without it, or on a fake clock,
// the wait begins and the deadline cuts it short.
func TestEndBeforeDeadline(t *testing.T) {
	throttled := retry.After(errFlaky, 30*time.Second)
	policy := retry.Policy{MaxAttempts: 5, MaxRetryAfter: time.Minute}
	hooks := 0
	system, err := retry.New(policy, retry.WithOnRetry(func(retry.Attempt) { hooks++ }))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	calls := 0
	err = system.Do(ctx, func(context.Context) error { calls++; return throttled }, retry.EndBeforeDeadline())
	assert.NoError(t, ctx.Err(), "Do waited for a deadline it knew no attempt could beat")
	var re *retry.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, retry.ReasonCanceled, re.Reason)
	assert.Equal(t, 1, re.Attempts)
	assert.Equal(t, 1, calls)
	assert.Zero(t, hooks)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorIs(t, err, errFlaky)

	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	cut := system.Do(short, func(context.Context) error { return throttled })
	assert.Error(t, short.Err(), "without the option the wait begins")
	var cre *retry.Error
	require.ErrorAs(t, cut, &cre)
	assert.Equal(t, cre.Reason, re.Reason)
	assert.Equal(t, cre.Attempts, re.Attempts)
	assert.Equal(t, retry.Classify(cut), retry.Classify(err))

	fake, clk := newRetrier(t, policy)
	short2, cancelShort2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort2()
	_ = fake.Do(short2, func(context.Context) error { return throttled }, retry.EndBeforeDeadline())
	assert.Error(t, short2.Err(), "on a fake clock the wait begins")
	assert.Equal(t, 0, clk.Pending())
}

func TestContextAlreadyDone(t *testing.T) {
	r, _ := newRetrier(t, retry.Policy{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	err := r.Do(ctx, func(context.Context) error { called = true; return nil })
	assert.False(t, called)
	var re *retry.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 0, re.Attempts)
	assert.Equal(t, retry.ReasonCanceled, re.Reason)
}

func TestAttemptTimeout(t *testing.T) {
	r, clk := newRetrier(t, retry.Policy{AttemptTimeout: 5 * time.Millisecond, MaxAttempts: 3, Jitter: retry.NoJitter, InitialInterval: time.Millisecond})
	var deadlines int
	err, _ := run(t, clk, r, func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); ok {
			deadlines++
		}
		<-ctx.Done() // blocks until the per-attempt deadline
		return ctx.Err()
	})
	var re *retry.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, retry.ReasonAttempts, re.Reason, "a timed-out attempt is retried")
	assert.Equal(t, 3, deadlines)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

// The Retrier's hook and a call's hook see every retry, the Retrier's first.
func TestOnRetryHooks(t *testing.T) {
	var global, local []retry.Attempt
	var order []string
	r, clk := newRetrier(t, retry.Policy{InitialInterval: time.Millisecond, Jitter: retry.NoJitter, MaxAttempts: 3},
		retry.WithOnRetry(func(a retry.Attempt) { global = append(global, a); order = append(order, "retrier") }))
	op, _ := failN(2, errFlaky)
	err, _ := run(t, clk, r, op, retry.OnRetry(func(a retry.Attempt) { local = append(local, a); order = append(order, "call") }))
	require.NoError(t, err)
	require.Len(t, global, 2)
	assert.Equal(t, global, local)
	assert.Equal(t, []string{"retrier", "call", "retrier", "call"}, order)
	assert.Equal(t, 1, global[0].Number)
	assert.Equal(t, 2, global[1].Number)
	assert.ErrorIs(t, global[0].Err, errFlaky)
	assert.Equal(t, time.Millisecond, global[1].Elapsed)
}

func TestInvalidPolicy(t *testing.T) {
	for name, p := range map[string]retry.Policy{
		"negative initial":             {InitialInterval: -1},
		"multiplier below 1":           {Multiplier: 0.5},
		"NaN multiplier":               {Multiplier: math.NaN()},
		"infinite multiplier":          {Multiplier: math.Inf(1)},
		"negative infinite multiplier": {Multiplier: math.Inf(-1)},
		"negative max":                 {MaxInterval: -1},
		"max below initial":            {InitialInterval: time.Second, MaxInterval: time.Millisecond},
		"negative age":                 {MaxAge: -1},
		"negative timeout":             {AttemptTimeout: -1},
		"negative cap":                 {MaxRetryAfter: -1},
		"unknown jitter":               {Jitter: 7},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := retry.New(p)
			assert.ErrorIs(t, err, retry.ErrInvalidPolicy)
		})
	}
}

func TestDefaults(t *testing.T) {
	r, err := retry.New(retry.Policy{})
	require.NoError(t, err)
	p := r.Policy()
	assert.Equal(t, retry.DefaultInitialInterval, p.InitialInterval)
	assert.Equal(t, retry.DefaultMultiplier, p.Multiplier)
	assert.Equal(t, retry.DefaultMaxInterval, p.MaxInterval)
	assert.Equal(t, retry.DefaultMaxAttempts, p.MaxAttempts)
	assert.Equal(t, p.MaxInterval, p.MaxRetryAfter)
	assert.Equal(t, retry.FullJitter, p.Jitter)
}

func TestErrorClasses(t *testing.T) {
	base := errors.New("boom")
	assert.Nil(t, retry.Permanent(nil))
	assert.Nil(t, retry.After(nil, time.Second))
	assert.Equal(t, retry.Class(""), retry.Classify(nil))

	p := retry.Permanent(base)
	assert.Same(t, p, retry.Permanent(p), "marking twice changes nothing")
	assert.Equal(t, "boom", p.Error())
	assert.ErrorIs(t, p, base)

	a := retry.After(base, 2*time.Second)
	d, ok := retry.RetryAfter(fmt.Errorf("wrapped: %w", a))
	assert.True(t, ok)
	assert.Equal(t, 2*time.Second, d)
	assert.Equal(t, retry.ClassRetryable, retry.Classify(a))
	_, ok = retry.RetryAfter(base)
	assert.False(t, ok)
	d, _ = retry.RetryAfter(retry.After(base, -time.Second))
	assert.Zero(t, d)

	assert.Equal(t, retry.ClassPermanent, retry.Classify(retry.Permanent(retry.After(base, time.Second))))
	assert.Equal(t, retry.ClassCanceled, retry.Classify(fmt.Errorf("x: %w", context.Canceled)))
	assert.Equal(t, retry.ClassRetryable, retry.Classify(context.DeadlineExceeded))
	assert.Equal(t, retry.ClassPermanent, retry.Classify(retry.Permanent(context.Canceled)))
}

// No attempt starts later than MaxAge after the call began, also when the timer of the wait
// before it fires late (a GC pause, a suspended host): the wait ends, the age is looked at again,
// and the call gives up.
func TestNoAttemptPastMaxAgeAfterALateTimer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, clk := newRetrier(t, retry.Policy{InitialInterval: time.Second, Jitter: retry.NoJitter, MaxAttempts: -1, MaxAge: 10 * time.Second})
	start := clk.Now()
	var ages []time.Duration
	done := make(chan error, 1)
	go func() {
		done <- r.Do(ctx, func(context.Context) error {
			ages = append(ages, clk.Now().Sub(start))
			return errFlaky
		})
	}()
	require.NoError(t, clk.WaitTimers(ctx, 1))
	clk.Advance(time.Minute) // the one-second wait ends a minute later
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		t.Fatal("Do did not finish")
	}
	var re *retry.Error
	require.ErrorAs(t, err, &re)
	assert.Equal(t, retry.ReasonAge, re.Reason)
	assert.Equal(t, []time.Duration{0}, ages, "the attempt after the late wait does not start")
}
