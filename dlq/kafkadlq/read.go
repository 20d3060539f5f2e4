package kafkadlq

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fanbridge/fanbridge/dlq"
)

// readerOpts returns the options of a client that reads the topic: the connection options of the
// queue's client (brokers, TLS, SASL, dialer, hooks) without its producer, consumer and group
// options, then the options given with WithReadOpts, then those of the scan.
func (q *Queue) readerOpts(extra ...kgo.Opt) []kgo.Opt {
	var opts []kgo.Opt
	for _, o := range q.client.Opts() {
		switch o.(type) {
		case kgo.ProducerOpt, kgo.ConsumerOpt, kgo.GroupOpt:
			continue
		}
		opts = append(opts, o)
	}
	opts = append(opts, q.cfg.readOpts...)
	return append(opts, extra...)
}

// Listing offsets asks each partition's leader, as the client last knew it. After a leader moved
// (an election, a broker restarted or removed) an ask can meet the old leader, which answers with
// a retriable error such as NOT_LEADER_FOR_PARTITION, and the client refreshes its metadata for
// the next. offsets therefore asks again, waiting offsetsBackoff before the first retry and twice
// as long before each next one, up to offsetsMaxBackoff, for as long as offsetsBudget from the
// first failure allows. Until a failure the asks run within ctx and offsetsLimit alone: a broker
// that answers slowly but well is waited for.
//
// The first failure is the first retriable error an ask returns, or the first failure the
// listing's client meets on its own inside an ask (firstFailure): a dial that failed or timed out,
// a request it could not write, an answer it could not read, a broker that let the client's read
// deadline pass among them. franz-go retries those within the ask for up to its kgo.RetryTimeout,
// which would otherwise keep a read of an unreachable cluster waiting until ctx ends.
// offsetsLimit bounds the whole listing, for what no failure ends: a dial that never ends (a
// kgo.Dialer without a timeout, into a network that drops packets).
//
// The asks go through a client of the listing's own, which never sends a ListOffsets again by
// itself: franz-go would otherwise retry NOT_LEADER_FOR_PARTITION inside one ask for up to its
// kgo.RetryTimeout (30 s by default) too.
const (
	offsetsBudget     = 2500 * time.Millisecond
	offsetsBackoff    = 20 * time.Millisecond
	offsetsMaxBackoff = time.Second
)

// offsetsLimit is how long a listing of offsets may take at most; a variable for the tests.
var offsetsLimit = 30 * time.Second

// A scan fails when, once the offsets showed records to read, it reads none of them for a whole
// stall window: franz-go retries on its own, and never reports, a broker that drops the
// connection at each fetch or answers with a retriable error (a leader that moved or restarts, a
// storage error), so without a bound such a scan would wait until ctx ends. Only a record the
// scan wants counts: records written after it began, in partitions it finished, do not. The
// window is what one fetch may take under the reading client's own timeouts (a dial, then
// kgo.FetchMaxWait and kgo.RequestTimeoutOverhead for the answer), plus stallMargin: a healthy
// but slow fetch, whose answer the client itself would wait for, is waited for too.
const stallMargin = 5 * time.Second

// scanStallLimit, when set, replaces the window; a variable for the tests.
var scanStallLimit time.Duration

// stallWindow returns the stall window of a scan reading through cl.
func stallWindow(cl *kgo.Client) time.Duration {
	if scanStallLimit > 0 {
		return scanStallLimit
	}
	opt := func(o any) time.Duration {
		d, _ := cl.OptValue(o).(time.Duration)
		return max(d, 0)
	}
	return opt(kgo.DialTimeout) + opt(kgo.FetchMaxWait) + opt(kgo.RequestTimeoutOverhead) + stallMargin
}

// errScanStalled is the cause of the end of a fetch's context at the stall window.
var errScanStalled = errors.New("kafkadlq: read: the scan read nothing in its stall window")

// The causes of the end of a listing's context other than the caller's.
var (
	errBudgetSpent  = errors.New("kafkadlq: listing offsets: budget spent")
	errListingLimit = errors.New("kafkadlq: listing offsets: limit reached")
)

// firstFailure records the first failure of a listing: a kgo hook on the listing's client for the
// failures it meets on its own, and note for the errors its asks return.
type firstFailure struct {
	mu  sync.Mutex
	at  time.Time     // when it came
	err error         // the failure, nil until one came
	met chan struct{} // closed at the first failure
	// done is that of the listing's context: what fails once it ended, because it ended, is
	// not noted.
	done <-chan struct{}
}

func newFirstFailure(done <-chan struct{}) *firstFailure {
	return &firstFailure{met: make(chan struct{}), done: done}
}

// note records err as the first failure unless one was recorded, the listing's context ended, or
// err is nil.
func (f *firstFailure) note(err error) {
	if err == nil {
		return
	}
	select {
	case <-f.done:
		return
	default:
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.at, f.err = time.Now(), err
		close(f.met)
	}
}

// first returns the first failure and when it came; a nil error before one came.
func (f *firstFailure) first() (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.at, f.err
}

// OnBrokerConnect implements kgo.HookBrokerConnect: a dial that failed or timed out.
func (f *firstFailure) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	f.note(err)
}

// OnBrokerWrite implements kgo.HookBrokerWrite: a request that could not be written.
func (f *firstFailure) OnBrokerWrite(_ kgo.BrokerMetadata, _ int16, _ int, _, _ time.Duration, err error) {
	f.note(err)
}

// OnBrokerRead implements kgo.HookBrokerRead: an answer that could not be read, a broker that
// closed the connection or did not answer before the client's read deadline among them.
func (f *firstFailure) OnBrokerRead(_ kgo.BrokerMetadata, _ int16, _ int, _, _ time.Duration, err error) {
	f.note(err)
}

// offsets lists the start and end offsets of the topic's partitions. It asks again while every
// error met is retriable (see listOffsets), within offsetsBudget from the first failure (see
// firstFailure), offsetsLimit and ctx, and otherwise fails with the first error of the last ask.
func (q *Queue) offsets(ctx context.Context) (starts, ends kadm.ListedOffsets, err error) {
	// Every ask runs within lctx, which ends with ctx, at offsetsLimit, or offsetsBudget after
	// the first failure.
	limited, limitCancel := context.WithTimeoutCause(ctx, offsetsLimit, errListingLimit)
	defer limitCancel()
	lctx, lcancel := context.WithCancelCause(limited)
	defer lcancel(nil)
	failure := newFirstFailure(lctx.Done())
	cl, err := kgo.NewClient(q.readerOpts(q.listerRetryTimeout(), kgo.WithHooks(failure))...)
	if err != nil {
		return nil, nil, fmt.Errorf("kafkadlq: read: new client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	go func() {
		select {
		case <-failure.met:
		case <-lctx.Done():
			return
		}
		at, _ := failure.first()
		timer := time.NewTimer(time.Until(at.Add(offsetsBudget)))
		defer timer.Stop()
		select {
		case <-timer.C:
			lcancel(errBudgetSpent)
		case <-lctx.Done():
		}
	}()
	// stopped says that the budget or the limit, not ctx, ended lctx.
	stopped := func() bool { return lctx.Err() != nil && ctx.Err() == nil }
	// spent is the error of a listing the budget or the limit stopped after try asks, the last
	// failing with err.
	spent := func(try int, err error) error {
		if _, ferr := failure.first(); ferr == nil && context.Cause(lctx) == errListingLimit {
			return classify("read", fmt.Errorf("listing offsets: asked %s, no answer within %v", times(try), offsetsLimit))
		}
		return classify("read", fmt.Errorf("listing offsets: asked %s within %v of the first failure, still failing: %w", times(try), offsetsBudget, err))
	}

	var last error // the last error an ask gave, not the end of lctx
	// met is what an ask that failed with err met: err, unless the caller's context cut it
	// short, and then what the asks, or the client inside the first one, met before.
	met := func(err, last error) error {
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			return err
		}
		if last != nil {
			return last
		}
		if _, f := failure.first(); f != nil {
			return f
		}
		return err
	}
	wait := offsetsBackoff
	for try := 1; ; try++ {
		var retriable bool
		starts, ends, retriable, err = q.askWithin(lctx, adm)
		if err == nil {
			return starts, ends, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, nil, fmt.Errorf("kafkadlq: read: listing offsets: %w (asked %s, the last time failing with %v)", cerr, times(try), met(err, last))
		}
		if stopped() && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
			// lctx cut this ask short, the broker not having answered it: what the asks, or the
			// client inside the first one, met before is the cause.
			cause := last
			if cause == nil {
				_, cause = failure.first()
			}
			return nil, nil, spent(try, cause)
		}
		if !retriable {
			return nil, nil, classify("read", fmt.Errorf("listing offsets: %w", err))
		}
		failure.note(err)
		last = err
		if at, _ := failure.first(); stopped() || time.Until(at.Add(offsetsBudget)) <= wait {
			// No time left for a wait and another ask.
			return nil, nil, spent(try, err)
		}
		timer := time.NewTimer(wait)
		select {
		case <-lctx.Done():
			timer.Stop()
			if cerr := ctx.Err(); cerr != nil {
				return nil, nil, fmt.Errorf("kafkadlq: read: listing offsets: %w (asked %s, the last time failing with %v)", cerr, times(try), met(err, last))
			}
			return nil, nil, spent(try, err)
		case <-timer.C:
		}
		wait = min(2*wait, offsetsMaxBackoff)
	}
}

// listerRetryTimeout keeps the retry timeouts of the queue's client for every request but
// ListOffsets, which the client is not to send again by itself: a timeout shorter than any wait
// before a retry ends its tries at the first failure (zero would mean no limit).
func (q *Queue) listerRetryTimeout() kgo.Opt {
	inherited, _ := q.client.OptValue(kgo.RetryTimeoutFn).(func(int16) time.Duration)
	return kgo.RetryTimeoutFn(func(key int16) time.Duration {
		switch {
		case key == kmsg.ListOffsets.Int16():
			return time.Nanosecond
		case inherited != nil:
			return inherited(key)
		}
		return 30 * time.Second // franz-go's default for the requests a lister sends
	})
}

// times says n times in words: "once", "8 times".
func times(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

// askWithin is listOffsets, returning with ctx's error when ctx ends first. The client does not
// always return then: a connection it is opening waits for the broker's first answer until its
// read deadline (kgo.RequestTimeoutOverhead), whatever the context of the request. That ask is
// left to end on its own, failing at the latest when its deadline passes or when the listing's
// client closes.
func (q *Queue) askWithin(ctx context.Context, adm *kadm.Client) (starts, ends kadm.ListedOffsets, retriable bool, err error) {
	type answer struct {
		starts, ends kadm.ListedOffsets
		retriable    bool
		err          error
	}
	answered := make(chan answer, 1)
	go func() {
		var a answer
		a.starts, a.ends, a.retriable, a.err = q.listOffsets(ctx, adm)
		answered <- a
	}()
	select {
	case a := <-answered:
		return a.starts, a.ends, a.retriable, a.err
	case <-ctx.Done():
		return nil, nil, false, ctx.Err()
	}
}

// listOffsets asks once for the start and end offsets of the topic's partitions. It returns the
// first error of the requests or of a partition, and whether every error met is retriable: one
// kerr.IsRetriable calls so, other than an unknown topic, which is final here as for Put, or a
// broken connection, which franz-go would have retried (kgo.IsRetryableBrokerErr).
func (q *Queue) listOffsets(ctx context.Context, adm *kadm.Client) (starts, ends kadm.ListedOffsets, retriable bool, err error) {
	retriable = true
	note := func(e error) {
		if e == nil {
			return
		}
		if err == nil {
			err = e
		}
		if !(kerr.IsRetriable(e) || kgo.IsRetryableBrokerErr(e)) || errors.Is(e, kerr.UnknownTopicOrPartition) {
			retriable = false
		}
	}
	list := func(f func(context.Context, ...string) (kadm.ListedOffsets, error)) kadm.ListedOffsets {
		ls, lerr := f(ctx, q.topic)
		note(lerr)
		ls.Each(func(o kadm.ListedOffset) { note(o.Err) })
		return ls
	}
	if starts = list(adm.ListStartOffsets); err == nil {
		ends = list(adm.ListEndOffsets)
	}
	return starts, ends, retriable, err
}

// scan reads every record that was in the topic when it started, calling fn with each decoded
// record; records that are not entries are reported and skipped. fn's error stops the scan and is
// returned as it is.
func (q *Queue) scan(ctx context.Context, fn func(decoded) error) error {
	starts, ends, err := q.offsets(ctx)
	if err != nil {
		return err
	}
	from := map[int32]kgo.Offset{}
	until := map[int32]int64{} // end offset of each partition with records to read
	next := map[int32]int64{}  // offset after the last one read, of each partition in until
	ends.Each(func(o kadm.ListedOffset) {
		start, ok := starts.Lookup(o.Topic, o.Partition)
		if ok && o.Offset > start.Offset {
			from[o.Partition] = kgo.NewOffset().At(start.Offset)
			until[o.Partition] = o.Offset
			next[o.Partition] = start.Offset
		}
	})
	if len(until) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(q.readerOpts(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{q.topic: from}),
		// Control records (transaction markers) are kept so that every offset up to the end is
		// seen, and then skipped.
		kgo.KeepControlRecords(),
		// Retention may delete records the scan has not read yet. The client would move to the
		// new start on its own, and wait there for ever when nothing is left before the end the
		// scan waits for; without a reset it reports the deletion, and resume decides.
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
	)...)
	if err != nil {
		return fmt.Errorf("kafkadlq: read: new client: %w", err)
	}
	defer cl.Close()
	window := stallWindow(cl)
	progress := time.Now() // when the scan last read a record it wants, or began
	var finished []int32   // partitions read to their end, to pause
	for len(until) > 0 {
		pctx, cancel := context.WithDeadlineCause(ctx, progress.Add(window), errScanStalled)
		fetches := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("kafkadlq: read: %w", err)
		}
		var trimmed []int32
		for _, fe := range fetches.Errors() {
			if errors.Is(fe.Err, context.Canceled) || errors.Is(fe.Err, context.DeadlineExceeded) {
				if context.Cause(pctx) == errScanStalled {
					// Unmarked, so retryable: the cluster may answer again.
					return fmt.Errorf("kafkadlq: read: the offsets showed records to read, and no fetch brought any for %s (brokers unreachable, or a partition whose leader does not serve it): %w",
						window, fe.Err)
				}
				return fmt.Errorf("kafkadlq: read: %w", fe.Err)
			}
			if errors.Is(fe.Err, kerr.OffsetOutOfRange) && fe.Topic == q.topic {
				if _, want := until[fe.Partition]; want {
					trimmed = append(trimmed, fe.Partition)
				}
				continue
			}
			return classify("read", fe.Err)
		}
		var stop error
		read := false
		fetches.EachRecord(func(r *kgo.Record) {
			end, want := until[r.Partition]
			if stop != nil || !want {
				return
			}
			read = true
			if r.Offset >= end {
				// The record at end-1 is gone (a compacted or aborted tail): what follows was
				// written after the scan began.
				delete(until, r.Partition)
				finished = append(finished, r.Partition)
				return
			}
			next[r.Partition] = r.Offset + 1
			if r.Offset+1 >= end {
				delete(until, r.Partition)
				finished = append(finished, r.Partition)
			}
			if r.Attrs.IsControl() {
				return
			}
			d, err := decode(r)
			if err != nil {
				q.report(Damage{Partition: r.Partition, Offset: r.Offset, Err: err})
				return
			}
			d.partition = r.Partition
			stop = fn(d)
		})
		if stop != nil {
			return stop
		}
		if len(finished) > 0 {
			// Records written after the scan began are not waited for, nor fetched.
			cl.PauseFetchPartitions(map[string][]int32{q.topic: finished})
			finished = finished[:0]
		}
		if len(trimmed) > 0 {
			if err := q.resume(ctx, cl, trimmed, next, until); err != nil {
				return err
			}
			read = true
		}
		if read {
			progress = time.Now()
		}
	}
	return nil
}

// resume continues reading the partitions whose next offset retention deleted: at the new start
// offset, or not at all when nothing is left before the end the scan reads to. A partition whose
// end fell below the scan's end lost records; the scan then ends there.
func (q *Queue) resume(ctx context.Context, cl *kgo.Client, parts []int32, next, until map[int32]int64) error {
	starts, ends, err := q.offsets(ctx)
	if err != nil {
		return err
	}
	set := map[int32]kgo.EpochOffset{}
	var done []int32
	for _, p := range parts {
		start, ok1 := starts.Lookup(q.topic, p)
		end, ok2 := ends.Lookup(q.topic, p)
		if !ok1 || !ok2 {
			return classify("read", fmt.Errorf("partition %d: %w", p, kerr.UnknownTopicOrPartition))
		}
		limit := min(until[p], end.Offset)
		at := max(start.Offset, next[p])
		if at >= limit {
			delete(until, p)
			done = append(done, p)
			continue
		}
		until[p], next[p] = limit, at
		set[p] = kgo.EpochOffset{Epoch: -1, Offset: at}
	}
	if len(done) > 0 {
		// Without a reset the client would keep asking for the deleted offset.
		cl.PauseFetchPartitions(map[string][]int32{q.topic: done})
	}
	if len(set) > 0 {
		cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{q.topic: set})
	}
	return nil
}

// removed returns the IDs of the entries removed by removal records.
func (q *Queue) removed(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	err := q.scan(ctx, func(d decoded) error {
		if d.removes != "" {
			out[d.removes] = true
		}
		return nil
	})
	return out, err
}

// List calls fn with each entry of the topic that has not been removed: within a partition in the
// order they were written, partitions interleaved. It reads the topic twice: once for the removal
// records, once for the entries, up to the end the topic had when each pass began.
func (q *Queue) List(ctx context.Context, fn func(dlq.Entry) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kafkadlq: list: %w", err)
	}
	removed, err := q.removed(ctx)
	if err != nil {
		return err
	}
	return q.scan(ctx, func(d decoded) error {
		if d.removes != "" || removed[d.entry.ID] {
			return nil
		}
		return fn(d.entry)
	})
}

// Get returns the entry with the given ID, unless a removal record removed it, reading the whole
// topic once.
func (q *Queue) Get(ctx context.Context, id string) (dlq.Entry, error) {
	if err := ctx.Err(); err != nil {
		return dlq.Entry{}, fmt.Errorf("kafkadlq: get: %w", err)
	}
	var (
		found    dlq.Entry
		ok, gone bool
	)
	err := q.scan(ctx, func(d decoded) error {
		switch {
		case d.removes == id:
			gone = true
		case d.removes == "" && d.entry.ID == id:
			if !ok {
				found, ok = d.entry, true
			}
		}
		return nil
	})
	switch {
	case err != nil:
		return dlq.Entry{}, err
	case !ok || gone:
		return dlq.Entry{}, fmt.Errorf("kafkadlq: get %q: %w", id, dlq.ErrNotFound)
	}
	return found, nil
}
