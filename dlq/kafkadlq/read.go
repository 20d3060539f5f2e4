package kafkadlq

import (
	"context"
	"errors"
	"fmt"
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
// first retriable error allows; the asks after that error run within the budget too. The first
// ask runs within ctx alone: a broker that answers slowly but well is waited for.
//
// The asks go through a client of the listing's own, which never sends a ListOffsets again by
// itself: franz-go would otherwise retry NOT_LEADER_FOR_PARTITION inside one ask for up to its
// kgo.RetryTimeout (30 s by default), and the first ask, which no budget bounds, with it.
const (
	offsetsBudget     = 2500 * time.Millisecond
	offsetsBackoff    = 20 * time.Millisecond
	offsetsMaxBackoff = time.Second
)

// offsets lists the start and end offsets of the topic's partitions. It asks again while every
// error met is retriable (see listOffsets), within offsetsBudget from the first such error and
// within ctx, and otherwise fails with the first error of the last ask.
func (q *Queue) offsets(ctx context.Context) (starts, ends kadm.ListedOffsets, err error) {
	cl, err := kgo.NewClient(q.readerOpts(q.listerRetryTimeout())...)
	if err != nil {
		return nil, nil, fmt.Errorf("kafkadlq: read: new client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var (
		deadline time.Time // the budget's end, once an ask failed
		last     error     // the last error a broker or the client gave, not the budget's end
	)
	wait := offsetsBackoff
	for try := 1; ; try++ {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if last != nil {
			actx, cancel = context.WithDeadline(ctx, deadline)
		}
		var retriable bool
		starts, ends, retriable, err = q.listOffsets(actx, adm)
		budgetSpent := last != nil && actx.Err() != nil
		cancel()
		if err == nil {
			return starts, ends, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, nil, fmt.Errorf("kafkadlq: read: listing offsets: %w (asked %s, the last time failing with %v)", cerr, times(try), err)
		}
		if budgetSpent && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
			// The budget cut this ask short, the broker not having answered it: what the asks
			// met before is the cause.
			return nil, nil, classify("read", fmt.Errorf("listing offsets: asked %s within %v of the first failure, the last unanswered, still failing: %w", times(try), offsetsBudget, last))
		}
		if !retriable {
			return nil, nil, classify("read", fmt.Errorf("listing offsets: %w", err))
		}
		if last == nil {
			deadline = time.Now().Add(offsetsBudget)
		}
		last = err
		if budgetSpent || time.Until(deadline) <= wait {
			// No time left for a wait and another ask.
			return nil, nil, classify("read", fmt.Errorf("listing offsets: asked %s within %v of the first failure, still failing: %w", times(try), offsetsBudget, err))
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, nil, fmt.Errorf("kafkadlq: read: listing offsets: %w (asked %s, the last time failing with %v)", ctx.Err(), times(try), err)
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
	for len(until) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("kafkadlq: read: %w", err)
		}
		var trimmed []int32
		for _, fe := range fetches.Errors() {
			if errors.Is(fe.Err, context.Canceled) || errors.Is(fe.Err, context.DeadlineExceeded) {
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
		fetches.EachRecord(func(r *kgo.Record) {
			end, want := until[r.Partition]
			if stop != nil || !want {
				return
			}
			if r.Offset >= end {
				// The record at end-1 is gone (a compacted or aborted tail): what follows was
				// written after the scan began.
				delete(until, r.Partition)
				return
			}
			next[r.Partition] = r.Offset + 1
			if r.Offset+1 >= end {
				delete(until, r.Partition)
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
		if len(trimmed) > 0 {
			if err := q.resume(ctx, cl, trimmed, next, until); err != nil {
				return err
			}
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
