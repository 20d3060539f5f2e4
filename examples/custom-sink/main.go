// Command custom-sink shows how to write a sink of your own: AuditLog (auditlog.go) keeps every
// Genesys Cloud event in a local JSON Lines file, with no external service. It classifies its
// failures with retry.Permanent, releases the file through io.Closer, and passes the sinktest
// conformance suite (main_test.go) exactly as a sink of yours would.
//
// Offline, with no environment set, it posts the embedded samples to itself, prints what the
// log holds and exits:
//
//	go run ./examples/custom-sink
//
// Behind a real sender it serves until Ctrl-C, appending to the file given with -out:
//
//	EVENTBRIDGE_API_KEY=... LISTEN_ADDR=:8080 go run ./examples/custom-sink -out /var/log/genesys-audit.jsonl
package main

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/signature"
)

// How senders prove who they are. An Amazon EventBridge API destination sends its Connection's
// API key in a header the Connection names; a signing proxy of your own may add a hex HMAC of
// the body instead (Genesys itself does not sign what EventBridge delivers).
const apiKeyHeader = "X-Api-Key"

var hmacScheme = signature.HMACScheme{Header: "X-Genesys-Event-Signature", Encoding: signature.Hex}

// The offline demo's key; it only ever guards a loopback port.
const demoAPIKey = "offline-demo-key"

//go:embed samples/*.json
var samples embed.FS

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "custom-sink:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	flags := flag.NewFlagSet("custom-sink", flag.ContinueOnError)
	flags.SetOutput(stdout)
	serve := flags.Bool("serve", false, "offline: keep serving after the demo, until Ctrl-C")
	path := flags.String("out", "", "the audit log file (default genesys-audit.jsonl; offline a temporary file)")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}

	// With credentials in the environment a real sender is expected; without, the demo plays it.
	apiKey, secret := getenv("EVENTBRIDGE_API_KEY"), getenv("GENESYS_WEBHOOK_SECRET")
	offline := apiKey == "" && secret == ""
	if offline {
		apiKey = demoAPIKey
	}
	verifier, err := newVerifier(apiKey, secret)
	if err != nil {
		return err
	}
	if *path == "" {
		*path = "genesys-audit.jsonl"
		if offline {
			dir, err := os.MkdirTemp("", "custom-sink-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			*path = filepath.Join(dir, "genesys-audit.jsonl")
		}
	}

	audit, err := OpenAuditLog(*path)
	if err != nil {
		return err
	}
	cfg := fanout.Config{
		Sinks: []fanout.SinkConfig{{
			Name: "audit",
			Sink: audit,
			// A full disk may take a while to clear; the sender retries what this budget cannot
			// deliver (503), or the dead-letter queue keeps it when there is one.
			Retry: retry.Policy{InitialInterval: 100 * time.Millisecond, MaxAttempts: 6},
		}},
		Routes: []fanout.Route{{Name: "everything", Filter: fanout.All, Sinks: []string{"audit"}}},
	}
	if dir := getenv("DLQ_DIR"); dir != "" {
		queue, err := filedlq.Open(dir)
		if err != nil {
			audit.Close()
			return err
		}
		defer func() { err = errors.Join(err, queue.Close()) }()
		cfg.DLQ = queue
	}
	// The dispatcher closes the sink (io.Closer) once its deliveries have drained.
	dispatcher, err := fanout.New(cfg)
	if err != nil {
		audit.Close()
		return err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err = errors.Join(err, dispatcher.Close(ctx))
	}()

	intake, err := eventbridge.NewHandler(dispatcher)
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
	fmt.Fprintf(stdout, "listening on %s, appending to %s\n", url, *path)

	if offline {
		// A refusal for good, as the dispatcher would see it: no retry, straight to the DLQ.
		err := audit.Send(ctx, &fanbridge.Event{ID: "not-utf8", Type: "demo", Data: []byte{0xff, 0xfe}})
		fmt.Fprintf(stdout, "a body that is not UTF-8: %v (%s)\n", err, retry.Classify(err))
		if err := postSamples(ctx, url, stdout); err != nil {
			return err
		}
		if err := printLog(*path, stdout); err != nil {
			return err
		}
		if q, ok := cfg.DLQ.(dlq.Reader); ok {
			if err := printDeadLetters(ctx, q, stdout); err != nil {
				return err
			}
		}
		if !*serve {
			return nil
		}
		fmt.Fprintf(stdout, "serving until Ctrl-C; try:\n  curl -H '%s: %s' --data @examples/custom-sink/samples/customer-end.json %s\n",
			apiKeyHeader, demoAPIKey, url)
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "shutting down")
	return nil
}

// newVerifier accepts whichever credentials are configured.
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
	return signature.Any(vs...)
}

// postSamples plays the sender: it posts each sample with the API key and prints the answer.
func postSamples(ctx context.Context, url string, out io.Writer) error {
	names, err := samples.ReadDir("samples")
	if err != nil {
		return err
	}
	for _, name := range names {
		body, err := samples.ReadFile("samples/" + name.Name())
		if err != nil {
			return err
		}
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
		fmt.Fprintf(out, "POST %s: %d %s\n", name.Name(), resp.StatusCode, bytes.TrimSpace(answer))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: answered %d", name.Name(), resp.StatusCode)
		}
	}
	return nil
}

// printLog shows the first line of the log as it is stored, then every event read back.
func printLog(path string, out io.Writer) error {
	content, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	first, _, _ := bytes.Cut(content, []byte("\n"))
	fmt.Fprintf(out, "first line of the log:\n  %s\n", first)
	events, err := ReadAuditLog(bytes.NewReader(content))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%d events in the log:\n", len(events))
	for _, e := range events {
		fmt.Fprintf(out, "  %s %s %s (%d bytes of body)\n", e.Time.Format(time.RFC3339), e.ID, e.Type, len(e.Data))
	}
	return nil
}

// printDeadLetters lists what the audit log could not take.
func printDeadLetters(ctx context.Context, r dlq.Reader, out io.Writer) error {
	fmt.Fprintln(out, "dead-letter queue:")
	for e, err := range dlq.All(ctx, r) {
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  %s sink=%s condition=%s error=%q\n", e.Event.ID, e.Sink, e.Condition, e.Error)
	}
	return nil
}
