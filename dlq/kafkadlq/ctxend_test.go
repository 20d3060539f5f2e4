package kafkadlq_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge/dlq/kafkadlq"
)

// cancelOnFirstBuffered ends a context as the client buffers its first record, and counts the
// records it buffers after that.
type cancelOnFirstBuffered struct {
	cancel atomic.Pointer[context.CancelFunc]
	after  atomic.Int32
}

func (h *cancelOnFirstBuffered) OnProduceRecordBuffered(*kgo.Record) {
	if c := h.cancel.Swap(nil); c != nil {
		(*c)()
		return
	}
	h.after.Add(1)
}

// Once its context has ended, a Delete hands the client no more records, even where a free place
// in the buffer was ready at the same moment.
func TestDeleteHandsOverNothingAfterItsContextEnded(t *testing.T) {
	ctx := testCtx(t)
	for run := range 20 {
		h := &cancelOnFirstBuffered{}
		_, cl := cluster(t, 1)
		q := newQueue(t, cl, kafkadlq.WithReadOpts(kgo.WithHooks(h)))
		dctx, cancel := context.WithCancel(ctx)
		h.cancel.Store(&cancel)
		ids := make([]string, 50)
		for i := range ids {
			ids[i] = fmt.Sprint("r", run, "-", i)
		}
		err := q.Delete(dctx, ids...)
		assert.ErrorIs(t, err, context.Canceled, "run %d", run)
		assert.Zero(t, h.after.Load(), "run %d: removals buffered after the context ended", run)
	}
}
