package kafkadlq_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/sink"
)

// placement is where the records of one entry ID lie.
type placement struct {
	entry    int32
	removals []int32
	last     map[int32]int64 // offset of the last removal on each partition
}

// placementsOf reads want records and says where the entries and removals of each ID lie.
func placementsOf(t *testing.T, ctx context.Context, cl *kgo.Client, want int) map[string]*placement {
	t.Helper()
	out := map[string]*placement{}
	for _, r := range consumeAll(t, ctx, cl, want) {
		h := headers(r)
		pl := out[h["dlq.id"]]
		if pl == nil {
			pl = &placement{entry: -1, last: map[int32]int64{}}
			out[h["dlq.id"]] = pl
		}
		if h["dlq.op"] == "remove" {
			pl.removals = append(pl.removals, r.Partition)
			pl.last[r.Partition] = max(pl.last[r.Partition], r.Offset)
		} else {
			pl.entry = r.Partition
		}
	}
	return out
}

// Retention trims each partition on its own. A removal on another partition than its entry could
// go first and bring a redriven entry back, to be redriven again; on the entry's own partition,
// after the entry, it cannot. Entries of one event share a partition, while their IDs hash
// elsewhere; and the queue's client may place records any way it likes: every partition gets one.
func TestRemovalsLandOnTheirEntrysPartition(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []kgo.Opt
	}{
		{"default-partitioner", nil},
		{"round-robin", []kgo.Opt{kgo.RecordPartitioner(kgo.RoundRobinPartitioner())}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testRemovalsLandOnTheirEntrysPartition(t, tc.opts...)
		})
	}
}

func testRemovalsLandOnTheirEntrysPartition(t *testing.T, opts ...kgo.Opt) {
	const n = 12
	ctx := testCtx(t)
	_, cl := cluster(t, 3, opts...)
	q := newQueue(t, cl)
	var ids []string
	for i := range n {
		e := sampleEntry(t, fmt.Sprintf("r%02d", i))
		require.NoError(t, q.Put(ctx, e))
		ids = append(ids, e.ID)
	}

	// A redrive lists the entries, sends them and removes them.
	var sent int
	ok := sink.Func(func(context.Context, *fanbridge.Event) error { sent++; return nil })
	rep, err := dlq.Redrive(ctx, q, map[string]sink.Sink{"kafka-crm": ok}, nil, dlq.WithDeleteBatch(5))
	require.NoError(t, err)
	require.Equal(t, n, rep.Removed)

	where := placementsOf(t, ctx, cl, n+3*n)
	require.Len(t, where, n)
	for id, pl := range where {
		assert.ElementsMatch(t, []int32{0, 1, 2}, pl.removals, "entry %s: a removal on every partition", id)
	}

	// Retention deletes every partition that holds a removal up to and including it.
	adm := kadm.NewClient(cl)
	through := map[int32]int64{}
	for _, pl := range where {
		for p, off := range pl.last {
			through[p] = max(through[p], off+1)
		}
	}
	for p, at := range through {
		trim(t, ctx, adm, p, at)
	}
	rep, err = dlq.Redrive(ctx, q, map[string]sink.Sink{"kafka-crm": ok}, nil)
	require.NoError(t, err)
	assert.Zero(t, rep.Selected, "a removed entry came back")
	assert.Equal(t, n, sent)
	for _, id := range ids {
		_, err := q.Get(ctx, id)
		assert.ErrorIs(t, err, dlq.ErrNotFound, id)
	}
}

// A queue that has not read an entry does not know its partition: the removal goes to every
// partition, so the entry's own holds one after it whichever that is.
func TestRemovalOfAnUnreadEntryGoesToEveryPartition(t *testing.T) {
	ctx := testCtx(t)
	_, cl := cluster(t, 3)
	require.NoError(t, newQueue(t, cl).Put(ctx, sampleEntry(t, "unread")))
	fresh := newQueue(t, cl)
	require.NoError(t, fresh.Delete(ctx, "unread"))

	pl := placementsOf(t, ctx, cl, 4)["unread"]
	require.NotNil(t, pl)
	assert.ElementsMatch(t, []int32{0, 1, 2}, pl.removals)

	// Retention empties every other partition; the entry's own keeps its removal.
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	require.NoError(t, err)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Partition != pl.entry {
			trim(t, ctx, adm, o.Partition, o.Offset)
		}
	})
	_, err = fresh.Get(ctx, "unread")
	assert.ErrorIs(t, err, dlq.ErrNotFound)
}

// An ID can have entries on two partitions: a Put retried after an unclear failure lands where
// the client's partitioner puts it. A Delete after a read that saw only one of them must still
// leave a removal after each, or retention trimming the one partition brings the other back.
func TestRemovalCoversACopyNoReadSaw(t *testing.T) {
	ctx := testCtx(t)
	_, cl := cluster(t, 2, kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	q := newQueue(t, cl)
	require.NoError(t, q.Put(ctx, sampleEntry(t, "x")))
	var listed int
	require.NoError(t, q.List(ctx, func(dlq.Entry) error { listed++; return nil }))
	require.Equal(t, 1, listed)
	first := placementsOf(t, ctx, cl, 1)["x"].entry
	require.NoError(t, q.Put(ctx, sampleEntry(t, "x")), "the retry, on the other partition")
	require.NoError(t, q.Delete(ctx, "x"))

	pl := placementsOf(t, ctx, cl, 4)["x"]
	require.NotNil(t, pl)
	require.ElementsMatch(t, []int32{0, 1}, pl.removals)
	// Retention empties the first copy's partition, removal included.
	trim(t, ctx, kadm.NewClient(cl), first, pl.last[first]+1)
	_, err := q.Get(ctx, "x")
	assert.ErrorIs(t, err, dlq.ErrNotFound, "the copy on the other partition came back")
}
