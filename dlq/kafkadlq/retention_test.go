package kafkadlq_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fanbridge/fanbridge/dlq"
)

// trim deletes the records of partition p below offset at, as retention does.
func trim(t *testing.T, ctx context.Context, adm *kadm.Client, p int32, at int64) {
	t.Helper()
	os := kadm.Offsets{}
	os.Add(kadm.Offset{Topic: topic, Partition: p, At: at})
	res, err := adm.DeleteRecords(ctx, os)
	require.NoError(t, err)
	require.NoError(t, res.Error())
}

// Retention that deletes records after a read listed the offsets but before it fetched them must
// not leave the read waiting for records that will never come: it reads what is left.
func TestReadsEndWhenRetentionDeletesWhatTheyWereAboutToRead(t *testing.T) {
	for _, tc := range []struct {
		name string
		put  int   // entries e0, e1, ... on the one partition
		trim int64 // offset below which retention deletes
		left []string
	}{
		{"everything", 1, 1, nil},
		{"everything-of-several", 3, 3, nil},
		{"a-prefix", 3, 2, []string{"e2"}},
	} {
		for _, read := range []string{"List", "Get"} {
			t.Run(tc.name+"/"+read, func(t *testing.T) {
				ctx := testCtx(t)
				c, cl := cluster(t, 1)
				q := newQueue(t, cl)
				for i := range tc.put {
					require.NoError(t, q.Put(ctx, sampleEntry(t, fmt.Sprint("e", i))))
				}
				release, arrived := hold(t, c, kmsg.Fetch)
				res := make(chan error, 1)
				var got []string
				rctx, cancel := context.WithTimeout(ctx, returnBound)
				defer cancel()
				go func() {
					if read == "List" {
						res <- q.List(rctx, func(e dlq.Entry) error { got = append(got, e.ID); return nil })
						return
					}
					e, err := q.Get(rctx, fmt.Sprint("e", tc.put-1))
					if err == nil {
						got = append(got, e.ID)
					}
					res <- err
				}()
				waitFor(t, ctx, arrived, "the fetch")
				trim(t, ctx, kadm.NewClient(cl), 0, tc.trim)
				release()

				err := waitFor(t, ctx, res, "the read to end")
				if read == "Get" && tc.left == nil {
					require.ErrorIs(t, err, dlq.ErrNotFound)
				} else {
					require.NoError(t, err)
				}
				assert.Equal(t, tc.left, got)
			})
		}
	}
}
