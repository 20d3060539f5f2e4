package memsink_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/internal/testwait"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/memsink"
)

// Concurrent Closes all return nil, and once any of them has returned the sink records nothing
// more: there is nothing to flush, so a Close is complete when it returns.
func TestConcurrentClose(t *testing.T) {
	ctx := testContext(t)
	s := memsink.New()
	require.NoError(t, s.Send(ctx, &fanbridge.Event{ID: "before"}))

	release := s.Hold()
	defer release()
	const senders, closers = 4, 4
	held := make(chan error, senders)
	for i := range senders {
		go func() { held <- s.Send(ctx, &fanbridge.Event{ID: fmt.Sprintf("held-%d", i)}) }()
	}

	type result struct {
		err      error
		recorded int
	}
	results := make(chan result, closers)
	for range closers {
		go func() {
			err := s.Close()
			results <- result{err: err, recorded: s.Len()}
		}()
	}
	for i := range closers {
		r := testwait.RecvCtx(t, ctx, results)
		require.NoError(t, r.err, "Close %d", i)
		assert.Equal(t, 1, r.recorded, "Close %d", i)
	}

	release()
	for range senders {
		assert.ErrorIs(t, testwait.RecvCtx(t, ctx, held), sink.ErrClosed, "a Send held across Close")
	}
	assert.ErrorIs(t, s.Send(ctx, &fanbridge.Event{ID: "after"}), sink.ErrClosed)
	require.NoError(t, s.Close(), "a later Close")
	assert.Equal(t, 1, s.Len(), "nothing was recorded after the close")
}
