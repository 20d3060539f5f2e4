package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/fanout"
)

// The HTTP server's timeouts. ReadTimeout bounds how long a client may take over a request, body
// included: the HMAC of GENESYS_WEBHOOK_SECRET is checked only once the whole body is in, so
// without it a client with no credentials at all could trickle a body and hold a connection for
// as long as it liked. A body that misses it is answered 503 with Retry-After (by
// signature.Verify, or by the eventbridge.Handler when it reads the body itself), so a real
// sender tries again. WriteTimeout counts from the end of the headers: it is longer than
// ReadTimeout for the body, plus the intake's dispatch budget (eventbridge.DefaultDispatchTimeout)
// and the dead-letter writes that may end after it (fanout.DefaultDLQTimeout), so that no answer
// is cut off. IdleTimeout closes kept-alive connections that no request uses.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 2 * time.Minute
)

// Server is an example's HTTP server.
type Server struct {
	// URL is where it listens: http://host:port, without a path.
	URL string
	srv *http.Server
}

// Listen serves h on addr (LISTEN_ADDR as given), with the timeouts above. Without an address a
// service listens on :8080, and the offline demo on a free loopback port, so that it never
// collides with anything. The offline demo with an address is an error (see CheckOffline): its
// key is well known.
func Listen(addr string, offline bool, h http.Handler) (*Server, error) {
	if offline && addr != "" {
		return nil, errors.New("LISTEN_ADDR: the offline demo listens only on a free loopback port")
	}
	if addr == "" {
		addr = "127.0.0.1:0"
		if !offline {
			addr = ":8080"
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
	}
	go srv.Serve(ln)
	return &Server{URL: "http://" + ln.Addr().String(), srv: srv}, nil
}

// Shutdown stops taking requests and waits up to five seconds for those in flight. It does so
// even when ctx is already cancelled, as it is after Ctrl-C.
func (s *Server) Shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// ServingHint tells, once the offline demo is done and keeps serving, how to post sample (a path
// from the repository's root) to url by hand. The command names the JSON content type, which the
// intake requires (curl's --data alone sends a form, answered 415), and posts the file as it is
// (--data would drop its line breaks).
func ServingHint(out io.Writer, sample, url string) {
	fmt.Fprintf(out, "serving until Ctrl-C; try:\n  curl -H 'Content-Type: application/json' -H '%s: %s' --data-binary @%s %s\n", APIKeyHeader, APIKey, sample, url)
}

// Do sends a request with body and header to url and returns the answer, its body read and
// closed.
func Do(ctx context.Context, method, url string, body []byte, header http.Header) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, nil, err
	}
	return resp, answer, nil
}

// Show is how PostSamples prints the samples it posts and the answers.
type Show int

const (
	// ShowBody prints "POST <name>" before each request, so that what the program prints while it
	// handles the event comes under it, then "  answer: <status code> <body>".
	ShowBody Show = iota
	// ShowStatus is ShowBody with only the status the answer names ("delivered", "ignored",
	// "duplicate") in place of the body; an answer that is not JSON is an error.
	ShowStatus
	// ShowLine prints "POST <name>: <status code> <body>" once the answer is in.
	ShowLine
)

// PostSamples plays the sender of the offline demo, as an Amazon EventBridge API destination
// would: it posts each of the named files under samples/ in fsys to url, in order, as JSON with
// APIKey in APIKeyHeader, and prints each answer as show says. No names means every file under
// samples/, in name order. It stops at the first answer other than 200 OK and returns how many
// events the intake answered "delivered".
func PostSamples(ctx context.Context, url string, fsys fs.FS, names []string, out io.Writer, show Show) (delivered int, err error) {
	if len(names) == 0 {
		entries, err := fs.ReadDir(fsys, "samples")
		if err != nil {
			return 0, err
		}
		for _, e := range entries {
			names = append(names, e.Name())
		}
	}
	header := http.Header{"Content-Type": {"application/json"}, APIKeyHeader: {APIKey}}
	for _, name := range names {
		body, err := fs.ReadFile(fsys, "samples/"+name)
		if err != nil {
			return 0, err
		}
		if show != ShowLine {
			fmt.Fprintf(out, "POST %s\n", name)
		}
		resp, answer, err := Do(ctx, http.MethodPost, url, body, header)
		if err != nil {
			return 0, err
		}
		answer = bytes.TrimSpace(answer)
		var status struct{ Status string }
		if err := json.Unmarshal(answer, &status); err != nil && show == ShowStatus {
			return 0, fmt.Errorf("%s: answer: %w", name, err)
		}
		switch show {
		case ShowBody:
			fmt.Fprintf(out, "  answer: %d %s\n", resp.StatusCode, answer)
		case ShowStatus:
			fmt.Fprintf(out, "  answer: %d %s\n", resp.StatusCode, status.Status)
		case ShowLine:
			fmt.Fprintf(out, "POST %s: %d %s\n", name, resp.StatusCode, answer)
		}
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("%s: answered %d", name, resp.StatusCode)
		}
		if status.Status == "delivered" {
			delivered++
		}
	}
	return delivered, nil
}

// Report is d as the intake's Dispatcher, printing to out what became of each event: for each
// sink it went to, a line with the event's id and sinkLine's words (followed by the condition and
// the error when it was not delivered), or, when no route wants it, unrouted's words. Deliver is
// Dispatch with a result per sink; the Handler still answers from the error alone.
func Report(d *fanout.Dispatcher, out io.Writer, sinkLine func(fanout.SinkResult) string, unrouted func(*fanbridge.Event) string) eventbridge.Dispatcher {
	return eventbridge.DispatcherFunc(func(ctx context.Context, e *fanbridge.Event) error {
		res, err := d.Deliver(ctx, e)
		var b strings.Builder
		for _, s := range res.Sinks {
			fmt.Fprintf(&b, "  %s -> %s", e.ID, sinkLine(s))
			if s.Outcome != fanout.Delivered && s.Err != nil {
				fmt.Fprintf(&b, " [%s: %v]", s.Condition, s.Err)
			}
			b.WriteByte('\n')
		}
		if errors.Is(err, fanbridge.ErrNoMatch) {
			fmt.Fprintf(&b, "  %s -> %s\n", e.ID, unrouted(e))
		}
		io.WriteString(out, b.String())
		return err
	})
}

// Close closes d, letting what it accepted finish or be dead-lettered, within 10 seconds. It
// runs when ctx has already ended (Ctrl-C), so the drain gets a deadline of its own: Close with
// an ended context would give up on the drain at once.
func Close(ctx context.Context, d *fanout.Dispatcher) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return d.Close(ctx)
}
