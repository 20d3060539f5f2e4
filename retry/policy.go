package retry

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Jitter chooses how a computed interval is randomised.
type Jitter int

const (
	// FullJitter waits a uniformly random time between zero and the computed interval, which
	// spreads the retries of many clients that failed together. It is the default.
	FullJitter Jitter = iota
	// NoJitter waits exactly the computed interval. Useful in tests and for a single client.
	NoJitter
)

// Policy says how often and how long to retry. The zero Policy is valid: every zero field takes the
// default its comment states.
type Policy struct {
	// InitialInterval is the interval before the first retry. The default is 100ms.
	InitialInterval time.Duration
	// Multiplier grows the interval after each retry; it must be a finite number of at least 1.
	// The default is 2.
	Multiplier float64
	// MaxInterval caps the interval. The default is 10s.
	MaxInterval time.Duration
	// Jitter randomises each interval. The default is FullJitter.
	Jitter Jitter
	// MaxAttempts is the attempt budget, counting the first attempt. Zero means the default of 5;
	// a negative value means no attempt budget (then MaxAge or the context must end the retries).
	MaxAttempts int
	// MaxAge is the age budget: no attempt starts later than MaxAge after the start of the call
	// (or the time given with Since). The default, zero, means no age budget.
	MaxAge time.Duration
	// AttemptTimeout bounds each attempt with its own context deadline, in real time (not the
	// Retrier's clock). The default, zero, means attempts are bounded only by the caller's
	// context.
	AttemptTimeout time.Duration
	// MaxRetryAfter caps a wait asked for with After, so that a server cannot park a retry for
	// hours. Zero means MaxInterval.
	MaxRetryAfter time.Duration
}

// Defaults of the zero Policy.
const (
	DefaultInitialInterval = 100 * time.Millisecond
	DefaultMultiplier      = 2.0
	DefaultMaxInterval     = 10 * time.Second
	DefaultMaxAttempts     = 5
)

// ErrInvalidPolicy is wrapped by the error New returns for a Policy it cannot use.
var ErrInvalidPolicy = errors.New("retry: invalid policy")

// withDefaults returns p with every zero field set to its default, or an error naming the first
// field that is out of range.
func (p Policy) withDefaults() (Policy, error) {
	switch {
	case p.InitialInterval < 0:
		return p, fmt.Errorf("%w: InitialInterval %v is negative", ErrInvalidPolicy, p.InitialInterval)
	case math.IsNaN(p.Multiplier) || math.IsInf(p.Multiplier, 0):
		// NaN fails every comparison, so it would slip past the check below and make no wait a
		// duration.
		return p, fmt.Errorf("%w: Multiplier %v is not a finite number", ErrInvalidPolicy, p.Multiplier)
	case p.Multiplier != 0 && p.Multiplier < 1:
		return p, fmt.Errorf("%w: Multiplier %v is below 1", ErrInvalidPolicy, p.Multiplier)
	case p.MaxInterval < 0:
		return p, fmt.Errorf("%w: MaxInterval %v is negative", ErrInvalidPolicy, p.MaxInterval)
	case p.MaxAge < 0:
		return p, fmt.Errorf("%w: MaxAge %v is negative", ErrInvalidPolicy, p.MaxAge)
	case p.AttemptTimeout < 0:
		return p, fmt.Errorf("%w: AttemptTimeout %v is negative", ErrInvalidPolicy, p.AttemptTimeout)
	case p.MaxRetryAfter < 0:
		return p, fmt.Errorf("%w: MaxRetryAfter %v is negative", ErrInvalidPolicy, p.MaxRetryAfter)
	case p.Jitter != FullJitter && p.Jitter != NoJitter:
		return p, fmt.Errorf("%w: unknown Jitter %d", ErrInvalidPolicy, p.Jitter)
	}
	if p.InitialInterval == 0 {
		p.InitialInterval = DefaultInitialInterval
	}
	if p.Multiplier == 0 {
		p.Multiplier = DefaultMultiplier
	}
	if p.MaxInterval == 0 {
		p.MaxInterval = max(DefaultMaxInterval, p.InitialInterval)
	}
	if p.MaxInterval < p.InitialInterval {
		return p, fmt.Errorf("%w: MaxInterval %v is below InitialInterval %v", ErrInvalidPolicy, p.MaxInterval, p.InitialInterval)
	}
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.MaxRetryAfter == 0 {
		p.MaxRetryAfter = p.MaxInterval
	}
	return p, nil
}
