package service

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/fanbridge/fanbridge"
)

// The event log line names each outcome as fanbridge_eventbridge_dispatched_total counts it, so
// that an operator can match the two.
func TestEventLogOutcomesAreTheMetricsOutcomes(t *testing.T) {
	for err, want := range map[error]string{
		fanbridge.ErrNoMatch:                               "ignored",
		fanbridge.ErrDuplicate:                             "duplicate",
		fanbridge.ErrOverloaded:                            "overloaded",
		fanbridge.ErrClosed:                                "closed",
		fmt.Errorf("fanout: %w", context.DeadlineExceeded): "timeout",
		errors.New("sink refused"):                         "failed",
	} {
		assert.Equal(t, want, outcome(err, false), "%v", err)
	}
	assert.Equal(t, "delivered", outcome(nil, false))
	assert.Equal(t, "queued", outcome(nil, true))
}
