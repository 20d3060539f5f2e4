package notifications_test

import (
	"context"
	"encoding/json"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
	"github.com/fanbridge/fanbridge/genesys/notifications"
)

// countingDispatcher signals when it has seen want events.
type countingDispatcher struct {
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (c *countingDispatcher) Dispatch(_ context.Context, _ *fanbridge.Event) error {
	if c.n.Add(1) == c.want {
		close(c.done)
	}
	return nil
}

func (c *countingDispatcher) reset(want int) {
	c.n.Store(0)
	c.want = int64(want)
	c.done = make(chan struct{})
}

// BenchmarkWebSocketIntake pushes the same user-activity events (the real WebSocket sample, with a
// sequence number) through the Source and through the loop tutorials write (read, decode into a
// map, re-encode the body, dispatch), over the fake's real WebSocket, in the same run. The fake's
// own publishing cost is in both.
func BenchmarkWebSocketIntake(b *testing.B) {
	raw, err := os.ReadFile("testdata/websocket.v2.users.activity.REPAIRED.json")
	if err != nil {
		b.Fatal(err)
	}
	var sample struct {
		TopicName string         `json:"topicName"`
		EventBody map[string]any `json:"eventBody"`
	}
	if err := json.Unmarshal(raw, &sample); err != nil {
		b.Fatal(err)
	}
	srv := genesystest.NewServer(genesystest.WithHeartbeatInterval(0))
	defer srv.Close()
	client, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
		genesys.WithBaseURL(srv.URL), genesys.WithTokenURL(srv.TokenURL()))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	const ours, theirs = "v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.activity", "v2.users.0f9e8d7c-6b5a-4321-8765-43210fedcba9.activity"
	d := &countingDispatcher{}
	src, err := notifications.New(client, []string{ours}, d)
	if err != nil {
		b.Fatal(err)
	}
	go src.Run(ctx)
	defer src.Close()

	tutorial := &countingDispatcher{}
	ch, err := client.CreateChannel(ctx)
	if err != nil {
		b.Fatal(err)
	}
	ws, _, err := websocket.Dial(ctx, ch.ConnectURI, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	go tutorialLoop(ctx, ws, tutorial)
	if err := client.SetSubscriptions(ctx, ch.ID, []string{theirs}); err != nil {
		b.Fatal(err)
	}
	if err := srv.WaitSubscribed(ctx, ours, 1); err != nil {
		b.Fatal(err)
	}

	// Messages are built before the clock starts, so that the fake's encoding is not measured.
	build := func(topic string, seq int) []byte {
		sample.EventBody["seq"] = seq
		msg, err := json.Marshal(map[string]any{"topicName": topic, "version": "2", "eventBody": sample.EventBody,
			"metadata": map[string]string{"CorrelationId": "9e8067c7-8b35-4e54-add9-db24e7d6f086"}})
		if err != nil {
			b.Fatal(err)
		}
		return msg
	}
	msgsOurs, msgsTheirs := make([][]byte, b.N), make([][]byte, b.N)
	for i := range b.N {
		msgsOurs[i], msgsTheirs[i] = build(ours, i), build(theirs, i)
	}
	run := func(topic string, c *countingDispatcher, msgs [][]byte) time.Duration {
		c.reset(len(msgs))
		start := time.Now()
		for _, m := range msgs {
			srv.PublishRaw(topic, m)
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			b.Fatal("events not dispatched")
		}
		return time.Since(start)
	}
	b.ReportAllocs()
	b.ResetTimer()
	// Alternate in rounds, so that both paths see the same changes in the machine's load.
	const rounds = 10
	var tOurs, tTheirs time.Duration
	for r := range rounds {
		lo, hi := r*b.N/rounds, (r+1)*b.N/rounds
		if lo == hi {
			continue
		}
		tOurs += run(ours, d, msgsOurs[lo:hi])
		tTheirs += run(theirs, tutorial, msgsTheirs[lo:hi])
	}
	b.StopTimer()
	b.ReportMetric(float64(tOurs.Nanoseconds())/float64(b.N), "ns/event-source")
	b.ReportMetric(float64(tTheirs.Nanoseconds())/float64(b.N), "ns/event-tutorial")
	b.ReportMetric(float64(tTheirs)/float64(tOurs), "x-faster")
}

// tutorialLoop is the intake loop found in tutorials: decode every message into a map, skip
// heartbeats, rebuild the event.
func tutorialLoop(ctx context.Context, ws *websocket.Conn, d eventbridge.Dispatcher) {
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			return
		}
		var m map[string]any
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		topic, _ := m["topicName"].(string)
		if topic == "channel.metadata" {
			continue
		}
		body, _ := json.Marshal(m["eventBody"])
		_ = d.Dispatch(ctx, &fanbridge.Event{Topic: topic, Type: topic, Data: body, Raw: data})
	}
}
