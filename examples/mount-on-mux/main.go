// Command mount-on-mux mounts the fanbridge intake in a service that already has routes of its
// own: an agent board that serves GET /healthz and GET /api/agents/{id}, and learns each agent's
// presence and routing status from Genesys Cloud events posted to POST /events/genesys.
//
// The intake is an ordinary http.Handler: signature.Verify wraps it like any middleware, Go 1.22
// method patterns route to it (and answer 405 to other methods), and the service's own
// middleware chain (plain func(http.Handler) http.Handler, as chi and most routers use) wraps
// the whole mux.
//
// Offline, with no environment set, it makes a few requests to itself, prints each answer and
// exits:
//
//	go run ./examples/mount-on-mux
//
// Behind a real sender it serves until Ctrl-C:
//
//	EVENTBRIDGE_API_KEY=... LISTEN_ADDR=:8080 go run ./examples/mount-on-mux
package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/examples/internal/demo"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/filter"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/signature"
)

// The offline demo's HMAC secret (its API key is demo.APIKey); it only ever guards a loopback
// port.
const demoSecret = "offline-demo-secret"

//go:embed samples/*.json
var samples embed.FS

func main() { demo.Main("mount-on-mux", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) (err error) {
	flags, serve := demo.Flags("mount-on-mux", stdout)
	if done, err := demo.Parse(flags, args); done {
		return err
	}
	out := demo.Locked(stdout)

	// With credentials in the environment a real sender is expected; without, the demo plays it.
	apiKey, secret := getenv("EVENTBRIDGE_API_KEY"), getenv("GENESYS_WEBHOOK_SECRET")
	offline := apiKey == "" && secret == ""
	if offline {
		// The demo touches only temporary files and a loopback port.
		if err := demo.CheckOffline(getenv, "EVENTBRIDGE_API_KEY or GENESYS_WEBHOOK_SECRET", "DLQ_DIR", "LISTEN_ADDR"); err != nil {
			return err
		}
		apiKey, secret = demo.APIKey, demoSecret
	}
	verifier, err := demo.Verifier(apiKey, secret)
	if err != nil {
		return err
	}

	// The events feed the board, an in-process sink.
	agents := newBoard()
	cfg := fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "board", Sink: agents}},
		Routes: []fanout.Route{{Name: "agents", Filter: filter.Type("v2.users.{id}.presence", "v2.users.{id}.activity"), Sinks: []string{"board"}}},
	}
	if dir := getenv("DLQ_DIR"); dir != "" {
		queue, err := filedlq.Open(dir)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, queue.Close()) }()
		cfg.DLQ = queue
	}
	dispatcher, err := fanout.New(cfg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, demo.Close(ctx, dispatcher)) }()
	intake, err := eventbridge.NewHandler(dispatcher)
	if err != nil {
		return err
	}

	// The service's routes, the intake among them. The method in each pattern makes the mux
	// answer 405 with an Allow header to any other method.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /api/agents/{id}", agents.serveAgent)
	mux.Handle("POST /events/genesys", chain(intake,
		signature.Verify(verifier), // only this route needs the sender's credentials
	))
	// The chain every route goes through, outermost first, as chi's Use would apply it.
	handler := chain(mux, recoverPanics(out), requestID, accessLog(out))

	srv, err := demo.Listen(getenv("LISTEN_ADDR"), offline, handler)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, srv.Shutdown(ctx)) }()
	fmt.Fprintf(out, "listening on %s\n", srv.URL)

	if offline {
		if err := makeRequests(ctx, srv.URL, out); err != nil {
			return err
		}
		if !*serve {
			return nil
		}
		fmt.Fprintf(out, "serving until Ctrl-C; try:\n  curl %s/api/agents/e40f28ea-fa86-493f-a5b8-d559c8533c96\n", srv.URL)
	}
	<-ctx.Done()
	fmt.Fprintln(out, "shutting down")
	return nil
}

// chain wraps h in middlewares, the first outermost. Any func(http.Handler) http.Handler fits:
// signature.Verify's result, chi's and gorilla's middlewares, your own.
func chain(h http.Handler, middlewares ...func(http.Handler) http.Handler) http.Handler {
	for i := len(middlewares) - 1; i >= 0; i-- {
		h = middlewares[i](h)
	}
	return h
}

// requestID gives every request an id, taken from X-Request-Id when the caller sent one, and
// returns it in the answer.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if id == "" {
			id = rand.Text()[:12]
			r.Header.Set("X-Request-Id", id)
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r)
	})
}

// accessLog prints one line per request: method, path, status and duration.
func accessLog(out io.Writer) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
			next.ServeHTTP(rec, r)
			fmt.Fprintf(out, "  access: %s %s %d id=%s in %s\n", r.Method, r.URL.Path, rec.status,
				r.Header.Get("X-Request-Id"), time.Since(start).Round(time.Microsecond))
		})
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap hands http.ResponseController the server's writer underneath. Every middleware that
// wraps the ResponseWriter needs it: the intake and signature.Verify answer a body too slow for
// the server's ReadTimeout with 503 and Retry-After, under a write deadline of their own that
// they set through the controller, and without Unwrap that call fails; if the server's deadline
// has passed with the read one, the sender then hears only a closed connection, not the answer
// that tells it to retry.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// recoverPanics answers 500 when a handler panics, instead of dropping the connection.
func recoverPanics(out io.Writer) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					fmt.Fprintf(out, "  panic serving %s: %v\n", r.URL.Path, v)
					http.Error(w, "internal error", http.StatusInternalServerError)
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// agentStatus is what the board knows about one agent.
type agentStatus struct {
	Presence      string    `json:"presence,omitempty"`
	RoutingStatus string    `json:"routingStatus,omitempty"`
	Updated       time.Time `json:"updated,omitzero"`
	// When each field's state began: each is kept apart, as an event can say newer things of
	// one and older of the other.
	presenceAt, routingAt time.Time
}

// board keeps each agent's latest presence and routing status. It is the service's own state,
// fed by a sink: Send is called by the dispatcher, serveAgent by the API route.
type board struct {
	mu     sync.RWMutex
	agents map[string]agentStatus
}

func newBoard() *board {
	return &board{agents: map[string]agentStatus{}}
}

// Send applies a presence or activity event to the board.
func (b *board) Send(ctx context.Context, e *fanbridge.Event) error {
	// The concrete topic names the agent: v2.users.<id>.presence.
	parts := strings.Split(e.Topic, ".")
	if len(parts) != 4 || parts[0] != "v2" || parts[1] != "users" {
		return retry.Permanent(fmt.Errorf("board: topic %q names no user", e.Topic))
	}
	var body struct {
		PresenceDefinition struct{ SystemPresence string } `json:"presenceDefinition"` // presence
		ModifiedDate       time.Time                       `json:"modifiedDate"`       // presence
		RoutingStatus      struct {
			Status    string
			StartTime time.Time `json:"startTime"`
		} `json:"routingStatus"` // activity
		Presence struct {
			PresenceDefinition struct{ SystemPresence string } `json:"presenceDefinition"`
			ModifiedDate       time.Time                       `json:"modifiedDate"`
		} `json:"presence"` // activity
	}
	if err := json.Unmarshal(e.Data, &body); err != nil {
		return retry.Permanent(fmt.Errorf("board: event %s: %w", e.ID, err))
	}
	// Each field is placed by the body's own timestamp of when its state began, or, without one,
	// by the envelope's time: an event delivered through EventBridge and a WebSocket notification
	// are then placed alike.
	presenceAt := cmp.Or(body.ModifiedDate, body.Presence.ModifiedDate, e.Time)
	routingAt := cmp.Or(body.RoutingStatus.StartTime, e.Time)

	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.agents[parts[2]]
	// Delivery is at least once and in no particular order: never let an older report of a field
	// win, nor one that says nothing of when it happened win over one that does.
	if p := cmp.Or(body.PresenceDefinition.SystemPresence, body.Presence.PresenceDefinition.SystemPresence); p != "" && !presenceAt.Before(s.presenceAt) {
		s.Presence, s.presenceAt = p, presenceAt
	}
	if r := body.RoutingStatus.Status; r != "" && !routingAt.Before(s.routingAt) {
		s.RoutingStatus, s.routingAt = r, routingAt
	}
	s.Updated = s.presenceAt
	if s.routingAt.After(s.Updated) {
		s.Updated = s.routingAt
	}
	b.agents[parts[2]] = s
	return nil
}

// serveAgent answers GET /api/agents/{id}.
func (b *board) serveAgent(w http.ResponseWriter, r *http.Request) {
	b.mu.RLock()
	s, ok := b.agents[r.PathValue("id")]
	b.mu.RUnlock()
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":"unknown agent"}`+"\n")
		return
	}
	json.NewEncoder(w).Encode(s)
}

// makeRequests makes the requests a monitoring probe, a sender and an API client would, and
// prints each answer.
func makeRequests(ctx context.Context, base string, out io.Writer) error {
	activity, err := samples.ReadFile("samples/websocket-user-activity.json")
	if err != nil {
		return err
	}
	presence, err := samples.ReadFile("samples/user-presence-on-queue.json")
	if err != nil {
		return err
	}
	sig, err := signature.SignHMAC(demo.HMACScheme, demoSecret, presence)
	if err != nil {
		return err
	}
	steps := []struct {
		what, method, path string
		body               []byte
		header             http.Header
		want               int
	}{
		{"health check", http.MethodGet, "/healthz", nil, nil, http.StatusOK},
		{"event without credentials", http.MethodPost, "/events/genesys", activity, nil, http.StatusUnauthorized},
		{"event with a wrong key", http.MethodPost, "/events/genesys", activity, http.Header{demo.APIKeyHeader: {"guess"}}, http.StatusUnauthorized},
		{"wrong method", http.MethodGet, "/events/genesys", nil, nil, http.StatusMethodNotAllowed},
		{"activity with the API key", http.MethodPost, "/events/genesys", activity, http.Header{demo.APIKeyHeader: {demo.APIKey}}, http.StatusOK},
		{"presence signed with HMAC", http.MethodPost, "/events/genesys", presence, http.Header{demo.HMACScheme.Header: {sig}}, http.StatusOK},
		{"the agent's status", http.MethodGet, "/api/agents/e40f28ea-fa86-493f-a5b8-d559c8533c96", nil, nil, http.StatusOK},
		{"an unknown agent", http.MethodGet, "/api/agents/nobody", nil, nil, http.StatusNotFound},
	}
	for _, s := range steps {
		fmt.Fprintf(out, "%s: %s %s\n", s.what, s.method, s.path)
		resp, answer, err := demo.Do(ctx, s.method, base+s.path, s.body, s.header)
		if err != nil {
			return err
		}
		extra := ""
		if allow := resp.Header.Get("Allow"); allow != "" {
			extra = " (Allow: " + allow + ")"
		}
		fmt.Fprintf(out, "  -> %d %s%s\n", resp.StatusCode, bytes.TrimSpace(answer), extra)
		if resp.StatusCode != s.want {
			return fmt.Errorf("%s: answered %d, want %d", s.what, resp.StatusCode, s.want)
		}
	}
	return nil
}
