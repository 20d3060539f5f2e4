package fanout_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/fanout"
)

// FuzzSetRoutesPattern swaps in a route whose pattern is arbitrary bytes. Either the swap is
// refused with ErrInvalidConfig and the old routes still deliver, or it is taken and dispatching
// any event neither panics nor fails for another reason than no match.
func FuzzSetRoutesPattern(f *testing.F) {
	for _, seed := range []string{
		`{"detail-type":["v2.detail.events.conversation.{id}.customer.end"]}`,
		`{"detail":{"eventBody":{"mediaType":["CHAT"],"interactingDurationMs":[{"numeric":[">",1000]}]}}}`,
		`{"source":[{"prefix":"aws.partner/genesys.com"}],"$or":[{"account":["1"]},{"region":["us-east-1"]}]}`,
		`{"detail-type":[{"anything-but":{"suffix":".start"}}]}`,
		`{"detail-type":"x"}`, `[]`, `{`, ``, `null`,
	} {
		f.Add([]byte(seed))
	}
	raw := []byte(`{"version":"0","id":"e1","detail-type":"v2.detail.events.conversation.{id}.customer.end",` +
		`"source":"aws.partner/genesys.com/cloud/x/y","account":"1","region":"us-east-1",` +
		`"detail":{"eventBody":{"mediaType":"CHAT","interactingDurationMs":60000}}}`)
	var got atomic.Int64
	d, err := fanout.New(fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: sinkFunc(func(context.Context, *fanbridge.Event) error {
			got.Add(1)
			return nil
		}), Concurrency: 1}},
		Routes: []fanout.Route{{Name: "old", Filter: fanout.All, Sinks: []string{"s"}}},
	}, fanout.WithDedup(nil))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = d.Close(context.Background()) })
	old := []fanout.Route{{Name: "old", Filter: fanout.All, Sinks: []string{"s"}}}
	f.Fuzz(func(t *testing.T, pattern []byte) {
		if err := d.SetRoutes(old); err != nil {
			t.Fatal(err)
		}
		e := &fanbridge.Event{ID: "e1", Raw: raw}
		err := d.SetRoutes([]fanout.Route{
			{Name: "fuzzed", Pattern: pattern, Sinks: []string{"s"}},
			{Name: "other", Pattern: []byte(`{"source":["nowhere"]}`), Sinks: []string{"s"}},
		})
		if err != nil {
			if !errors.Is(err, fanout.ErrInvalidConfig) {
				t.Fatalf("error does not wrap ErrInvalidConfig: %v", err)
			}
			before := got.Load()
			if err := d.Dispatch(context.Background(), e); err != nil {
				t.Fatalf("old routes broken by a refused swap: %v", err)
			}
			if got.Load() != before+1 {
				t.Fatal("old route did not deliver")
			}
			return
		}
		if err := d.Dispatch(context.Background(), e); err != nil && !errors.Is(err, fanbridge.ErrNoMatch) {
			t.Fatalf("dispatch: %v", err)
		}
	})
}
