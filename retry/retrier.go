package retry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Reason names the budget that ended a call that did not succeed.
type Reason string

const (
	// ReasonAttempts: the attempt budget (Policy.MaxAttempts) ran out.
	ReasonAttempts Reason = "attempts"
	// ReasonAge: the age budget (Policy.MaxAge) ran out, or the next wait would have crossed it,
	// or (with Since) it was spent before the call began: then no attempt is made.
	ReasonAge Reason = "age"
	// ReasonPermanent: an attempt failed with an error marked Permanent.
	ReasonPermanent Reason = "permanent"
	// ReasonCanceled: the caller's context ended. The work may well succeed if tried again later.
	ReasonCanceled Reason = "canceled"
)

// ErrAgeSpent is the Last error of a call that made no attempt because the age budget counted from
// Since was already spent when it began.
var ErrAgeSpent = errors.New("retry: age budget spent before the first attempt")

// Error is what Do returns when it gives up. It unwraps to the last attempt's error (and, for
// ReasonCanceled, to the context's error too), so errors.Is and errors.As see through it.
type Error struct {
	Attempts int           // attempts made
	Elapsed  time.Duration // from the start of the call (or Since) to giving up
	Reason   Reason        // which budget ran out
	Last     error         // the last attempt's error (ErrAgeSpent when none was made); never nil
	ctxErr   error
}

func (e *Error) Error() string {
	return fmt.Sprintf("retry: gave up after %d attempt(s) in %v (%s): %v",
		e.Attempts, e.Elapsed.Round(time.Millisecond), e.Reason, e.Last)
}

// Unwrap returns the last attempt's error and, when the context ended the call, the context's error.
func (e *Error) Unwrap() []error {
	if e.ctxErr != nil {
		return []error{e.Last, e.ctxErr}
	}
	return []error{e.Last}
}

// Attempt describes a failed attempt that will be retried; OnRetry hooks receive it.
type Attempt struct {
	Number  int           // 1 for the first attempt
	Err     error         // why it failed
	Wait    time.Duration // how long the Retrier waits before the next attempt
	Elapsed time.Duration // since the start of the call (or Since)
}

// Option configures a Retrier.
type Option interface{ apply(*Retrier) }

type optionFunc func(*Retrier)

func (f optionFunc) apply(r *Retrier) { f(r) }

// WithClock sets the clock used for the waits between attempts and for ages (MaxAge, Since).
// The default is SystemClock. Policy.AttemptTimeout is a context deadline, and so runs in real
// time whatever the clock: a test on a fake clock sees it fire only as real time passes.
func WithClock(c Clock) Option {
	return optionFunc(func(r *Retrier) { r.clock = c })
}

// WithOnRetry sets a hook called after every failed attempt that will be retried, before the wait.
// It runs on the calling goroutine and must not block. The default is no hook.
func WithOnRetry(f func(Attempt)) Option {
	return optionFunc(func(r *Retrier) { r.onRetry = f })
}

// WithRandom sets the source of jitter: a function returning a float in [0, 1). A value outside
// [0, 1], NaN included, counts as 1, so that a broken source waits the whole interval rather than
// none or a negative one. The default is math/rand/v2's Float64.
func WithRandom(f func() float64) Option {
	return optionFunc(func(r *Retrier) { r.random = f })
}

// Retrier runs an operation until it succeeds or a budget of its Policy runs out. A Retrier is
// immutable and safe for concurrent use; every Do call keeps its own state.
type Retrier struct {
	policy  Policy
	clock   Clock
	onRetry func(Attempt)
	random  func() float64
}

// New returns a Retrier for p, or an error wrapping ErrInvalidPolicy naming the bad field.
func New(p Policy, opts ...Option) (*Retrier, error) {
	p, err := p.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Retrier{policy: p, clock: SystemClock, random: rand.Float64}
	for _, o := range opts {
		o.apply(r)
	}
	if r.clock == nil || r.random == nil {
		return nil, fmt.Errorf("%w: nil clock or random source", ErrInvalidPolicy)
	}
	return r, nil
}

// fraction returns the jitter factor for one wait, in [0, 1].
func (r *Retrier) fraction() float64 {
	if f := r.random(); f >= 0 && f <= 1 {
		return f
	}
	return 1
}

// Policy returns the Retrier's policy with its defaults filled in.
func (r *Retrier) Policy() Policy { return r.policy }

// Interval returns the interval of the policy before retry n (n >= 1), before jitter:
// InitialInterval × Multiplier^(n-1), at most MaxInterval. It is the growth Do follows, for callers
// that pace waits of their own on the same policy (a run of failures that are not one call).
func (r *Retrier) Interval(n int) time.Duration {
	p := &r.policy
	d := float64(p.InitialInterval) * math.Pow(p.Multiplier, float64(max(n, 1)-1))
	if d >= float64(p.MaxInterval) {
		return p.MaxInterval
	}
	return time.Duration(d)
}

// Sleep waits d on clock, and returns nil then, or ctx's error as soon as ctx ends first. It is
// the wait Do makes between attempts, for callers that pace waits of their own.
func Sleep(ctx context.Context, clock Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CallOption adjusts one Do call.
type CallOption func(*call)

type call struct {
	start    time.Time
	since    bool // start was given with Since
	onRetry  func(Attempt)
	deadline bool // see EndBeforeDeadline
}

// Since counts the age budget from t instead of from the start of the call: pass the time an event
// was received so that its retries across several calls share one budget.
func Since(t time.Time) CallOption { return func(c *call) { c.start, c.since = t, true } }

// EndBeforeDeadline makes Do end the call at once, rather than begin a wait that would end at or
// past ctx's deadline: no attempt could follow that wait, and the caller learns now what it would
// have learnt at the deadline. Do returns the same account as the deadline would have given it,
// ReasonCanceled unwrapping to context.DeadlineExceeded and the last error, though ctx has not
// ended yet: use it only where a caller takes that account as the deadline's, not as a sign that
// ctx is done. The wait is compared with the deadline only on SystemClock (see WithClock).
func EndBeforeDeadline() CallOption { return func(c *call) { c.deadline = true } }

// OnRetry adds a hook for this call only, called after the Retrier's own hook.
func OnRetry(f func(Attempt)) CallOption { return func(c *call) { c.onRetry = f } }

// Do calls op until it returns nil, and returns nil then. Otherwise it returns an *Error saying how
// many attempts were made, how long it took, which budget ran out, and the last error.
//
// Between attempts Do waits an exponentially growing interval (randomised by the Policy's Jitter),
// or at least the wait an error asked for with After. It stops at once on an error marked Permanent
// and when ctx ends; it never starts a wait that would end past the age budget. Each attempt gets a
// context bounded by ctx and by Policy.AttemptTimeout.
func (r *Retrier) Do(ctx context.Context, op func(ctx context.Context) error, opts ...CallOption) error {
	c := call{}
	for _, o := range opts {
		o(&c)
	}
	if c.start.IsZero() {
		c.start = r.clock.Now()
	}
	p := &r.policy
	// A fresh backoff for every call: interval growth is never shared between calls.
	b := &backoff.ExponentialBackOff{
		InitialInterval:     p.InitialInterval,
		RandomizationFactor: 0, // jitter is applied below, as full jitter
		Multiplier:          p.Multiplier,
		MaxInterval:         p.MaxInterval,
		MaxElapsedTime:      0, // budgets are ours
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	b.Reset()

	giveUp := func(n int, reason Reason, last, ctxErr error) error {
		return &Error{Attempts: n, Elapsed: r.clock.Now().Sub(c.start), Reason: reason, Last: last, ctxErr: ctxErr}
	}
	if err := ctx.Err(); err != nil {
		return giveUp(0, ReasonCanceled, err, err)
	}
	if p.MaxAge > 0 && c.since {
		// With Since, the budget may be spent before this call begins.
		if age := r.clock.Now().Sub(c.start); age >= p.MaxAge {
			return giveUp(0, ReasonAge, fmt.Errorf("%w: %v old, MaxAge is %v", ErrAgeSpent, age.Round(time.Millisecond), p.MaxAge), nil)
		}
	}
	for n := 1; ; n++ {
		err := r.attempt(ctx, op)
		if err == nil {
			return nil
		}
		if IsPermanent(err) {
			return giveUp(n, ReasonPermanent, err, nil)
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return giveUp(n, ReasonCanceled, err, ctxErr)
		}
		if p.MaxAttempts > 0 && n >= p.MaxAttempts {
			return giveUp(n, ReasonAttempts, err, nil)
		}
		wait := b.NextBackOff()
		if p.Jitter == FullJitter {
			// A product at the top of the range does not convert back to a Duration: it would
			// wrap to a negative wait, and retries would run back to back.
			if f := r.fraction() * float64(wait); f < float64(math.MaxInt64) {
				wait = time.Duration(f)
			}
		}
		if d, ok := RetryAfter(err); ok {
			wait = max(wait, min(d, p.MaxRetryAfter))
		}
		elapsed := r.clock.Now().Sub(c.start)
		// Written so as not to overflow: wait can be close to the largest Duration.
		if p.MaxAge > 0 && wait >= p.MaxAge-elapsed {
			return giveUp(n, ReasonAge, err, nil)
		}
		if c.deadline && r.realTime() {
			if dl, ok := ctx.Deadline(); ok && wait >= time.Until(dl) {
				return giveUp(n, ReasonCanceled, err, context.DeadlineExceeded)
			}
		}
		a := Attempt{Number: n, Err: err, Wait: wait, Elapsed: elapsed}
		if r.onRetry != nil {
			r.onRetry(a)
		}
		if c.onRetry != nil {
			c.onRetry(a)
		}
		if serr := Sleep(ctx, r.clock, wait); serr != nil {
			return giveUp(n, ReasonCanceled, err, serr)
		}
		// A timer that fired late (a GC pause, a suspended host) must not start an attempt past
		// MaxAge.
		if p.MaxAge > 0 && r.clock.Now().Sub(c.start) >= p.MaxAge {
			return giveUp(n, ReasonAge, err, nil)
		}
	}
}

// realTime reports whether the Retrier's waits run on the clock context deadlines follow.
func (r *Retrier) realTime() bool {
	_, ok := r.clock.(systemClock)
	return ok
}

// attempt runs op once under the per-attempt timeout. A panic is not recovered: it is a bug in op.
func (r *Retrier) attempt(ctx context.Context, op func(context.Context) error) error {
	if r.policy.AttemptTimeout <= 0 {
		return op(ctx)
	}
	actx, cancel := context.WithTimeout(ctx, r.policy.AttemptTimeout)
	defer cancel()
	return op(actx)
}
