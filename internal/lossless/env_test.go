package lossless_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/signature"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

const (
	apiKeyHeader = "X-Api-Key"
	apiKey       = "k3y-for-the-eventbridge-connection"
)

// setup chooses what differs between scenarios.
type setup struct {
	mode fanout.Mode
	// breakerB configures grpc-b's circuit breaker; the shutdown scenario turns it off so that
	// deliveries to a dead grpc-b are still retrying when Close comes.
	breakerB fanout.Breaker
	// kafkaFaultRate is the share of produce requests kfake fails.
	kafkaFaultRate float64
	// kafkaStall is how long the broker holds one produce request at 15% of the run.
	kafkaStall time.Duration
}

// env is the whole path, built from the library's public API only.
type env struct {
	t      *testing.T
	c      *corpus
	cfg    setup
	routes map[string][]string // route name -> sinks

	cluster  *kfake.Cluster
	producer *kgo.Client
	kfaults  *kafkaFaults

	consA, consB *consumer
	srvA, srvB   *grpcServer
	obs          map[string]*observed

	dlqDir string
	queue  *filedlq.Queue
	outage *outageQueue
	losses *lossLog
	disp   *fanout.Dispatcher

	http     *httptest.Server
	lisClose chan struct{} // closed when the HTTP listener is closed
}

func newEnv(t *testing.T, c *corpus, cfg setup) *env {
	t.Helper()
	e := &env{t: t, c: c, cfg: cfg, routes: map[string][]string{}, obs: map[string]*observed{}}
	for _, r := range routeDefs {
		e.routes[r.name] = r.sinks
	}

	// Kafka: an in-process kfake broker with the topics seeded, a franz-go producer client (no
	// compression, so the fault injector can read the records it fails) and the sink.
	topics := []string{"genesys.conversation.end", "genesys.conversation.start", "genesys.audits"}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	e.cluster = cluster
	e.kfaults = installKafkaFaults(cluster, cfg.kafkaFaultRate)
	t.Cleanup(e.kfaults.close)
	e.producer, err = kgo.NewClient(
		kgo.SeedBrokers(cluster.ListenAddrs()...),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		// React to an injected NOT_LEADER in milliseconds rather than the production defaults,
		// so the run stays short; the classification of errors is unchanged.
		kgo.MetadataMinAge(50*time.Millisecond),
		kgo.RetryBackoffFn(func(n int) time.Duration { return min(time.Duration(n)*20*time.Millisecond, 200*time.Millisecond) }),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.producer.Close)
	ks, err := kafkasink.New(e.producer, kafkasink.WithTopicByType(kafkaTopics, ""), kafkasink.WithEnvelopeValue())
	if err != nil {
		t.Fatal(err)
	}

	// gRPC: two consumers behind grpcsink.NewServer, and a grpcsink.Sink to each.
	e.consA = newConsumer(sinkA, c, 0.04, rejectedByA, permanentA, lateAtA)
	e.consB = newConsumer(sinkB, c, 0.06, rejectedByB, invalidB, nil)
	if e.srvA, err = startGRPCServer(e.consA); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.srvA.close)
	if e.srvB, err = startGRPCServer(e.consB); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.srvB.close)
	// A restarted consumer is reconnected within a few hundred milliseconds, as a service
	// behind a fast load balancer would be, rather than after gRPC's default 1 s and growing.
	reconnect := grpcsink.WithDialOptions(grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 300 * time.Millisecond},
		MinConnectTimeout: time.Second,
	}))
	ga, err := grpcsink.New(e.srvA.addr, grpcsink.WithInsecure(), reconnect)
	if err != nil {
		t.Fatal(err)
	}
	gb, err := grpcsink.New(e.srvB.addr, grpcsink.WithInsecure(), reconnect)
	if err != nil {
		t.Fatal(err)
	}
	e.obs[sinkKafka], e.obs[sinkA], e.obs[sinkB] = observe(ks), observe(ga), observe(gb)

	// The dead-letter queue, fsynced on every Put (the default).
	e.dlqDir = t.TempDir()
	if e.queue, err = filedlq.Open(e.dlqDir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.queue.Close() })
	e.outage = &outageQueue{next: e.queue, uncertain: newIDSet()}
	e.losses = newLossLog()

	routes := make([]fanout.Route, 0, len(routeDefs))
	for _, r := range routeDefs {
		routes = append(routes, fanout.Route{Name: r.name, Pattern: []byte(r.pattern), Sinks: r.sinks})
	}
	e.disp, err = fanout.New(fanout.Config{
		Sinks: []fanout.SinkConfig{
			// Retry policies are the defaults but for an attempt timeout, which Async mode needs
			// against hanging calls, and quicker first retries for the gRPC consumers. Breakers
			// cool down within a second, so that a run of seconds sees them open and close.
			{Name: sinkKafka, Sink: e.obs[sinkKafka], Retry: retry.Policy{AttemptTimeout: 2 * time.Second}, Breaker: fanout.Breaker{Cooldown: time.Second}},
			{Name: sinkA, Sink: e.obs[sinkA], Retry: retry.Policy{InitialInterval: 10 * time.Millisecond, MaxInterval: 200 * time.Millisecond, AttemptTimeout: 500 * time.Millisecond}},
			{Name: sinkB, Sink: e.obs[sinkB], Retry: retry.Policy{InitialInterval: 20 * time.Millisecond, MaxInterval: 400 * time.Millisecond, MaxAttempts: 8, AttemptTimeout: time.Second}, Breaker: cfg.breakerB},
		},
		Routes: routes,
		DLQ:    e.outage,
	}, fanout.WithMode(cfg.mode), fanout.WithLogger(slog.New(e.losses)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.disp.Close(ctx)
	})

	// HTTP: signature.Verify (API key) in front of eventbridge.Handler, on a real listener.
	h, err := eventbridge.NewHandler(e.disp, eventbridge.WithAllowedSources("aws.partner/genesys.com*"))
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := signature.APIKey(apiKeyHeader, apiKey)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /events", signature.Verify(verifier)(h))
	e.http = httptest.NewUnstartedServer(mux)
	e.lisClose = make(chan struct{})
	e.http.Listener = &notifyListener{Listener: e.http.Listener, closed: e.lisClose}
	e.http.Start()
	t.Cleanup(e.http.Close)
	return e
}

// notifyListener closes a channel when the server stops accepting.
type notifyListener struct {
	net.Listener
	closed chan struct{}
	once   sync.Once
}

func (l *notifyListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() { close(l.closed) })
	return err
}

// readKafka returns every record of the seeded topics, up to the end offsets at the time of the
// call, read with a consumer client of its own.
func (e *env) readKafka(ctx context.Context) ([]*kgo.Record, error) {
	topics := []string{"genesys.conversation.end", "genesys.conversation.start", "genesys.audits"}
	admin, err := kgo.NewClient(kgo.SeedBrokers(e.cluster.ListenAddrs()...))
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	ends, err := kadm.NewClient(admin).ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, err
	}
	want := int64(0)
	var firstErr error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil && firstErr == nil {
			firstErr = o.Err
		}
		want += o.Offset
	})
	if firstErr != nil {
		return nil, firstErr
	}
	consumer, err := kgo.NewClient(
		kgo.SeedBrokers(e.cluster.ListenAddrs()...),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	var out []*kgo.Record
	for int64(len(out)) < want {
		fetches := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return out, err
		}
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return out, ferr
		}
		out = append(out, fetches.Records()...)
	}
	return out, nil
}

// readDLQ lists the dead-letter queue with its Reader.
func (e *env) readDLQ(ctx context.Context) ([]dlq.Entry, error) {
	var r dlq.Reader = e.queue
	var out []dlq.Entry
	err := r.List(ctx, func(en dlq.Entry) error {
		out = append(out, en)
		return nil
	})
	return out, err
}
