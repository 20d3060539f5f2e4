package fanout_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/fanout"
)

// failingCloser is a sink whose Close fails with its own error once after (when set) has
// closed, and then closes closed.
type failingCloser struct {
	name   string
	after  <-chan struct{}
	closed chan struct{}
}

func (f *failingCloser) Send(context.Context, *fanbridge.Event) error { return nil }

func (f *failingCloser) Close() error {
	if f.after != nil {
		<-f.after
	}
	defer close(f.closed)
	return errors.New("cannot close " + f.name)
}

// The sinks that fail to close are listed in Close's error (or Settle's) in a fixed order,
// however their closes, which run side by side, finish: those an Update removed first, then
// those of the last configuration, each configuration's in the order it lists them. Here each
// close finishes only after the one listed after it.
func TestCloseListsSinkCloseErrorsInConfigurationOrder(t *testing.T) {
	names := []string{"a", "b", "c", "d"}
	for _, tc := range []struct {
		name   string
		kept   []string // the sinks the Update before Close keeps; nil: no Update
		settle bool     // Settle after the Update: it reports what the Update removed
	}{
		{"closed by Close", nil, false},
		{"removed by an Update", []string{}, false},
		{"removed by an Update, then closed by Close", []string{"c", "d"}, false},
		{"removed by an Update, reported by Settle", []string{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sinks := map[string]*failingCloser{}
			var after <-chan struct{}
			for i := len(names) - 1; i >= 0; i-- {
				f := &failingCloser{name: names[i], after: after, closed: make(chan struct{})}
				sinks[names[i]] = f
				after = f.closed
			}
			cfg := func(names ...string) fanout.Config {
				c := fanout.Config{Sinks: []fanout.SinkConfig{{Name: "other", Sink: newRecSink()}},
					Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"other"}}}}
				for _, n := range names {
					c.Sinks = append(c.Sinks, fanout.SinkConfig{Name: n, Sink: sinks[n]})
					c.Routes[0].Sinks = append(c.Routes[0].Sinks, n)
				}
				return c
			}
			d, err := fanout.New(cfg(names...))
			require.NoError(t, err)
			ctx := testContext(t)
			require.NoError(t, d.Dispatch(ctx, event("e1", "x")))
			if tc.kept != nil {
				require.NoError(t, d.Update(cfg(tc.kept...)))
			}

			if tc.settle {
				err = d.Settle(ctx)
				require.NoError(t, d.Close(ctx), "Settle reported the failures")
			} else {
				err = d.Close(ctx)
			}
			require.Error(t, err)
			assert.ErrorIs(t, err, fanout.ErrSinkClose)
			var got []string
			for line := range strings.SplitSeq(err.Error(), "\n") {
				if strings.Contains(line, "closing sink") {
					got = append(got, line)
				}
			}
			assert.Equal(t, []string{
				`fanout: closing sink "a": cannot close a`,
				`fanout: closing sink "b": cannot close b`,
				`fanout: closing sink "c": cannot close c`,
				`fanout: closing sink "d": cannot close d`,
			}, got)
		})
	}
}
