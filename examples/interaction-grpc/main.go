// Command interaction-grpc fans finished Genesys Cloud conversations out to two gRPC services.
//
// It takes conversation-end and after-call-work (wrap-up) events in over HTTP, as an Amazon
// EventBridge API destination posts them, keeps the ones worth a follow-up (long conversations,
// and wrap-ups coded as a sale or a complaint), and delivers each to a CRM service and to a
// reporting service, each with its own retry policy, dead-lettering to local files what a service
// cannot take. The same selection is written twice, as a CEL expression and as an EventBridge
// event pattern: -filter picks the one that routes, and both select the same events as Genesys
// shapes them. They part on what Genesys does not send: a value inside a list, which the pattern
// matches and the expression does not; a number beyond ±5e11 or with more than six decimals
// (1649237504949, 120000.0000001), which the pattern's numeric tests never match and the
// expression compares; a body that repeats a key the pattern reads, which the pattern refuses
// and the expression reads by its last value; and a body holding a number beyond the range of a
// double (1e400), even in a field neither reads, which the expression refuses and the pattern
// matches on the fields it reads.
//
// Offline, with no environment set, it starts both services in-process, posts the embedded
// samples to itself, prints where each event went and exits:
//
//	go run ./examples/interaction-grpc
//
// Against real services it serves until Ctrl-C:
//
//	GRPC_DOWNSTREAM_ADDRESSES=crm.internal:443,reporting.internal:443 \
//	EVENTBRIDGE_API_KEY=... DLQ_DIR=/var/lib/fanbridge/dlq LISTEN_ADDR=:8080 \
//	go run ./examples/interaction-grpc
package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/examples/internal/demo"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/filter"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/signature"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
)

// Wrap-up codes travel as ids in Genesys events; these two are the ones the follow-up team wants.
const (
	wrapupSale      = "5a8b1e3c-7d2f-4c61-9e0a-3b4d5f6a7c81"
	wrapupComplaint = "c2e4f6a8-1b3d-4e5f-8a7b-9c0d1e2f3a4b"
)

// followUpCEL selects conversations in which the customer stayed more than two minutes, and
// wrap-ups coded as a sale or a complaint that took at most ten minutes (a longer wrap-up is an
// agent who forgot to close it).
const followUpCEL = `
	(event.type == 'v2.detail.events.conversation.{id}.customer.end' &&
		data.interactingDurationMs > 120000) ||
	(event.type == 'v2.detail.events.conversation.{id}.acw' &&
		data.wrapupCode in ['` + wrapupSale + `', '` + wrapupComplaint + `'] &&
		data.wrapupDurationMs > 0 && data.wrapupDurationMs <= 600000)`

// followUpPattern is the same selection as an Amazon EventBridge event pattern, so the rule you
// test here can move to an EventBridge rule unchanged (and back).
const followUpPattern = `{"$or": [
	{"detail-type": ["v2.detail.events.conversation.{id}.customer.end"],
	 "detail": {"eventBody": {"interactingDurationMs": [{"numeric": [">", 120000]}]}}},
	{"detail-type": ["v2.detail.events.conversation.{id}.acw"],
	 "detail": {"eventBody": {
		"wrapupCode": ["` + wrapupSale + `", "` + wrapupComplaint + `"],
		"wrapupDurationMs": [{"numeric": [">", 0, "<=", 600000]}]}}}
]}`

//go:embed samples/*.json
var samples embed.FS

// order is the order in which the offline run posts the samples.
var order = []string{
	"customer-start.json",     // not a conversation end: ignored
	"customer-end-chat.json",  // a one-minute chat: ignored
	"acw-sale.json",           // sale wrap-up: both services (reporting fails twice first)
	"acw-wrong-number.json",   // another wrap-up code: ignored
	"customer-end-voice.json", // a 12-minute call without a CRM contact: dead-lettered for the CRM
}

func main() { demo.Main("interaction-grpc", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	flags, serve := demo.Flags("interaction-grpc", stdout)
	filterKind := flags.String("filter", "pattern", "what selects the events: pattern or cel")
	insecure := flags.Bool("insecure", false, "speak plaintext gRPC to GRPC_DOWNSTREAM_ADDRESSES (the default is TLS)")
	if done, err := demo.Parse(flags, args); done {
		return err
	}
	out := demo.Locked(stdout)

	followUp, err := selection(*filterKind)
	if err != nil {
		return err
	}

	// Offline the two services run in this process; otherwise they are yours.
	addrs, err := demo.SplitList("GRPC_DOWNSTREAM_ADDRESSES", getenv("GRPC_DOWNSTREAM_ADDRESSES"))
	if err != nil {
		return err
	}
	offline := len(addrs) == 0
	apiKey, secret := getenv("EVENTBRIDGE_API_KEY"), getenv("GENESYS_WEBHOOK_SECRET")
	org, err := demo.Organization(getenv("GENESYS_ORGANIZATION_ID"))
	if err != nil {
		return err
	}
	if offline {
		// The demo touches only temporary files and loopback ports.
		if err := demo.CheckOffline(getenv, "GRPC_DOWNSTREAM_ADDRESSES", "DLQ_DIR", "LISTEN_ADDR"); err != nil {
			return err
		}
		apiKey, secret, org = demo.APIKey, "", ""
		for _, c := range []sink.Sink{crmConsumer(out), reportingConsumer(out)} {
			addr, stop, err := startConsumer(c)
			if err != nil {
				return err
			}
			defer stop()
			addrs = append(addrs, addr)
		}
		*insecure = true // loopback
	} else if len(addrs) != 2 {
		return fmt.Errorf("GRPC_DOWNSTREAM_ADDRESSES: want two addresses, crm then reporting, got %d", len(addrs))
	}
	verifier, err := demo.Verifier(apiKey, secret)
	if err != nil {
		return err
	}

	// The dead-letter queue: what a service cannot take is fsynced here before the sender hears
	// 200, so nothing acknowledged is lost.
	dir, removeDir, err := demo.DLQDir(getenv("DLQ_DIR"), offline, "interaction-grpc")
	if err != nil {
		return err
	}
	defer removeDir()
	queue, err := filedlq.Open(dir)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, queue.Close()) }()

	// One sink per service, each with a connection of its own.
	newSink := func(name, addr string) (*grpcsink.Sink, error) {
		opts := []grpcsink.Option{grpcsink.WithName(name), grpcsink.WithCallTimeout(2 * time.Second)}
		if *insecure {
			opts = append(opts, grpcsink.WithInsecure())
		}
		s, err := grpcsink.New(addr, opts...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return s, nil
	}
	crm, err := newSink("crm", addrs[0])
	if err != nil {
		return err
	}
	reporting, err := newSink("reporting", addrs[1])
	if err != nil {
		crm.Close()
		return err
	}
	dispatcher, err := fanout.New(fanout.Config{
		Sinks: []fanout.SinkConfig{
			// The CRM matters most: more attempts (the 4 s request budget still bounds them).
			{Name: "crm", Sink: crm, Retry: retry.Policy{InitialInterval: 200 * time.Millisecond, MaxAttempts: 8}},
			// Reports may lag: quick attempts, then the dead-letter queue.
			{Name: "reporting", Sink: reporting, Retry: retry.Policy{InitialInterval: 50 * time.Millisecond, MaxAttempts: 4}},
		},
		Routes: []fanout.Route{{Name: "follow-up", Filter: followUp, Sinks: []string{"crm", "reporting"}}},
		DLQ:    queue,
	})
	if err != nil {
		crm.Close()
		reporting.Close()
		return err
	}
	// The dispatcher drains and closes the sinks; the queue closes after it (deferred earlier).
	defer func() { err = errors.Join(err, demo.Close(ctx, dispatcher)) }()

	// demo.Report delivers with Deliver, Dispatch with a result per sink, and prints each
	// service's outcome; the Handler still answers from the error alone.
	report := demo.Report(dispatcher, out,
		func(s fanout.SinkResult) string {
			return fmt.Sprintf("%s: %s after %d attempt(s)", s.Sink, s.Outcome, s.Attempts)
		},
		func(*fanbridge.Event) string { return "not selected" },
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
	fmt.Fprintf(out, "listening on %s (filter: %s)\n", url, *filterKind)

	if offline {
		if err := compareFilters(out); err != nil {
			return err
		}
		if _, err := demo.PostSamples(ctx, url, samples, order, out, demo.ShowBody); err != nil {
			return err
		}
		if err := printDeadLetters(ctx, dir, queue, out); err != nil {
			return err
		}
		if !*serve {
			return nil
		}
		demo.ServingHint(out, "examples/interaction-grpc/samples/acw-sale.json", url)
	}
	<-ctx.Done()
	fmt.Fprintln(out, "shutting down")
	return nil
}

// selection compiles the follow-up selection in the form asked for.
func selection(kind string) (filter.Predicate, error) {
	switch kind {
	case "pattern":
		return filter.ParsePattern([]byte(followUpPattern))
	case "cel":
		return filter.Expr(followUpCEL)
	}
	return nil, fmt.Errorf("-filter: want pattern or cel, got %q", kind)
}

// compareFilters shows that the CEL expression and the event pattern select the same samples.
func compareFilters(out io.Writer) error {
	expr, err := filter.Expr(followUpCEL)
	if err != nil {
		return err
	}
	pattern, err := filter.ParsePattern([]byte(followUpPattern))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%-24s %-5s %s\n", "sample", "cel", "pattern")
	for _, name := range order {
		body, err := samples.ReadFile("samples/" + name)
		if err != nil {
			return err
		}
		e, err := eventbridge.Decode(body, "application/json")
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(out, "%-24s %-5t %t\n", name, expr.Match(e), pattern.Match(e))
	}
	return nil
}

// printDeadLetters lists the dead-letter queue: one entry per event and service that failed,
// with the envelope as received, ready for a redrive to that service alone.
func printDeadLetters(ctx context.Context, dir string, r dlq.Reader, out io.Writer) error {
	fmt.Fprintf(out, "dead-letter queue in %s:\n", dir)
	for e, err := range dlq.All(ctx, r) {
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  %s sink=%s route=%s condition=%s attempts=%d error=%q (%d bytes of envelope kept)\n",
			e.Event.ID, e.Sink, e.Route, e.Condition, e.Attempts, e.Error, len(e.Event.Raw))
	}
	return nil
}

// startConsumer serves handler as a fanbridge EventSink on a free loopback port, the way a
// consumer service built with grpcsink.NewServer does.
func startConsumer(handler sink.Sink) (addr string, stop func(), err error) {
	srv, err := grpcsink.NewServer(handler)
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	gs := grpc.NewServer()
	srv.Register(gs)
	go gs.Serve(ln)
	return ln.Addr().String(), gs.Stop, nil
}

// crmConsumer stands for the CRM team's service. It attaches each conversation to the customer's
// record, so a conversation without an external contact is refused for good (retry.Permanent
// reaches the sender as FailedPrecondition), and it answers a repeated event id with
// fanbridge.ErrDuplicate, which the sender counts as delivered.
func crmConsumer(out io.Writer) sink.Sink {
	var mu sync.Mutex
	seen := map[string]bool{}
	return sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
		var body struct {
			ConversationID string   `json:"conversationId"`
			Contacts       []string `json:"conversationExternalContactIds"`
		}
		if err := json.Unmarshal(e.Data, &body); err != nil {
			return retry.Permanent(fmt.Errorf("unreadable body: %w", err))
		}
		if len(body.Contacts) == 0 {
			return retry.Permanent(errors.New("no external contact to attach the conversation to"))
		}
		mu.Lock()
		defer mu.Unlock()
		if seen[e.ID] {
			return fanbridge.ErrDuplicate
		}
		seen[e.ID] = true
		fmt.Fprintf(out, "  [crm] %s: conversation %s attached to contact %s\n", e.ID, body.ConversationID, body.Contacts[0])
		return nil
	})
}

// reportingConsumer stands for a reporting store that is unavailable for a moment: it refuses
// its first two calls with a plain error (gRPC Unavailable: retryable), then records everything.
func reportingConsumer(out io.Writer) sink.Sink {
	var calls atomic.Int32
	return sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
		if n := calls.Add(1); n <= 2 {
			fmt.Fprintf(out, "  [reporting] %s: call %d refused, store warming up\n", e.ID, n)
			return errors.New("reporting store warming up")
		}
		fmt.Fprintf(out, "  [reporting] %s: recorded %s\n", e.ID, e.Topic)
		return nil
	})
}
