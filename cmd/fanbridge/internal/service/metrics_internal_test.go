package service

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/filter"
	"github.com/fanbridge/fanbridge/sink"
)

// The manual's metrics table lists, by the name /metrics gives it, every metric of the
// dispatcher that /metrics serves: here those of a route whose filter panics, of a route that
// matches, and of a sink that delivers.
func TestFanoutMetricsAreInTheManual(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tel, err := newTelemetry(config.Tracing{Disabled: true}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer func() { _ = tel.shutdown(context.Background()) }()
	d, err := fanout.New(fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "s", Sink: sink.Func(func(context.Context, *fanbridge.Event) error { return nil })}},
		Routes: []fanout.Route{
			{Name: "broken", Filter: filter.PredicateFunc(func(*fanbridge.Event) bool { panic("a bug in the filter") }), Sinks: []string{"s"}},
			{Name: "everything", Filter: fanout.All, Sinks: []string{"s"}},
		},
	}, fanout.WithMeterProvider(tel.meters))
	require.NoError(t, err)
	require.NoError(t, d.Dispatch(ctx, &fanbridge.Event{ID: "e-1", Type: "t", Raw: []byte(`{}`)}))
	require.NoError(t, d.Close(ctx))

	rec := httptest.NewRecorder()
	tel.metrics.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	var names []string
	for sc := bufio.NewScanner(strings.NewReader(rec.Body.String())); sc.Scan(); {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" && strings.HasPrefix(f[2], "fanbridge_fanout_") {
			names = append(names, f[2])
		}
	}
	require.Contains(t, names, "fanbridge_fanout_route_filter_panicked_total", rec.Body.String())
	// The Go runtime's and the process's own series, for an operator watching for leaks.
	assert.Contains(t, rec.Body.String(), "\ngo_goroutines ")
	assert.Contains(t, rec.Body.String(), "\ngo_memstats_heap_inuse_bytes ")
	if runtime.GOOS == "linux" {
		assert.Contains(t, rec.Body.String(), "\nprocess_open_fds ")
		assert.Contains(t, rec.Body.String(), "\nprocess_resident_memory_bytes ")
	}
	assert.Contains(t, rec.Body.String(), `fanbridge_fanout_route_filter_panicked_total{otel_scope_name=`)
	assert.Contains(t, rec.Body.String(), `route="broken"} 1`)

	manual, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	for _, name := range names {
		assert.True(t, strings.Contains(string(manual), "| `"+name+"` |"), "README.md's metrics table has no row for %s", name)
	}
}

// Every route keeps a series of its own, however many there are: the SDK's default limit of 2,000
// series per instrument folded the rest into one series without a route label.
func TestEveryRouteHasItsSeries(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tel, err := newTelemetry(config.Tracing{Disabled: true}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer func() { _ = tel.shutdown(context.Background()) }()
	const n = 2500
	routes := make([]fanout.Route, n)
	for i := range routes {
		routes[i] = fanout.Route{Name: fmt.Sprint("r", i), Filter: fanout.All, Sinks: []string{"s"}}
	}
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: sink.Func(func(context.Context, *fanbridge.Event) error { return nil })}},
		Routes: routes,
	}, fanout.WithMeterProvider(tel.meters))
	require.NoError(t, err)
	require.NoError(t, d.Dispatch(ctx, &fanbridge.Event{ID: "e-1", Type: "t", Raw: []byte(`{}`)}))
	require.NoError(t, d.Close(ctx))

	rec := httptest.NewRecorder()
	tel.metrics.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	assert.Equal(t, n, strings.Count(body, "\nfanbridge_fanout_route_matched_total{"), "route series")
	assert.NotContains(t, body, "otel_metric_overflow")
}
