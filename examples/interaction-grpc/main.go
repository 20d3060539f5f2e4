// Command interaction-grpc fans finished Genesys Cloud conversations out to two gRPC services.
//
// It takes conversation-end and after-call-work (wrap-up) events in over HTTP, as an Amazon
// EventBridge API destination posts them, keeps the ones worth a follow-up (long conversations,
// and wrap-ups coded as a sale or a complaint), and delivers each to a CRM service and to a
// reporting service, each with its own retry policy, dead-lettering to local files what a service
// cannot take. The same selection is written twice, as a CEL expression and as an EventBridge
// event pattern: -filter picks the one that routes, and both select the same events.
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
	"bytes"
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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/eventbridge"
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
	"customer-start.json",     // not a conversation end: ignored
	"customer-end-chat.json",  // a one-minute chat: ignored
	"acw-sale.json",           // sale wrap-up: both services (reporting fails twice first)
	"acw-wrong-number.json",   // another wrap-up code: ignored
	"customer-end-voice.json", // a 12-minute call without a CRM contact: dead-lettered for the CRM
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "interaction-grpc:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	flags := flag.NewFlagSet("interaction-grpc", flag.ContinueOnError)
	flags.SetOutput(stdout)
	serve := flags.Bool("serve", false, "offline: keep serving after the demo, until Ctrl-C")
	filterKind := flags.String("filter", "pattern", "what selects the events: pattern or cel")
	insecure := flags.Bool("insecure", false, "speak plaintext gRPC to GRPC_DOWNSTREAM_ADDRESSES (the default is TLS)")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	out := &lockedWriter{w: stdout}

	followUp, err := selection(*filterKind)
	if err != nil {
		return err
	}

	// Offline the two services run in this process; otherwise they are yours.
	addrs := splitList(getenv("GRPC_DOWNSTREAM_ADDRESSES"))
	offline := len(addrs) == 0
	apiKey, secret := getenv("EVENTBRIDGE_API_KEY"), getenv("GENESYS_WEBHOOK_SECRET")
	var intakeOpts []eventbridge.Option
	if offline {
		apiKey, secret = demoAPIKey, ""
		for _, c := range []sink.Sink{crmConsumer(out), reportingConsumer(out)} {
			addr, stop, err := startConsumer(c)
			if err != nil {
				return err
			}
			defer stop()
			addrs = append(addrs, addr)
		}
		*insecure = true // loopback
	} else {
		if len(addrs) != 2 {
			return fmt.Errorf("GRPC_DOWNSTREAM_ADDRESSES: want two addresses, crm then reporting, got %d", len(addrs))
		}
		if org := getenv("GENESYS_ORGANIZATION_ID"); org != "" {
			intakeOpts = append(intakeOpts, eventbridge.WithAllowedSources("aws.partner/genesys.com/cloud/"+org+"/"))
		}
	}
	verifier, err := newVerifier(apiKey, secret)
	if err != nil {
		return err
	}

	// The dead-letter queue: what a service cannot take is fsynced here before the sender hears
	// 200, so nothing acknowledged is lost.
	dir := getenv("DLQ_DIR")
	if dir == "" {
		if !offline {
			return errors.New("DLQ_DIR: set a directory for the dead-letter queue")
		}
		if dir, err = os.MkdirTemp("", "interaction-grpc-dlq-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
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
	fmt.Fprintf(out, "listening on %s (filter: %s)\n", url, *filterKind)

	if offline {
		if err := compareFilters(out); err != nil {
			return err
		}
		if err := postSamples(ctx, url, out); err != nil {
			return err
		}
		if err := printDeadLetters(ctx, dir, queue, out); err != nil {
			return err
		}
		if !*serve {
			return nil
		}
		fmt.Fprintf(out, "serving until Ctrl-C; try:\n  curl -H '%s: %s' --data @examples/interaction-grpc/samples/acw-sale.json %s\n",
			apiKeyHeader, demoAPIKey, url)
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
	for _, name := range demo {
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
			fmt.Fprintf(&b, "  %s -> %s: %s after %d attempt(s)", e.ID, s.Sink, s.Outcome, s.Attempts)
			if s.Outcome != fanout.Delivered {
				fmt.Fprintf(&b, " [%s: %v]", s.Condition, s.Err)
			}
			b.WriteByte('\n')
		}
		if errors.Is(err, fanbridge.ErrNoMatch) {
			fmt.Fprintf(&b, "  %s -> not selected\n", e.ID)
		}
		io.WriteString(out, b.String())
		return err
	})
}

// postSamples plays Amazon EventBridge: it posts each sample with the API key and prints the
// answer.
func postSamples(ctx context.Context, url string, out io.Writer) error {
	for _, name := range demo {
		body, err := samples.ReadFile("samples/" + name)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "POST %s\n", name)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(apiKeyHeader, demoAPIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		answer, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  answer: %d %s\n", resp.StatusCode, bytes.TrimSpace(answer))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: answered %d", name, resp.StatusCode)
		}
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

func splitList(s string) []string {
	var list []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			list = append(list, item)
		}
	}
	return list
}

// lockedWriter serialises writes: the services, the intake and the demo print concurrently.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
