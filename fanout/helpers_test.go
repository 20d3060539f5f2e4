package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/filter"
	"github.com/fanbridge/fanbridge/internal/testwait"
	"github.com/fanbridge/fanbridge/retry/retrytest"
	"github.com/fanbridge/fanbridge/sink"
)

// testTimeout bounds every test that could hang.
const testTimeout = 20 * time.Second

// recv returns the next value on ch, and fails the test when none comes within testTimeout.
func recv[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	return testwait.Recv(t, ch, testTimeout)
}

// waitGroup waits for wg, and fails the test when it does not finish within testTimeout.
func waitGroup(t testing.TB, wg *sync.WaitGroup) {
	t.Helper()
	testwait.Group(t, wg, testTimeout)
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func event(id, typ string) *fanbridge.Event {
	return &fanbridge.Event{ID: id, Type: typ, Source: "test", Data: []byte(`{}`),
		Raw: []byte(fmt.Sprintf(`{"id":%q,"detail-type":%q}`, id, typ))}
}

func typeIs(typ string) filter.Predicate {
	return filter.PredicateFunc(func(e *fanbridge.Event) bool { return e.Type == typ })
}

// recSink records every Send: how often each event ID was attempted and delivered. fail, when
// set, decides an attempt's error.
type recSink struct {
	mu        sync.Mutex
	attempts  map[string]int
	delivered map[string]int
	order     []string
	fail      func(e *fanbridge.Event, attempt int) error
	sent      chan string // when non-nil, receives the ID of each delivered event
}

func newRecSink() *recSink {
	return &recSink{attempts: map[string]int{}, delivered: map[string]int{}}
}

func (r *recSink) Send(ctx context.Context, e *fanbridge.Event) error {
	r.mu.Lock()
	r.attempts[e.ID]++
	n := r.attempts[e.ID]
	fail := r.fail
	r.mu.Unlock()
	if fail != nil {
		if err := fail(e, n); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	r.delivered[e.ID]++
	r.order = append(r.order, e.ID)
	r.mu.Unlock()
	if r.sent != nil {
		r.sent <- e.ID
	}
	return nil
}

func (r *recSink) Attempts(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts[id]
}

func (r *recSink) Delivered(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.delivered[id]
}

func (r *recSink) TotalDelivered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.delivered {
		n += c
	}
	return n
}

func (r *recSink) Order() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.order...)
}

// memDLQ is an in-memory dead-letter queue; fail, when set, decides each Put's error.
type memDLQ struct {
	mu      sync.Mutex
	entries []dlq.Entry
	fail    func(dlq.Entry) error
	puts    int
}

func (q *memDLQ) Put(ctx context.Context, e dlq.Entry) error {
	q.mu.Lock()
	q.puts++
	fail := q.fail
	q.mu.Unlock()
	if fail != nil {
		if err := fail(e); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	q.mu.Lock()
	q.entries = append(q.entries, e)
	q.mu.Unlock()
	return nil
}

func (q *memDLQ) Entries() []dlq.Entry {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]dlq.Entry(nil), q.entries...)
}

func (q *memDLQ) Has(id, sinkName string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, e := range q.entries {
		if e.Event.ID == id && e.Sink == sinkName {
			return true
		}
	}
	return false
}

func newDispatcher(t testing.TB, cfg fanout.Config, opts ...fanout.Option) *fanout.Dispatcher {
	t.Helper()
	d, err := fanout.New(cfg, opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.Close(ctx)
	})
	return d
}

// sinkFunc adapts a function, for brevity in tables.
func sinkFunc(f func(context.Context, *fanbridge.Event) error) sink.Sink { return sink.Func(f) }

var errBoom = errors.New("boom")

// autoAdvance moves clk to each timer as soon as one waits, until the test ends: retries then run
// at once, in fake time, with their waits recorded.
func autoAdvance(t testing.TB, clk *retrytest.Clock) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		recv(t, done)
	})
	go func() {
		defer close(done)
		for clk.WaitTimers(ctx, 1) == nil {
			if d, ok := clk.NextDue(); ok {
				clk.Advance(d)
			}
		}
	}()
}

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
