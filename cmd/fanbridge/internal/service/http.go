package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/internal/chunkbuf"
	"github.com/fanbridge/fanbridge/signature"
)

// routes is the fixed top-level handler of the intake's listener: health, readiness, metrics
// unless an admin listener serves them, and the intake paths behind an atomic pointer that a
// reload swaps. Health and readiness stay here either way, for the load balancer in front of it.
func (s *Service) routes(metrics bool) http.Handler {
	mux := s.opsMux(metrics)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if s.shutting.Load() {
			// net/http drops a request whose header completes once its Shutdown has begun; one
			// read in the instant between the signal and that call is refused here the same way,
			// before its body is read, so that the sender retries elsewhere.
			w.Header().Set("Retry-After", "1")
			chunkbuf.LeavePending(w, r)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "shutting down, retry later"})
			return
		}
		(*s.intake.Load()).ServeHTTP(w, r)
	})
	return cleanOnly(mux)
}

// adminRoutes is the handler of the admin listener: health, readiness and metrics, and nothing
// else.
func (s *Service) adminRoutes() http.Handler {
	mux := s.opsMux(true)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		chunkbuf.LeavePending(w, r)
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such path"})
	})
	return cleanOnly(mux)
}

// cleanOnly answers a request whose path is not clean ("//events", "/./events", "/x/../events")
// as one for a path the service does not serve. ServeMux would redirect it to the clean path,
// before any credential is checked: an answer no sender expects, which a sender such as Amazon
// EventBridge does not follow and counts as a failure.
func cleanOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != cleanPath(r.URL.Path) {
			chunkbuf.LeavePending(w, r)
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such path"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// cleanPath is the path ServeMux redirects a request for p to when they differ: p with a leading
// slash, without dot segments or repeated slashes, and keeping a trailing slash.
func cleanPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// opsMux is a mux with health, readiness and, when metrics is set, metrics.
func (s *Service) opsMux(metrics bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/healthz", getOnly(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})))
	mux.Handle("/readyz", getOnly(s.ready))
	if metrics {
		mux.Handle("/metrics", getOnly(s.tel.metrics))
	}
	return mux
}

// getOnly answers 405 to any method but GET and HEAD. A "GET /path" pattern would leave the
// other methods to the mux's "/" pattern, which answers 404 for a path the service does serve.
// A body sent with any of them is not read.
func getOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunkbuf.LeavePending(w, r)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// buildIntake builds the handler of every intake path: a method check, signature.Verify with
// the path's verifiers, and an eventbridge.Handler in front of the Dispatcher. A standard_webhooks
// verifier whose path, place among the path's standard_webhooks verifiers and replay_cache are
// unchanged gets the replay cache it had, its ids kept longer when the tolerance was raised
// (from s.replay, which the caller guards); the caches the handler uses are returned, for the
// caller to keep once the handler is in place.
func (s *Service) buildIntake(cfg *config.Config) (_ http.Handler, _ map[string]*replayStore, err error) {
	// ServeMux panics on a pattern it refuses. Validate refuses such paths first; should one get
	// through, a reload must fail with an error, not take the running service down.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("config: intake: %v", p)
		}
	}()
	used := map[string]*replayStore{}
	caches := func(key string, size int, tolerance time.Duration) (signature.ReplayCache, error) {
		if r, ok := s.replay[key]; ok {
			r.raise(tolerance, time.Now)
			used[key] = r
			return &replayView{store: r, tolerance: tolerance}, nil
		}
		c, err := signature.NewMemoryReplayCache(size)
		if err != nil {
			return nil, err
		}
		r := &replayStore{cache: c, maxTolerance: tolerance}
		used[key] = r
		return &replayView{store: r, tolerance: tolerance}, nil
	}
	mux := http.NewServeMux()
	d := s.eventLogger(cfg, "")
	for i := range cfg.Intake {
		in := &cfg.Intake[i]
		p := fmt.Sprintf("config: intake[%d]", i)
		opts := append(in.HandlerOptions(),
			eventbridge.WithLogger(s.log.With("component", "intake", "intake", in.Path)),
			eventbridge.WithMeterProvider(s.tel.meters),
			eventbridge.WithMetricAttributes(attribute.String("intake", cfg.IntakeLabel(i))),
			eventbridge.WithTracerProvider(s.tel.tracer),
		)
		if d.async {
			opts = append(opts, eventbridge.WithQueuingDispatcher())
		}
		// Each path deduplicates on its own: Source and ID are the sender's to write, and a sender
		// trusted on one path must not be able to make another path's events look like duplicates.
		scoped := *d
		scoped.scope = in.Path
		h, err := eventbridge.NewHandler(&scoped, opts...)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p, err)
		}
		var next http.Handler = h
		v, err := in.VerifierWith(caches)
		if err != nil {
			return nil, nil, fmt.Errorf("%s.%w", p, err)
		}
		if v != nil {
			next = signature.Verify(v,
				signature.WithLogger(s.log.With("component", "signature", "intake", in.Path)),
				signature.WithMeterProvider(s.tel.meters),
				signature.WithMetricAttributes(attribute.String("intake", cfg.IntakeLabel(i))),
				signature.WithMaxBodyBytes(int64(in.MaxBody)),
			)(h)
		}
		mux.Handle(in.Path, postOnly(next))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		chunkbuf.LeavePending(w, r)
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such path"})
	})
	return mux, used, nil
}

// postOnly answers other methods with 405 before credentials are even looked at.
func postOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			chunkbuf.LeavePending(w, r)
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// replayStore is a standard_webhooks verifier's replay cache as the service keeps it across
// reloads. A verifier keeps an id until its message's timestamp goes stale under its tolerance,
// so a reload that raises the tolerance would let go, too early, the ids of messages the new
// verifier still takes: every id is kept instead for the longest tolerance the cache has served
// (the ids held when it is raised are extended), and a message as old as the floor or older, whose
// id may already have been let go under a shorter tolerance, is refused as a replay. Such a
// message was stale under the tolerance in force at the raise, so only a sender whose clock is
// behind by more than that (the usual reason to raise it) has messages refused, until their
// timestamps pass the floor: for at most the new tolerance minus the old.
type replayStore struct {
	cache *signature.MemoryReplayCache
	// mu orders claims (read) against a raise (write), so that no claim keeps an id only for
	// the tolerance before the raise after the ids held were extended.
	mu           sync.RWMutex
	maxTolerance time.Duration
	floor        time.Time // the zero time until the first raise
}

// raise makes tolerance the store's longest, when it is longer, at the time now gives, read once
// the claims are held off (a claim at a later time could let go ids the floor would not cover).
func (r *replayStore) raise(tolerance time.Duration, now func() time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if tolerance <= r.maxTolerance {
		return
	}
	// Ids of messages this old or older may have been let go under the old longest tolerance
	// (an id goes once its timestamp plus that tolerance is not after the time of a claim).
	if f := now().Add(-r.maxTolerance); f.After(r.floor) {
		r.floor = f
	}
	r.cache.Extend(tolerance - r.maxTolerance)
	r.maxTolerance = tolerance
}

// replayView is the ReplayCache of one verifier over a store, tolerance its tolerance.
type replayView struct {
	store     *replayStore
	tolerance time.Duration
}

// Claim implements signature.ReplayCache: expires is the message's timestamp plus the
// verifier's tolerance.
func (v *replayView) Claim(ctx context.Context, id string, now, expires time.Time) (bool, error) {
	r := v.store
	r.mu.RLock()
	defer r.mu.RUnlock()
	// expires is the timestamp plus the tolerance plus a nanosecond: the timestamp is at or
	// before the floor exactly when this is not after it.
	if !r.floor.IsZero() && !expires.Add(-v.tolerance).After(r.floor) {
		return false, nil
	}
	if pad := r.maxTolerance - v.tolerance; pad > 0 {
		expires = expires.Add(pad)
	}
	return r.cache.Claim(ctx, id, now, expires)
}

// Release implements signature.ReplayCache.
func (v *replayView) Release(ctx context.Context, id string) error {
	return v.store.cache.Release(ctx, id)
}

// PendingClaims passes on the cache's set of claims in flight, so that a verifier built by a
// reload sees the requests the one before it is still handling.
func (v *replayView) PendingClaims() *signature.PendingClaims { return v.store.cache.PendingClaims() }

// eventLogger returns the eventLogger of cfg's logging settings under the deduplication scope.
func (s *Service) eventLogger(cfg *config.Config, scope string) *eventLogger {
	d := &eventLogger{d: s.disp, log: s.log.With("component", "events"), async: cfg.Dispatch.Mode == "async", level: slog.LevelDebug, scope: scope}
	if cfg.Logging.Events {
		d.level = slog.LevelInfo
	}
	return d
}

// eventLogger logs one line per dispatched event: id, type, matched routes, and each sink's
// outcome. In Sync mode it calls Deliver, which is Dispatch with the per-sink results. It
// dispatches under its intake's deduplication scope.
type eventLogger struct {
	d     *fanout.Dispatcher
	log   *slog.Logger
	level slog.Level
	async bool
	scope string
}

func (l *eventLogger) Dispatch(ctx context.Context, e *fanbridge.Event) error {
	ctx = fanout.WithDedupScope(ctx, l.scope)
	if !l.log.Enabled(ctx, l.level) {
		return l.d.Dispatch(ctx, e)
	}
	if l.async {
		err := l.d.Dispatch(ctx, e)
		l.log.Log(ctx, l.level, "event", "id", e.ID, "type", e.Type, "outcome", outcome(err, true))
		return err
	}
	res, err := l.d.Deliver(ctx, e)
	var routes, sinks []string
	for _, r := range res.Sinks {
		if !slices.Contains(routes, r.Route) {
			routes = append(routes, r.Route)
		}
		sinks = append(sinks, r.Sink+"="+string(r.Outcome))
	}
	l.log.Log(ctx, l.level, "event", "id", e.ID, "type", e.Type, "routes", routes, "sinks", sinks, "outcome", outcome(err, false))
	return err
}

func outcome(err error, async bool) string {
	switch {
	case err == nil && async:
		return "queued"
	case err == nil:
		return "delivered"
	case errors.Is(err, fanbridge.ErrNoMatch):
		return "ignored"
	case errors.Is(err, fanbridge.ErrDuplicate):
		return "duplicate"
	case errors.Is(err, fanbridge.ErrOverloaded):
		return "overloaded"
	case errors.Is(err, fanbridge.ErrClosed):
		return "closed"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout" // as the intake counts it
	}
	return "failed"
}

func resultAttr(v string) attribute.KeyValue { return attribute.String("result", v) }

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return reflect.DeepEqual(ja, jb)
}

// ParseLevel maps a configuration level name to a slog level.
func parseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
