package kafkadlq

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge/dlq"
)

// removalGrace is how long the client of a Delete whose context ended keeps trying to write its
// removals before it is closed.
const removalGrace = 30 * time.Second

// writerOpts returns the options of the client a Delete writes its removals with: the connection
// options of the queue's client, those given with WithReadOpts, and then a partitioner that keeps
// the partition each removal names. Removals are idempotent, so the writer need not be: a retry
// that writes one twice changes nothing, and the writer skips the producer ID round trip.
func (q *Queue) writerOpts() []kgo.Opt {
	return q.readerOpts(
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.DisableIdempotentWrite(),
	)
}

// Delete appends removal records for the IDs (key: the ID, no value, headers dlq.v, dlq.op=remove
// and dlq.id) and returns once the broker has acknowledged them from every in-sync replica. A
// removal hides every entry with its ID from List and Get; the records themselves stay until the
// topic's retention removes them.
//
// Each removal is written to every partition of the topic, so that each partition holding an entry
// with the ID holds a removal after it: retention, which trims each partition on its own, then
// cannot delete a removal and keep its entry, which would come back to be redriven again. An ID
// can have entries on several partitions (a Put retried after an unclear failure, with a
// partitioner that spreads records or after the topic gained partitions), and no reader can know
// them all, so every partition gets one. A Delete of n IDs thus writes n removal records per
// partition, each the size of its headers.
//
// Delete writes through a short-lived client of its own, which places records by partition
// whatever the partitioner of the queue's client; it is closed when the queue's client is, which
// fails a Delete still waiting with an error wrapping dlq.ErrClosed. Removals go to it as its
// buffer has room for them. When ctx ends first, Delete returns an error wrapping ctx's error, and
// the removals it has handed to the writer may still be written; when it had handed over none, the
// error also wraps ErrBufferFull.
func (q *Queue) Delete(ctx context.Context, ids ...string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kafkadlq: delete: %w", err)
	}
	ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool {
		return dlq.CheckID(id) != nil // an invalid ID names no entry
	})
	if len(ids) == 0 {
		return nil
	}
	if q.client.Context().Err() != nil {
		return classify("delete", kgo.ErrClientClosed)
	}
	w, err := kgo.NewClient(q.writerOpts()...)
	if err != nil {
		return fmt.Errorf("kafkadlq: delete: new client: %w", err)
	}
	stop := context.AfterFunc(q.client.Context(), w.Close)
	defer func() {
		if ctx.Err() == nil {
			if stop() {
				w.Close()
			}
			return
		}
		// The removals may still be on their way: give them time, in the background.
		go func() {
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removalGrace)
			defer cancel()
			_ = w.Flush(fctx)
			if stop() {
				w.Close()
			}
		}()
	}()

	every, err := q.allPartitions(ctx, w)
	if err != nil {
		return err
	}
	recs := make([]*kgo.Record, 0, len(ids)*len(every))
	for _, id := range ids {
		for _, p := range every {
			r := removal(q.topic, id)
			r.Partition = p
			recs = append(recs, r)
		}
	}
	// The writer is this Delete's alone, and so are the tokens bounding what it buffers.
	return q.produce(ctx, w, make(chan struct{}, bufferSize(w)), "delete", recs...)
}

// allPartitions returns the partitions of the topic, asking through the writer, whose metadata is
// the freshest at hand.
func (q *Queue) allPartitions(ctx context.Context, w *kgo.Client) ([]int32, error) {
	tds, err := kadm.NewClient(w).ListTopics(ctx, q.topic)
	if err == nil {
		err = tds.Error()
	}
	if err != nil {
		return nil, classify("delete", err)
	}
	td, ok := tds[q.topic]
	if !ok || len(td.Partitions) == 0 {
		return nil, classify("delete", fmt.Errorf("topic %q has no partitions", q.topic))
	}
	return td.Partitions.Numbers(), nil
}
