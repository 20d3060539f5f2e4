// Command presence-kafka routes Genesys Cloud agent presence and activity events to Kafka topics,
// one topic per event type, keyed by agent so that each agent's changes stay in order.
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
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/examples/internal/demo"
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

//go:embed samples/*.json
var samples embed.FS

// order is the order in which the offline run posts the samples.
var order = []string{
	"user-presence-on-queue.json",    // agent e40f28ea goes on queue
	"websocket-user-activity.json",   // the same agent's activity, as the WebSocket API sends it
	"user-presence-available.json",   // agent 278522be is available
	"audit-user-presence.json",       // the audit trail of agent 278522be's presence change
	"audit-oauth-client-delete.json", // an audit event of another entity: ignored
}

func main() { demo.Main("presence-kafka", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	flags, serve := demo.Flags("presence-kafka", stdout)
	if done, err := demo.Parse(flags, args); done {
		return err
	}
	out := demo.Locked(stdout)

	// Offline an in-process broker (franz-go's kfake, a real Kafka wire protocol server) stands in
	// for the cluster, with the topics already created.
	brokers, err := demo.SplitList("KAFKA_BROKERS", getenv("KAFKA_BROKERS"))
	if err != nil {
		return err
	}
	offline := len(brokers) == 0
	apiKey, secret := getenv("EVENTBRIDGE_API_KEY"), getenv("GENESYS_WEBHOOK_SECRET")
	org, err := demo.Organization(getenv("GENESYS_ORGANIZATION_ID"))
	if err != nil {
		return err
	}
	if offline {
		// The demo touches only temporary files and a loopback port.
		if err := demo.CheckOffline(getenv, "KAFKA_BROKERS", "DLQ_DIR", "LISTEN_ADDR"); err != nil {
			return err
		}
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topicPresence, topicActivity, topicAudit))
		if err != nil {
			return err
		}
		defer cluster.Close()
		brokers = cluster.ListenAddrs()
		apiKey, secret, org = demo.APIKey, "", ""
	}
	verifier, err := demo.Verifier(apiKey, secret)
	if err != nil {
		return err
	}

	dir, removeDir, err := demo.DLQDir(getenv("DLQ_DIR"), offline, "presence-kafka")
	if err != nil {
		return err
	}
	defer removeDir()
	queue, err := filedlq.Open(dir)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, queue.Close()) }()

	// One sink for all three topics: the record's topic follows the event type, its key the agent.
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
	defer func() { err = errors.Join(err, demo.Close(ctx, dispatcher)) }()

	// demo.Report delivers with Deliver, Dispatch with a result per sink, and prints the route
	// each event took; the Handler still answers from the error alone.
	report := demo.Report(dispatcher, out,
		func(s fanout.SinkResult) string { return fmt.Sprintf("%s (route %s): %s", s.Sink, s.Route, s.Outcome) },
		func(e *fanbridge.Event) string { return "no route wants " + e.Type },
	)
	var intake http.Handler
	intake, err = eventbridge.NewHandler(report)
	if err != nil {
		return err
	}
	if org != "" {
		// Events that name another organization in their source are refused (403). A bare
		// notification names none: it is taken as before, on the sender's credentials alone.
		fromOrg, err := eventbridge.NewHandler(report, eventbridge.WithAllowedSources(demo.OrganizationSources(org)))
		if err != nil {
			return err
		}
		intake = demo.BareNotificationsTo(intake, fromOrg)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /events/genesys", signature.Verify(verifier)(intake))

	srv, err := demo.Listen(getenv("LISTEN_ADDR"), offline, mux)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, srv.Shutdown(ctx)) }()
	url := srv.URL + "/events/genesys"
	fmt.Fprintf(out, "listening on %s, producing to %s\n", url, strings.Join(brokers, ","))

	if offline {
		delivered, err := demo.PostSamples(ctx, url, samples, order, out, demo.ShowStatus)
		if err != nil {
			return err
		}
		if err := readBack(ctx, brokers, delivered, out); err != nil {
			return err
		}
		if !*serve {
			return nil
		}
		demo.ServingHint(out, "examples/presence-kafka/samples/user-presence-on-queue.json", url)
	}
	<-ctx.Done()
	fmt.Fprintln(out, "shutting down")
	return nil
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
