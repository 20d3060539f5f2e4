package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
)

// NewLogger returns the logger the configuration asks for, writing to w, and the level variable
// a reload adjusts.
func NewLogger(c config.Logging, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	lv := &slog.LevelVar{}
	lv.Set(parseLevel(c.Level))
	opts := &slog.HandlerOptions{Level: lv}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts)), lv
	}
	return slog.New(slog.NewJSONHandler(w, opts)), lv
}

type probe struct {
	name  string
	check func(ctx context.Context) error
}

// dlqProbe names the dead-letter queue among the sinks in /readyz and in the readiness logs. A
// sink's name holds no space, so no sink can take it: one named "dlq" would be confused with the
// queue, and the queue answering its probe would log that sink as ready again while it is down.
const dlqProbe = "dead-letter queue"

// unavailable is all /readyz says of a sink whose probe failed. The probe's error can name
// brokers, hosts and ports, which an unauthenticated caller has no business learning; the log
// has it.
const unavailable = "unavailable"

// reasonError is a probe's error that says, in readyzReason, why it failed in words /readyz may
// show: nothing of a host, a port or a credential.
type reasonError interface {
	error
	readyzReason() string
}

// readiness answers /readyz: ready when every sink (and the dead-letter queue) answers its probe,
// with the result cached briefly so that frequent probes do not hammer the sinks.
type readiness struct {
	cache    time.Duration
	timeout  time.Duration
	shutting *atomic.Bool
	log      *slog.Logger

	probes atomic.Pointer[[]probe]
	gen    atomic.Int64 // bumped by setProbes, so a cached answer for old sinks is not reused

	mu      sync.Mutex
	at      time.Time
	atGen   int64
	unready map[string]string
	// failed holds each failing probe's error text from the last check, so that a failure is
	// logged when it starts or changes, not at every check.
	failed map[string]string
	ok     atomic.Bool
}

func newReadiness(h config.Health, shutting *atomic.Bool, mp metric.MeterProvider, log *slog.Logger) *readiness {
	r := &readiness{cache: h.Cache.D(), timeout: h.ProbeTimeout.D(), shutting: shutting, log: log}
	g, err := mp.Meter("github.com/fanbridge/fanbridge/cmd/fanbridge").Int64ObservableGauge("fanbridge.ready",
		metric.WithDescription("1 when the last readiness check passed and the service is not shutting down, else 0."),
		metric.WithUnit("{state}"))
	if err == nil {
		_, _ = mp.Meter("github.com/fanbridge/fanbridge/cmd/fanbridge").RegisterCallback(func(_ context.Context, o metric.Observer) error {
			v := int64(0)
			if r.ok.Load() && !r.shutting.Load() {
				v = 1
			}
			o.ObserveInt64(g, v)
			return nil
		}, g)
	}
	return r
}

func (r *readiness) setProbes(ps []probe) {
	r.probes.Store(&ps)
	r.gen.Add(1)
}

// swapProbes makes ps the probes of the next check, then runs release once no check still uses
// the probes before them.
func (r *readiness) swapProbes(ps []probe, release func()) {
	r.setProbes(ps)
	r.mu.Lock()
	defer r.mu.Unlock()
	release()
}

func (r *readiness) check(ctx context.Context) map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	gen := r.gen.Load()
	if !r.at.IsZero() && r.atGen == gen && time.Since(r.at) < r.cache {
		return r.unready
	}
	ps := *r.probes.Load()
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() { errs[i] = p.check(ctx) })
	}
	wg.Wait()
	unready, failed := map[string]string{}, map[string]string{}
	for i, p := range ps {
		if errs[i] == nil {
			if _, was := r.failed[p.name]; was {
				r.log.Info("sink ready again", "sink", p.name)
			}
			continue
		}
		unready[p.name] = unavailable
		// A probe whose error says why in words safe to show (reasonError) is named with them.
		if why, ok := errors.AsType[reasonError](errs[i]); ok {
			unready[p.name] = why.readyzReason()
		}
		failed[p.name] = errs[i].Error()
		if r.failed[p.name] != failed[p.name] {
			r.log.Warn("sink not ready", "sink", p.name, "err", failed[p.name])
		}
	}
	r.failed = failed
	r.at, r.atGen, r.unready = time.Now(), gen, unready
	r.ok.Store(len(unready) == 0)
	return unready
}

func (r *readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if r.shutting.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "shutting down"})
		return
	}
	unready := r.check(context.WithoutCancel(req.Context()))
	if r.shutting.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "shutting down"})
		return
	}
	if len(unready) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unready", "unready": unready})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
}
