// Command presence-kafka routes Genesys Cloud agent presence and activity events to Kafka topics,
// one topic per event type, keyed by user so that each agent's changes stay in order.
//
// It takes events in over HTTP (Amazon EventBridge envelopes, or bare notifications as the
// WebSocket Notification API sends them), keeps presence, activity and presence-audit events with
// Go predicates, and produces each to its topic:
//
//	v2.users.{id}.presence                    -> gen-presence-status
//	v2.users.{id}.activity                    -> gen-user-activity
//	v2.audits.entitytype.{id}.entityid.{id}   -> gen-presence-audit (UserPresence entities only)
//
// Offline, with no environment set, it starts an in-process Kafka broker, posts the embedded
// samples to itself, reads the topics back and prints topic, partition and key of every record:
//
//	go run ./examples/presence-kafka
//
// Against a real cluster (the three topics must exist) it serves until Ctrl-C:
//
//	KAFKA_BROKERS=kafka-1:9092,kafka-2:9092 EVENTBRIDGE_API_KEY=... DLQ_DIR=/var/lib/fanbridge/dlq \
//	go run ./examples/presence-kafka
package main

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/filter"
	"github.com/fanbridge/fanbridge/signature"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// The topic each event type goes to.
const (
	topicPresence = "gen-presence-status"
	topicActivity = "gen-user-activity"
	topicAudit    = "gen-presence-audit"
)

// Every audit event has this detail-type, whatever the entity: the body tells presence apart.
const auditType = "v2.audits.entitytype.{id}.entityid.{id}"

// How senders prove who they are. An Amazon EventBridge API destination sends its Connection's
// API key in a header the Connection names; a signing proxy of your own may add a hex HMAC of
// the body instead (Genesys itself does not sign what EventBridge delivers).
const apiKeyHeader = "X-Api-Key"

var hmacScheme = signature.HMACScheme{Header: "X-Genesys-Event-Signature", Encoding: signature.Hex}

// The offline demo's key; it only ever guards a loopback port.
const demoAPIKey = "offline-demo-key"

//go:embed samples/*.json
var samples embed.FS

// demo is the order in which the offline run posts the samples.
var demo = []string{
	"user-presence-on-queue.json",    // agent e40f28ea goes on queue
	"websocket-user-activity.json",   // the same agent's activity, as the WebSocket API sends it
	"user-presence-available.json",   // agent 278522be is available
	"audit-user-presence.json",       // the audit trail of agent 278522be's presence change
	"audit-oauth-client-delete.json", // an audit event of another entity: ignored
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "presence-kafka:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	flags := flag.NewFlagSet("presence-kafka", flag.ContinueOnError)
	flags.SetOutput(stdout)
	serve := flags.Bool("serve", false, "offline: keep serving after the demo, until Ctrl-C")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	out := &lockedWriter{w: stdout}

	// Offline an in-process broker (franz-go's kfake, a real Kafka wire protocol server) stands in
	// for the cluster, with the topics already created.
	brokers := splitList(getenv("KAFKA_BROKERS"))
	offline := len(brokers) == 0
	apiKey, secret := getenv("EVENTBRIDGE_API_KEY"), getenv("GENESYS_WEBHOOK_SECRET")
	var intakeOpts []eventbridge.Option
	if offline {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topicPresence, topicActivity, topicAudit))
		if err != nil {
			return err
		}
		defer cluster.Close()
		brokers = cluster.ListenAddrs()
		apiKey, secret = demoAPIKey, ""
	} else if org := getenv("GENESYS_ORGANIZATION_ID"); org != "" {
		intakeOpts = append(intakeOpts, eventbridge.WithAllowedSources("aws.partner/genesys.com/cloud/"+org+"/"))
	}
	verifier, err := newVerifier(apiKey, secret)
	if err != nil {
		return err
	}

	dir := getenv("DLQ_DIR")
	if dir == "" {
		if !offline {
			return errors.New("DLQ_DIR: set a directory for the dead-letter queue")
		}
		if dir, err = os.MkdirTemp("", "presence-kafka-dlq-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	queue, err := filedlq.Open(dir)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, queue.Close()) }()

	// One sink for all three topics: the record's topic follows the event type, its key the user.
	// TLS and SASL go in the ClientConfig as well.
	kafka, err := kafkasink.Dial(kafkasink.ClientConfig{Brokers: brokers},
		kafkasink.WithTopicByType(map[string]string{
			"v2.users.{id}.presence": topicPresence,
			"v2.users.{id}.activity": topicActivity,
			auditType:                topicAudit,
		}, ""),
		kafkasink.WithKey(kafkasink.UserKey),
	)
	if err != nil {
		return err
	}
	// Fail at startup, not on the first event, when the cluster is unreachable or refuses us.
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = kafka.Ping(pingCtx)
	cancel()
	if err != nil {
		kafka.Close()
		return fmt.Errorf("kafka: %w", err)
	}

	dispatcher, err := fanout.New(fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "kafka", Sink: kafka}},
		Routes: []fanout.Route{
			{Name: "user-status", Filter: filter.Type("v2.users.{id}.presence", "v2.users.{id}.activity"), Sinks: []string{"kafka"}},
			{Name: "presence-audit", Filter: filter.And(filter.Type(auditType), filter.Field("entityType").Eq("UserPresence")), Sinks: []string{"kafka"}},
		},
		DLQ: queue,
	},
		// One agent's events reach Kafka in the order they came in, even when they overlap.
		fanout.WithOrderingKey(kafkasink.UserKey),
	)
	if err != nil {
		kafka.Close()
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err = errors.Join(err, dispatcher.Close(ctx))
	}()

	intake, err := eventbridge.NewHandler(report(dispatcher, out), intakeOpts...)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /events/genesys", signature.Verify(verifier)(intake))

	listen := getenv("LISTEN_ADDR")
	if listen == "" {
		listen = "127.0.0.1:0"
		if !offline {
			listen = ":8080"
		}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = errors.Join(err, srv.Shutdown(ctx))
	}()
	url := "http://" + ln.Addr().String() + "/events/genesys"
	fmt.Fprintf(out, "listening on %s, producing to %s\n", url, strings.Join(brokers, ","))

	if offline {
		delivered, err := postSamples(ctx, url, out)
		if err != nil {
			return err
		}
		if err := readBack(ctx, brokers, delivered, out); err != nil {
			return err
		}
		if !*serve {
			return nil
		}
		fmt.Fprintf(out, "serving until Ctrl-C; try:\n  curl -H '%s: %s' --data @examples/presence-kafka/samples/user-presence-on-queue.json %s\n",
			apiKeyHeader, demoAPIKey, url)
	}
	<-ctx.Done()
	fmt.Fprintln(out, "shutting down")
	return nil
}

// newVerifier accepts whichever credentials are configured, and refuses to run without any.
func newVerifier(apiKey, secret string) (signature.Verifier, error) {
	var vs []signature.Verifier
	if apiKey != "" {
		v, err := signature.APIKey(apiKeyHeader, apiKey)
		if err != nil {
			return nil, fmt.Errorf("EVENTBRIDGE_API_KEY: %w", err)
		}
		vs = append(vs, v)
	}
	if secret != "" {
		v, err := signature.HMAC(hmacScheme, secret)
		if err != nil {
			return nil, fmt.Errorf("GENESYS_WEBHOOK_SECRET: %w", err)
		}
		vs = append(vs, v)
	}
	if len(vs) == 0 {
		return nil, errors.New("set EVENTBRIDGE_API_KEY or GENESYS_WEBHOOK_SECRET: the intake never runs unauthenticated")
	}
	return signature.Any(vs...)
}

// report delivers each event and prints where it went. Deliver is Dispatch with a result per
// sink; the Handler still answers from the error alone.
func report(d *fanout.Dispatcher, out io.Writer) eventbridge.Dispatcher {
	return eventbridge.DispatcherFunc(func(ctx context.Context, e *fanbridge.Event) error {
		res, err := d.Deliver(ctx, e)
		var b strings.Builder
		for _, s := range res.Sinks {
			fmt.Fprintf(&b, "  %s -> %s (route %s): %s", e.ID, s.Sink, s.Route, s.Outcome)
			if s.Outcome != fanout.Delivered {
				fmt.Fprintf(&b, " [%s: %v]", s.Condition, s.Err)
			}
			b.WriteByte('\n')
		}
		if errors.Is(err, fanbridge.ErrNoMatch) {
			fmt.Fprintf(&b, "  %s -> no route wants %s\n", e.ID, e.Type)
		}
		io.WriteString(out, b.String())
		return err
	})
}

// postSamples plays the sender: it posts each sample with the API key, prints the answer, and
// returns how many events were delivered.
func postSamples(ctx context.Context, url string, out io.Writer) (delivered int, err error) {
	for _, name := range demo {
		body, err := samples.ReadFile("samples/" + name)
		if err != nil {
			return 0, err
		}
		fmt.Fprintf(out, "POST %s\n", name)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(apiKeyHeader, demoAPIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		var answer struct{ Status string }
		err = json.NewDecoder(resp.Body).Decode(&answer)
		resp.Body.Close()
		if err != nil {
			return 0, fmt.Errorf("%s: answer: %w", name, err)
		}
		fmt.Fprintf(out, "  answer: %d %s\n", resp.StatusCode, answer.Status)
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("%s: answered %d", name, resp.StatusCode)
		}
		if answer.Status == "delivered" {
			delivered++
		}
	}
	return delivered, nil
}

// readBack consumes the topics from the start, as a downstream service would, and prints where
// each record landed: records with the same key (one agent) share a partition, so their order
// holds.
func readBack(ctx context.Context, brokers []string, n int, out io.Writer) error {
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topicPresence, topicActivity, topicAudit),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer client.Close()
	var records []*kgo.Record
	for len(records) < n {
		fetches := client.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return fmt.Errorf("consume %s: %w", errs[0].Topic, errs[0].Err)
		}
		records = append(records, fetches.Records()...)
	}
	slices.SortFunc(records, func(a, b *kgo.Record) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	fmt.Fprintln(out, "records:")
	for _, r := range records {
		e, err := kafkasink.EventFromRecord(r)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  %-19s partition=%d offset=%d key=%s id=%s type=%s\n", r.Topic, r.Partition, r.Offset, r.Key, e.ID, e.Type)
	}
	return nil
}

func splitList(s string) []string {
	var list []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			list = append(list, item)
		}
	}
	return list
}

// lockedWriter serialises writes: the intake and the demo print concurrently.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
