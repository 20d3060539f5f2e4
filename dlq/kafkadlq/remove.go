package kafkadlq

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge/dlq"
)

// maxPlacements bounds how many entries' partitions a Queue remembers, a few MiB of IDs. An
// entry it forgot gets its removal on every partition instead, which costs records, not
// correctness.
const maxPlacements = 1 << 16

// removalGrace is how long the client of a Delete whose context ended keeps trying to write its
// removals before it is closed.
const removalGrace = 30 * time.Second

// placements remembers on which partitions the entries that reads returned lie, so that their
// removals can be written there.
type placements struct {
	mu sync.Mutex
	m  map[string][]int32
}

func (pl *placements) remember(id string, p int32) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if ps, ok := pl.m[id]; ok {
		if !slices.Contains(ps, p) {
			pl.m[id] = append(ps, p)
		}
		return
	}
	if pl.m == nil {
		pl.m = map[string][]int32{}
	}
	if len(pl.m) >= maxPlacements {
		for k := range pl.m { // any one: forgetting costs only extra removal records
			delete(pl.m, k)
			break
		}
	}
	pl.m[id] = []int32{p}
}

// lookup returns the partitions known to hold entries with the ID, nil when none is known.
func (pl *placements) lookup(id string) []int32 {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return slices.Clone(pl.m[id])
}

func (pl *placements) forget(ids []string) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for _, id := range ids {
		delete(pl.m, id)
	}
}

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
// Each removal goes to the partition of the entry it removes, after that entry, so that retention,
// which trims each partition on its own, cannot delete the removal and keep the entry: a delivered
// entry would come back and be redriven again. Where an entry lies is known from the List or Get
// that returned it (the Queue remembers that for up to 65,536 entries at a time); the removal of
// an ID the Queue has not read, or has forgotten, is written to every partition.
//
// Delete writes through a short-lived client of its own, which places records by partition
// whatever the partitioner of the queue's client; it is closed when the queue's client is, which
// fails a Delete still waiting with an error wrapping dlq.ErrClosed. When ctx ends first, Delete
// returns an error wrapping ctx's error, and the removals may still be written.
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

	var every []int32 // every partition of the topic, for IDs whose entries were not read
	recs := make([]*kgo.Record, 0, len(ids))
	for _, id := range ids {
		parts := q.placed.lookup(id)
		if parts == nil {
			if every == nil {
				if every, err = q.allPartitions(ctx, w); err != nil {
					return err
				}
			}
			parts = every
		}
		for _, p := range parts {
			r := removal(q.topic, id)
			r.Partition = p
			recs = append(recs, r)
		}
	}
	if err := q.produce(ctx, w, "delete", recs...); err != nil {
		return err
	}
	q.placed.forget(ids)
	return nil
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
