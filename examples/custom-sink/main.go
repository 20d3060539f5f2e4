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
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/examples/internal/demo"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/signature"
)

//go:embed samples/*.json
var samples embed.FS

func main() { demo.Main("custom-sink", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	flags, serve := demo.Flags("custom-sink", stdout)
	path := flags.String("out", "", "the audit log file (default genesys-audit.jsonl; the offline demo writes a temporary one)")
	if done, err := demo.Parse(flags, args); done {
		return err
	}

	// With credentials in the environment a real sender is expected; without, the demo plays it.
	apiKey, secret := getenv("EVENTBRIDGE_API_KEY"), getenv("GENESYS_WEBHOOK_SECRET")
	offline := apiKey == "" && secret == ""
	if offline {
		// The demo touches only temporary files and a loopback port: its sample events must
		// never land in a real audit log.
		const missing = "EVENTBRIDGE_API_KEY or GENESYS_WEBHOOK_SECRET"
		if *path != "" {
			return demo.NotOffline("-out", missing)
		}
		if err := demo.CheckOffline(getenv, missing, "DLQ_DIR", "LISTEN_ADDR"); err != nil {
			return err
		}
		apiKey = demo.APIKey
	}
	verifier, err := demo.Verifier(apiKey, secret)
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
	defer func() { err = errors.Join(err, demo.Close(ctx, dispatcher)) }()

	intake, err := eventbridge.NewHandler(dispatcher)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /events/genesys", signature.Verify(verifier)(intake))

	srv, err := demo.Listen(getenv("LISTEN_ADDR"), offline, mux)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, srv.Shutdown(ctx)) }()
	url := srv.URL + "/events/genesys"
	fmt.Fprintf(stdout, "listening on %s, appending to %s\n", url, *path)

	if offline {
		// A refusal for good, as the dispatcher would see it: no retry, straight to the DLQ.
		err := audit.Send(ctx, &fanbridge.Event{ID: "not-utf8", Type: "demo", Data: []byte{0xff, 0xfe}})
		fmt.Fprintf(stdout, "a body that is not UTF-8: %v (%s)\n", err, retry.Classify(err))
		// Then every sample (no names: all of them) as a sender would post it, one line each.
		if _, err := demo.PostSamples(ctx, url, samples, nil, stdout, demo.ShowLine); err != nil {
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
		demo.ServingHint(stdout, "examples/custom-sink/samples/customer-end.json", url)
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "shutting down")
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
