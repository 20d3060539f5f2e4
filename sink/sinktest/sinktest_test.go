package sinktest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/memsink"
	"github.com/fanbridge/fanbridge/sink/sinktest"
)

// faulty is a memsink with one promise broken: send replaces its Send, batch its SendBatch,
// closeFn its Close.
type faulty struct {
	*memsink.Sink
	send    func(ctx context.Context, e *fanbridge.Event) error
	batch   func(ctx context.Context, events []*fanbridge.Event) error
	closeFn func() error
}

func (f *faulty) Send(ctx context.Context, e *fanbridge.Event) error {
	if f.send != nil {
		return f.send(ctx, e)
	}
	return f.Sink.Send(ctx, e)
}

func (f *faulty) SendBatch(ctx context.Context, events []*fanbridge.Event) error {
	if f.batch != nil {
		return f.batch(ctx, events)
	}
	return f.Sink.SendBatch(ctx, events)
}

func (f *faulty) Close() error {
	if f.closeFn != nil {
		return f.closeFn()
	}
	return f.Sink.Close()
}

var allFeatures = sinktest.Features{
	ReadBack: true, Metadata: true, Raw: true, Ordered: true,
	TransientFailure: true, PermanentFailure: true, Hang: true, Close: true, Batch: true,
}

// background is work a sink leaves running after its Send has returned. Each piece runs once
// the destination has been read back after the piece began; Close drops the pieces still
// waiting and waits for those running. So the work lands after the suite looked and before
// Close returns, decided by channels rather than by timing, and a subtest that closes the sink
// before reading it back sees none of it.
type background struct {
	mu     sync.Mutex
	looked chan struct{} // closed, and replaced, each time the destination is read back
	stop   chan struct{} // closed when Close begins
	closed bool
	wg     sync.WaitGroup
}

// runInBackground wires a background into f and in: reads of the destination start its work,
// and f's Close waits for what started before closing the memsink.
func runInBackground(f *faulty, in *sinktest.Instance) *background {
	b := &background{looked: make(chan struct{}), stop: make(chan struct{})}
	read := in.Received
	in.Received = func(ctx context.Context) ([]*fanbridge.Event, error) {
		got, err := read(ctx)
		b.mu.Lock()
		close(b.looked)
		b.looked = make(chan struct{})
		b.mu.Unlock()
		return got, err
	}
	f.closeFn = func() error {
		b.mu.Lock()
		if !b.closed {
			b.closed = true
			close(b.stop)
		}
		b.mu.Unlock()
		b.wg.Wait()
		return f.Sink.Close()
	}
	return b
}

// later runs f once the destination has next been read back, unless Close began before that
// read. After Close it does nothing: a closed sink starts no work.
func (b *background) later(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	looked := b.looked
	b.wg.Go(func() {
		select {
		case <-looked:
			f()
		case <-b.stop:
			// A read that came before Close still counts, whichever channel was seen first.
			select {
			case <-looked:
				f()
			default:
			}
		}
	})
}

// completesAbandonedAttempts makes f a sink whose attempt goes on when its Send gives up on a
// destination that does not answer (as an HTTP request already written, or a Kafka record in
// the client's buffer, does): the destination takes the event late, once it answers again and
// the suite has looked. That is allowed, and the suite must pass it.
func completesAbandonedAttempts(f *faulty, in *sinktest.Instance) {
	b := runInBackground(f, in)
	f.send = func(ctx context.Context, e *fanbridge.Event) error {
		if ctx.Err() != nil {
			return f.Sink.Send(ctx, e) // never attempted
		}
		err := f.Sink.Send(ctx, e)
		if err != nil && ctx.Err() != nil && !errors.Is(err, sink.ErrClosed) {
			c := e.Clone()
			b.later(func() { _ = f.Sink.Send(context.Background(), c) })
		}
		return err
	}
	f.batch = func(ctx context.Context, events []*fanbridge.Event) error {
		return sink.SendBatch(ctx, sink.Func(f.Send), events)
	}
}

// harnessFor builds a harness around a faulty sink; change adjusts the sink and instance.
func harnessFor(change func(f *faulty, in *sinktest.Instance)) sinktest.Harness {
	return sinktest.Harness{
		Features: allFeatures,
		Open: func(tb testing.TB) sinktest.Instance {
			m := memsink.New()
			f := &faulty{Sink: m}
			in := sinktest.Instance{
				Sink:     f,
				Received: func(context.Context) ([]*fanbridge.Event, error) { return m.Events(), nil },
				FailTransient: func() func() {
					m.FailFunc(func(*fanbridge.Event) error { return errors.New("unavailable") })
					return func() { m.FailFunc(nil) }
				},
				FailPermanent: func() func() {
					m.FailFunc(func(*fanbridge.Event) error { return retry.Permanent(errors.New("rejected")) })
					return func() { m.FailFunc(nil) }
				},
				Hang:     m.Hold,
				Attempts: m.Attempts,
			}
			if change != nil {
				change(f, &in)
			}
			return in
		},
	}
}

// brokenSinks are sinks that each break one promise, with the message the suite must fail with.
var brokenSinks = map[string]struct {
	change func(f *faulty, in *sinktest.Instance)
	want   string
	// run, when set, limits the child to these subtests (a -test.run pattern under
	// TestBrokenSink), with the suite's deadlines shortened: each one a hanging sink meets would
	// otherwise take the full 35 s, and a sink meant to break one check meets no other subtest
	// that catches its fault by another check.
	run string
	// fullDeadlines keeps the suite's deadlines under run, for a sink that is meant to fail the
	// check of how late it returns rather than be cut off as hanging.
	fullDeadlines bool
	// notWant, when set, must not be in the child's output, with a newline put before it.
	notWant string
}{
	"hangs-ignoring-its-context": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.send = func(context.Context, *fanbridge.Event) error { select {} }
		},
		want: `Send("`,
		run:  "^Deliver$/^Intact$",
	},
	"close-never-returns": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.closeFn = func() error { select {} }
		},
		want: "closing the sink after the subtest had not returned",
		run:  "^Deliver$/^Intact$",
	},
	"retries-on-its-own": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				err := f.Sink.Send(ctx, e)
				for range 2 {
					if err == nil || retry.IsPermanent(err) {
						break
					}
					err = f.Sink.Send(ctx, e)
				}
				return err
			}
		},
		want: "asked the destination 3 times, want once",
	},
	"drops-metadata": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				c := e.Clone()
				c.Metadata = nil
				return f.Sink.Send(ctx, c)
			}
		},
		want: "arrived changed: Metadata",
	},
	"reencodes-body": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				c := e.Clone()
				if len(c.Data) > 0 {
					var buf bytes.Buffer
					if err := json.Compact(&buf, c.Data); err != nil {
						return retry.Permanent(err)
					}
					c.Data = buf.Bytes()
				}
				return f.Sink.Send(ctx, c)
			}
		},
		want: "Data differs",
	},
	"loses-time-zone-instant": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				c := e.Clone()
				// Reads the wall clock as if it were UTC: the instant moves for non-UTC times.
				c.Time = time.Date(c.Time.Year(), c.Time.Month(), c.Time.Day(), c.Time.Hour(), c.Time.Minute(),
					c.Time.Second(), c.Time.Nanosecond(), time.UTC)
				return f.Sink.Send(ctx, c)
			}
		},
		want: "arrived changed: Time",
	},
	"modifies-event": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				if e.Source == "" {
					e.Source = "filled-in"
				}
				return f.Sink.Send(ctx, e)
			}
		},
		want: "modified the event",
	},
	"ignores-cancellation": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				if ctx.Err() != nil {
					ctx = context.Background()
				}
				return f.Sink.Send(ctx, e)
			}
		},
		want: "Send with a done context = nil",
	},
	"cancellation-is-permanent": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				if err := ctx.Err(); err != nil {
					return retry.Permanent(err)
				}
				return f.Sink.Send(ctx, e)
			}
		},
		want: "a caller's cancellation is never permanent",
	},
	"ignores-deadline": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				// Waits for the destination for 4 s whatever the deadline says.
				wait, cancel := context.WithTimeout(context.WithoutCancel(ctx), 4*time.Second)
				defer cancel()
				if err := ctx.Err(); err != nil {
					return err
				}
				return f.Sink.Send(wait, e)
			}
		},
		want: "after a deadline of",
	},
	// Ignores its deadline as above, but waits only 2.5 s of its own: ten times the suite's
	// 250 ms deadline, though well within the seconds a hang takes to be called one.
	"waits-past-its-deadline": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				wait, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2500*time.Millisecond)
				defer cancel()
				return f.Sink.Send(wait, e)
			}
		},
		want:          "Send returned",
		run:           "^Context$/^Deadline$",
		fullDeadlines: true,
	},
	"batch-waits-past-its-deadline": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.batch = func(ctx context.Context, events []*fanbridge.Event) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				wait, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2500*time.Millisecond)
				defer cancel()
				return f.Sink.SendBatch(wait, events)
			}
		},
		want:          "SendBatch returned",
		run:           "^Batch$/^Hang$",
		fullDeadlines: true,
	},
	"unclassified-permanent-failure": {
		change: func(f *faulty, in *sinktest.Instance) {
			in.FailPermanent = func() func() {
				f.Sink.FailFunc(func(*fanbridge.Event) error { return errors.New("404 topic not found") })
				return func() { f.Sink.FailFunc(nil) }
			}
		},
		want: "want an error satisfying retry.IsPermanent",
	},
	"transient-failure-is-permanent": {
		change: func(f *faulty, in *sinktest.Instance) {
			in.FailTransient = in.FailPermanent
		},
		want: "classified permanent, want retryable",
	},
	"close-does-not-reject": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.closeFn = func() error { return nil }
		},
		want: "want an error wrapping sink.ErrClosed",
	},
	"duplicates": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				if err := f.Sink.Send(ctx, e); err != nil {
					return err
				}
				return f.Sink.Send(ctx, e)
			}
		},
		want: "arrived more than once",
	},
	"acknowledges-without-delivering": {
		change: func(f *faulty, _ *sinktest.Instance) {
			var n atomic.Int64
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				if n.Add(1)%7 == 0 {
					return nil
				}
				return f.Sink.Send(ctx, e)
			}
		},
		want: "was acknowledged but did not arrive",
	},
	"reorders": {
		change: func(f *faulty, in *sinktest.Instance) {
			m := f.Sink
			in.Received = func(context.Context) ([]*fanbridge.Event, error) {
				got := m.Events()
				for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
					got[i], got[j] = got[j], got[i]
				}
				return got, nil
			}
		},
		want: "arrived out of order",
	},
	"batch-ignores-its-context": {
		change: func(f *faulty, _ *sinktest.Instance) {
			// Refuses a batch whose context is already done, but then waits for the destination
			// however long it takes.
			f.batch = func(ctx context.Context, events []*fanbridge.Event) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				return f.Sink.SendBatch(context.WithoutCancel(ctx), events)
			}
		},
		want: "SendBatch to a destination that does not answer had not returned",
		run:  "^Batch$/^Hang$",
	},
	"batch-reports-unsent-events-delivered": {
		change: func(f *faulty, _ *sinktest.Instance) {
			// Stops when its context ends during the batch and leaves the events it did not
			// reach nil, as if delivered.
			f.batch = func(ctx context.Context, events []*fanbridge.Event) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				errs := make([]error, len(events))
				failed := false
				for i, e := range events {
					if ctx.Err() != nil {
						break
					}
					if errs[i] = f.Sink.Send(ctx, e); errs[i] != nil {
						failed = true
					}
				}
				if !failed {
					return nil
				}
				return &sink.BatchError{Errs: errs}
			}
		},
		want: "SendBatch's error for event 1 = <nil>",
		run:  "^Batch$/^Hang$",
	},
	"batch-broken-after-a-hang": {
		change: func(f *faulty, _ *sinktest.Instance) {
			var broken atomic.Bool
			f.batch = func(ctx context.Context, events []*fanbridge.Event) error {
				if broken.Load() {
					return errors.New("connection lost")
				}
				err := f.Sink.SendBatch(ctx, events)
				if errors.Is(err, context.DeadlineExceeded) {
					broken.Store(true)
				}
				return err
			}
		},
		want: "SendBatch once the destination answers again = connection lost",
		run:  "^Batch$/^Hang$",
	},
	"retries-late-in-the-background": {
		change: func(f *faulty, in *sinktest.Instance) {
			// Without Attempts, only the arrival of the retried event can give the retry away.
			in.Attempts = nil
			b := runInBackground(f, in)
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				err := f.Sink.Send(ctx, e)
				if err != nil && !retry.IsPermanent(err) && ctx.Err() == nil && !errors.Is(err, sink.ErrClosed) {
					c := e.Clone()
					b.later(func() { _ = f.Sink.Send(context.Background(), c) })
				}
				return err
			}
		},
		want: `-1" arrived late: the destination held it 0 times when the subtest read it back, and 1 times once Close had returned`,
		run:  "^Failure$/^Transient$",
	},
	"resends-failed-events-with-the-next": {
		change: func(f *faulty, in *sinktest.Instance) {
			// Keeps each event whose Send failed (retryably) and sends it again at the start of
			// the next Send, which then succeeds: nothing arrives after the suite has looked, and
			// without Attempts no count shows the retry; only the event's arrival gives it away.
			in.Attempts = nil
			var mu sync.Mutex
			var kept []*fanbridge.Event
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				mu.Lock()
				again := kept
				kept = nil
				mu.Unlock()
				for _, old := range again {
					_ = f.Sink.Send(context.Background(), old)
				}
				err := f.Sink.Send(ctx, e)
				if err != nil && !retry.IsPermanent(err) && ctx.Err() == nil && !errors.Is(err, sink.ErrClosed) {
					mu.Lock()
					kept = append(kept, e.Clone())
					mu.Unlock()
				}
				return err
			}
			f.batch = func(ctx context.Context, events []*fanbridge.Event) error {
				return sink.SendBatch(ctx, sink.Func(f.send), events)
			}
		},
		want: `-1" failed while the destination refused every delivery, yet arrived 1 times`,
		run:  "^Failure$/^Transient$",
	},
	"delivers-a-copy-late": {
		change: func(f *faulty, in *sinktest.Instance) {
			in.Attempts = nil // as above
			b := runInBackground(f, in)
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				if err := f.Sink.Send(ctx, e); err != nil {
					return err
				}
				c := e.Clone()
				b.later(func() { _ = f.Sink.Send(context.Background(), c) })
				return nil
			}
		},
		want: `-full" arrived late: the destination held it 1 times when the subtest read it back, and 2 times once Close had returned`,
		run:  "^Deliver$/^Intact$",
	},
	// The sinks below each break one check that no sink above reaches; run confines each to the
	// subtest holding its check.
	"changes-type": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				c := e.Clone()
				c.Type = strings.TrimPrefix(c.Type, "v2.") // drops the API version it thinks redundant
				return f.Sink.Send(ctx, c)
			}
		},
		want: "arrived changed: Type",
		run:  "^Deliver$/^Intact$",
	},
	"stores-type-as-topic": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				c := e.Clone()
				c.Topic = c.Type // the topic template, not the topic the event came on
				return f.Sink.Send(ctx, c)
			}
		},
		want: "arrived changed: Topic",
		run:  "^Deliver$/^Intact$",
	},
	"truncates-source": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				c := e.Clone()
				if len(c.Source) > 64 { // the width of a column, or a header, at the destination
					c.Source = c.Source[:64]
				}
				return f.Sink.Send(ctx, c)
			}
		},
		want: "arrived changed: Source",
		run:  "^Deliver$/^Intact$",
	},
	"drops-raw": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				c := e.Clone()
				c.Raw = nil
				return f.Sink.Send(ctx, c)
			}
		},
		want: "arrived changed: Raw",
		run:  "^Deliver$/^Intact$",
	},
	"drops-trace-context": {
		change: func(f *faulty, _ *sinktest.Instance) {
			// Sends the trace context as transport headers only, which the destination does not
			// keep, and leaves it out of the Metadata it stores.
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				c := e.Clone()
				delete(c.Metadata, fanbridge.MetaTraceparent)
				delete(c.Metadata, fanbridge.MetaTracestate)
				return f.Sink.Send(ctx, c)
			}
		},
		want: "arrived changed: Metadata",
		run:  "^Deliver$/^Intact$",
	},
	"modifies-a-shared-event": {
		change: func(f *faulty, _ *sinktest.Instance) {
			// Records each attempt in the event's own Metadata, under a lock of its own, so no
			// data race gives it away: only the event, changed after Send, does.
			var mu sync.Mutex
			attempts := 0
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				mu.Lock()
				defer mu.Unlock()
				attempts++
				if e.Metadata == nil {
					e.Metadata = make(map[string]string)
				}
				e.Metadata["delivery-attempt"] = strconv.Itoa(attempts)
				return f.Sink.Send(ctx, e)
			}
		},
		want: "Send modified a shared event",
		run:  "^Deliver$/^SharedEvent$",
	},
	"delivers-with-a-done-context": {
		change: func(f *faulty, _ *sinktest.Instance) {
			// Looks at its context only once the write is done.
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				err := f.Sink.Send(context.WithoutCancel(ctx), e)
				if ctx.Err() != nil {
					return fmt.Errorf("faulty: %w", ctx.Err())
				}
				return err
			}
		},
		want: `-0" arrived but was never acknowledged`,
		run:  "^Context$/^Canceled$",
	},
	"hides-the-context-error": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("faulty: send: %v", err) // %v where %w was meant
				}
				return f.Sink.Send(ctx, e)
			}
		},
		want: "want an error wrapping context canceled",
		run:  "^Context$/^Canceled$",
	},
	"send-after-close-is-permanent": {
		change: func(f *faulty, _ *sinktest.Instance) {
			// Takes a closed sink for a failure no retry cures.
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				err := f.Sink.Send(ctx, e)
				if errors.Is(err, sink.ErrClosed) {
					return retry.Permanent(err)
				}
				return err
			}
		},
		want: "is permanent; a closed sink is no fault of the event",
		run:  "^Close$/^KeepsDeliveredThenRejects$",
	},
	"closed-connection-is-permanent": {
		change: func(f *faulty, _ *sinktest.Instance) {
			// Close closes the connection but does not mark the sink closed: the Sends that find
			// the connection gone get its error, which the sink takes for permanent, and only they
			// mark the sink closed, so that later Sends get sink.ErrClosed.
			var closed atomic.Bool
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				if closed.Load() {
					return fmt.Errorf("faulty: %w", sink.ErrClosed)
				}
				err := f.Sink.Send(ctx, e)
				if errors.Is(err, sink.ErrClosed) {
					closed.Store(true)
					return retry.Permanent(errors.New("faulty: use of closed network connection"))
				}
				return err
			}
		},
		want: "Send racing Close = faulty: use of closed network connection",
		run:  "^Close$/^WhileSending$",
	},
	"close-takes-effect-late": {
		change: func(f *faulty, _ *sinktest.Instance) {
			// Spares a lock by looking at the closed flag only every 16384th Send, so thousands of
			// Sends after Close still deliver. The workers of Close/WhileSending make up to two
			// thousand Sends between Close returning and the suite noting that it has (more on a
			// loaded machine), so many of those that deliver began after that; and each worker
			// sends until one fails, so together they reach the check, and the Send after Close at
			// the end of the subtest gets sink.ErrClosed.
			var calls atomic.Int64
			var closing atomic.Bool
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				if calls.Add(1)%16384 == 0 && closing.Load() {
					_ = f.Sink.Close()
				}
				return f.Sink.Send(ctx, e)
			}
			f.closeFn = func() error {
				closing.Store(true)
				return nil
			}
		},
		want: "begun after Close returned, succeeded",
		run:  "^Close$/^WhileSending$",
	},
	"close-rolls-back": {
		change: func(f *faulty, _ *sinktest.Instance) {
			// Writes inside a transaction that readers already see, and aborts it on Close instead
			// of committing it: the destination loses what it held.
			f.closeFn = func() error {
				f.Sink.Reset()
				return f.Sink.Close()
			}
		},
		want: "Close keeps what was delivered",
		run:  "^Deliver$/^Intact$",
	},
	"second-close-fails": {
		change: func(f *faulty, _ *sinktest.Instance) {
			var closed atomic.Bool
			f.closeFn = func() error {
				if closed.Swap(true) {
					return errors.New("faulty: close: use of closed network connection")
				}
				return f.Sink.Close()
			}
		},
		want: "second Close = faulty: close: use of closed network connection",
		run:  "^Close$/^KeepsDeliveredThenRejects$",
	},
	"transient-failure-looks-closed": {
		change: func(f *faulty, _ *sinktest.Instance) {
			// Reports a dropped connection as a closed sink.
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				err := f.Sink.Send(ctx, e)
				if err != nil && !retry.IsPermanent(err) && ctx.Err() == nil {
					return fmt.Errorf("%w: connection lost: %v", sink.ErrClosed, err)
				}
				return err
			}
		},
		want: "a destination failure must not look like a closed sink",
		run:  "^Failure$/^Transient$",
	},
	"resends-an-abandoned-attempt": {
		change: func(f *faulty, _ *sinktest.Instance) {
			// When Send gives up on a destination that does not answer, the attempt goes on and
			// lands once the destination answers, and the sink keeps a copy to send again with
			// the next Send as well: the event arrives twice.
			var mu sync.Mutex
			var kept []*fanbridge.Event
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				mu.Lock()
				again := kept
				kept = nil
				mu.Unlock()
				for _, old := range again {
					_ = f.Sink.Send(context.Background(), old) // the attempt Send gave up on
					_ = f.Sink.Send(context.Background(), old) // the copy sent again
				}
				err := f.Sink.Send(ctx, e)
				if err != nil && ctx.Err() != nil && !errors.Is(err, sink.ErrClosed) {
					mu.Lock()
					kept = append(kept, e.Clone())
					mu.Unlock()
				}
				return err
			}
		},
		want: `-1" arrived 2 times`,
		run:  "^Context$/^Deadline$",
	},
	"batch-retries-on-its-own": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.batch = func(ctx context.Context, events []*fanbridge.Event) error {
				err := f.Sink.SendBatch(ctx, events)
				if err != nil && !retry.IsPermanent(err) && ctx.Err() == nil {
					err = f.Sink.SendBatch(ctx, events)
				}
				return err
			}
		},
		want: "a failing SendBatch of 3 events asked the destination 6 times",
		run:  "^Batch$/^Transient$",
	},
	"batch-error-loses-permanence": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.batch = func(ctx context.Context, events []*fanbridge.Event) error {
				if err := f.Sink.SendBatch(ctx, events); err != nil {
					return fmt.Errorf("faulty: batch of %d: %v", len(events), err) // %v where %w was meant
				}
				return nil
			}
		},
		want: "want a permanent error",
		run:  "^Batch$/^Permanent$",
	},
	"batch-after-close-has-its-own-error": {
		change: func(f *faulty, _ *sinktest.Instance) {
			// Checks for Close itself in the batch path, and answers with an error of its own
			// rather than one wrapping sink.ErrClosed.
			var closed atomic.Bool
			f.batch = func(ctx context.Context, events []*fanbridge.Event) error {
				if closed.Load() {
					return errors.New("faulty: the sink is closed")
				}
				return f.Sink.SendBatch(ctx, events)
			}
			f.closeFn = func() error {
				closed.Store(true)
				return f.Sink.Close()
			}
		},
		want: "want a non-permanent error wrapping sink.ErrClosed",
		run:  "^Batch$/^Closed$",
	},
	"batch-cancellation-is-a-timeout": {
		change: func(f *faulty, _ *sinktest.Instance) {
			// Reports any done context as a timeout, a caller's cancellation included.
			f.batch = func(ctx context.Context, events []*fanbridge.Event) error {
				if ctx.Err() != nil {
					return fmt.Errorf("faulty: batch: %w", context.DeadlineExceeded)
				}
				return f.Sink.SendBatch(ctx, events)
			}
		},
		want: "want a non-permanent error wrapping context.Canceled",
		run:  "^Batch$/^Canceled$",
	},
	"batch-cancels-the-rest-on-failure": {
		change: func(f *faulty, _ *sinktest.Instance) {
			// Stops at the first failed event and reports the others with the error of its own
			// context, canceled to stop them: context.Canceled, though the caller canceled
			// nothing.
			f.batch = func(ctx context.Context, events []*fanbridge.Event) error {
				inner, cancel := context.WithCancel(ctx)
				defer cancel()
				errs := make([]error, len(events))
				failed := false
				for i, e := range events {
					if failed {
						errs[i] = fmt.Errorf("faulty: %w", inner.Err())
						continue
					}
					if errs[i] = f.Sink.Send(inner, e); errs[i] != nil {
						failed = true
						cancel()
					}
				}
				if !failed {
					return nil
				}
				return &sink.BatchError{Errs: errs}
			}
		},
		want: "SendBatch's error for event 1 = faulty: context canceled",
		run:  "^Batch$/^Transient$",
	},
	"batch-error-only-for-events-tried": {
		change: func(f *faulty, _ *sinktest.Instance) {
			// Stops at the first failed event and reports only the events it tried.
			f.batch = func(ctx context.Context, events []*fanbridge.Event) error {
				var errs []error
				for _, e := range events {
					err := f.Sink.Send(ctx, e)
					errs = append(errs, err)
					if err != nil {
						return &sink.BatchError{Errs: errs}
					}
				}
				return nil
			}
		},
		want: "returned a BatchError with 1 errors for 3 events",
		run:  "^Batch$/^Permanent$",
	},
	"batch-stamps-missing-times": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.batch = func(ctx context.Context, events []*fanbridge.Event) error {
				for _, e := range events {
					if e.Time.IsZero() {
						e.Time = time.Now() // on the caller's event, not a copy
					}
				}
				return f.Sink.SendBatch(ctx, events)
			}
		},
		want: "SendBatch modified event 1",
		run:  "^Batch$/^Delivers$",
	},
	"honours-only-its-deadline": {
		change: func(f *faulty, _ *sinktest.Instance) {
			// Drives a client that takes a timeout and no context: it passes on the context's
			// deadline, and so stops at it, but a cancellation does not reach the client.
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("faulty: %w", err)
				}
				timeout := time.Minute
				if dl, ok := ctx.Deadline(); ok {
					timeout = time.Until(dl)
				}
				client, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				return f.Sink.Send(client, e)
			}
		},
		want: "Send canceled while the destination does not answer had not returned",
		run:  "^Context$/^CanceledInFlight$",
	},
	"batch-honours-only-its-deadline": {
		change: func(f *faulty, _ *sinktest.Instance) {
			// As honours-only-its-deadline, for the batch path alone.
			f.batch = func(ctx context.Context, events []*fanbridge.Event) error {
				if err := ctx.Err(); err != nil {
					return f.Sink.SendBatch(ctx, events)
				}
				timeout := time.Minute
				if dl, ok := ctx.Deadline(); ok {
					timeout = time.Until(dl)
				}
				client, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				return f.Sink.SendBatch(client, events)
			}
		},
		want: "SendBatch canceled while the destination does not answer had not returned",
		run:  "^Batch$/^CanceledInFlight$",
	},
	"notes-its-failure-on-the-event": {
		change: func(f *faulty, _ *sinktest.Instance) {
			// Leaves the reason it failed on the event, for whoever looks at it next (the
			// dead-letter queue, it thinks): only a failed Send changes the event.
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				err := f.Sink.Send(ctx, e)
				if err != nil {
					if e.Metadata == nil {
						e.Metadata = make(map[string]string)
					}
					e.Metadata["last-error"] = err.Error()
				}
				return err
			}
		},
		want: "Send to a failing destination modified the event it was given: Metadata changed",
		run:  "^Failure$/^Transient$",
	},
	"notes-a-canceled-send-on-the-event": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				err := f.Sink.Send(ctx, e)
				if err != nil && ctx.Err() != nil {
					e.Time = time.Time{} // marks it as never sent
				}
				return err
			}
		},
		want: "Send with a done context modified the event it was given: Time changed",
		run:  "^Context$/^Canceled$",
	},
	"batch-notes-its-failure-on-the-events": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.batch = func(ctx context.Context, events []*fanbridge.Event) error {
				err := f.Sink.SendBatch(ctx, events)
				for i, e := range events {
					if ev := sink.EventError(err, i); ev != nil {
						e.Metadata = map[string]string{"last-error": ev.Error()}
					}
				}
				return err
			}
		},
		want: "SendBatch to a failing destination modified event 0",
		run:  "^Batch$/^Transient$",
	},
	// A panic in the sink fails the subtest it happens in, with its value and stack, and the
	// run goes on: the test binary does not crash.
	"panics-on-an-event-without-metadata": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				if e.Metadata == nil {
					panic("faulty: no metadata")
				}
				return f.Sink.Send(ctx, e)
			}
		},
		want:    `-minimal") panicked: faulty: no metadata`,
		notWant: "\npanic: ",
		run:     "^Deliver$",
	},
	"panics-in-concurrent-sends": {
		change: func(f *faulty, _ *sinktest.Instance) {
			var n atomic.Int64
			f.send = func(ctx context.Context, e *fanbridge.Event) error {
				if n.Add(1)%5 == 0 {
					var m map[string]string
					m["x"] = "y" // a nil map
				}
				return f.Sink.Send(ctx, e)
			}
		},
		want:    `") panicked: assignment to entry in nil map`,
		notWant: "\npanic: ",
		run:     "^(Deliver|Close)$/^(Concurrent|WhileSending)$",
	},
	"panics-on-close": {
		change: func(f *faulty, _ *sinktest.Instance) {
			f.closeFn = func() error { panic("faulty: close") }
		},
		want:    "closing the sink after the subtest panicked: faulty: close",
		notWant: "\npanic: ",
		run:     "^Deliver$/^Intact$",
	},
	"missing-hook": {
		change: func(_ *faulty, in *sinktest.Instance) { in.Hang = nil },
		want:   "Instance.Hang is nil",
	},
}

const brokenEnv = "SINKTEST_BROKEN_SINK"

// TestBrokenSink runs the suite against one broken sink; it runs only in the child process that
// TestSuiteCatchesBrokenSinks starts, where it is meant to fail.
func TestBrokenSink(t *testing.T) {
	name := os.Getenv(brokenEnv)
	if name == "" {
		t.Skip("runs only as a child of TestSuiteCatchesBrokenSinks")
	}
	b, ok := brokenSinks[name]
	require.True(t, ok, "unknown broken sink %q", name)
	if b.run != "" && !b.fullDeadlines {
		defer sinktest.SetDeadlines(2*time.Second, time.Second)()
	}
	sinktest.Run(t, harnessFor(b.change))
}

func TestSuiteCatchesBrokenSinks(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("inside a child process")
	}
	for name, b := range brokenSinks {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			run := "^TestBrokenSink$"
			if b.run != "" {
				run += "/" + b.run
			}
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run="+run, "-test.count=1")
			cmd.Env = append(os.Environ(), brokenEnv+"="+name)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "the suite passed a broken sink:\n%s", out)
			assert.Contains(t, string(out), b.want)
			if b.notWant != "" {
				assert.NotContains(t, "\n"+string(out), b.notWant)
			}
		})
	}
}

// TestSoundSinkPasses is the control: the same harness without a fault passes.
func TestSoundSinkPasses(t *testing.T) {
	sinktest.Run(t, harnessFor(nil))
}

// TestAbandonedAttemptsMayLandLate is the control of the check for late arrivals: an attempt a
// Send gave up on, against a destination that did not answer, may still land before Close
// returns.
func TestAbandonedAttemptsMayLandLate(t *testing.T) {
	sinktest.Run(t, harnessFor(completesAbandonedAttempts))
}

func TestSinkWithoutOptionalFeatures(t *testing.T) {
	// A sink that is only a function: no read-back, no Close, no Batch. The suite still checks
	// what Send returns.
	m := memsink.New()
	sinktest.Run(t, sinktest.Harness{
		Open: func(testing.TB) sinktest.Instance {
			return sinktest.Instance{Sink: sink.Func(m.Send)}
		},
	})
}
