package fanout_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/filter"
	"github.com/fanbridge/fanbridge/sink"
)

// sample reads a Genesys event, as Amazon EventBridge delivers it, from testdata.
func sample(t testing.TB, name string) *fanbridge.Event {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	var env struct {
		ID         string          `json:"id"`
		DetailType string          `json:"detail-type"`
		Source     string          `json:"source"`
		Detail     json.RawMessage `json:"detail"`
	}
	require.NoError(t, json.Unmarshal(raw, &env))
	return &fanbridge.Event{ID: env.ID, Type: env.DetailType, Source: env.Source, Data: env.Detail, Raw: raw}
}

func TestPatternRoutes(t *testing.T) {
	kafka, grpc, audit := newRecSink(), newRecSink(), newRecSink()
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "kafka", Sink: kafka}, {Name: "grpc", Sink: grpc}, {Name: "audit", Sink: audit}},
		Routes: []fanout.Route{
			{Name: "ends", Pattern: []byte(`{"detail-type":["v2.detail.events.conversation.{id}.customer.end"]}`),
				Sinks: []string{"kafka"}},
			{Name: "chats", Pattern: []byte(`{"detail":{"eventBody":{"mediaType":["CHAT"],"direction":["INBOUND"]}}}`),
				Sinks: []string{"grpc"}},
			{Name: "audits", Filter: filter.MustParsePattern(`{"detail-type":[{"prefix":"v2.audits."}]}`),
				Sinks: []string{"audit", "kafka"}},
			{Name: "starts", Filter: filter.PredicateFunc(func(e *fanbridge.Event) bool {
				return strings.HasSuffix(e.Type, ".start")
			}), Sinks: []string{"kafka", "grpc"}},
		},
	})
	tests := []struct {
		file   string
		routes map[string]string // sink -> route
	}{
		{"v2.detail.events.conversation.customer.end.json", map[string]string{"kafka": "ends", "grpc": "chats"}},
		{"v2.detail.events.conversation.customer.start.json", map[string]string{"grpc": "chats", "kafka": "starts"}},
		{"v2.audits.entitytype.UserPresence.update.json", map[string]string{"audit": "audits", "kafka": "audits"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			e := sample(t, tt.file)
			res, err := d.Deliver(testContext(t), e)
			require.NoError(t, err)
			got := map[string]string{}
			for _, r := range res.Sinks {
				got[r.Sink] = r.Route
				assert.Equal(t, fanout.Delivered, r.Outcome)
			}
			assert.Equal(t, tt.routes, got)
		})
	}
	assert.Equal(t, 1, kafka.Delivered("58fb5dac-f077-4eec-a25f-c638dbdd4368"))
}

func TestPatternRouteErrors(t *testing.T) {
	s := newRecSink()
	tests := []struct {
		name  string
		route fanout.Route
		want  string
	}{
		{"bad pattern", fanout.Route{Name: "broken", Pattern: []byte(`{"detail-type":"not-an-array"}`), Sinks: []string{"s"}},
			`route "broken"`},
		{"not JSON", fanout.Route{Name: "junk", Pattern: []byte(`{`), Sinks: []string{"s"}}, `route "junk"`},
		{"both", fanout.Route{Name: "both", Pattern: []byte(`{"source":["x"]}`), Filter: fanout.All, Sinks: []string{"s"}},
			`route "both" has both a Filter and a Pattern`},
		{"zero Pattern", fanout.Route{Name: "zero", Filter: &filter.Pattern{}, Sinks: []string{"s"}},
			`route "zero": its *filter.Pattern was not made by filter.ParsePattern`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := fanout.New(fanout.Config{Sinks: []fanout.SinkConfig{{Name: "s", Sink: s}},
				Routes: []fanout.Route{tt.route}})
			require.ErrorIs(t, err, fanout.ErrInvalidConfig)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// TestRouteOrderWithMixedFilters: pattern routes matched together by the Matcher and routes with
// their own filter are visited in configuration order, so each sink is credited to the first
// route naming it, and the sinks come in the order of the routes and their sink lists.
func TestRouteOrderWithMixedFilters(t *testing.T) {
	e := sample(t, "v2.detail.events.conversation.customer.end.json")
	ok := sink.Func(func(context.Context, *fanbridge.Event) error { return nil })
	never := `{"detail-type":["nothing"]}`
	always := `{"detail-type":[{"suffix":".customer.end"}]}`
	var routes []fanout.Route
	add := func(name, pattern string, pred filter.Predicate, sinks ...string) {
		r := fanout.Route{Name: name, Sinks: sinks, Filter: pred}
		if pattern != "" {
			r.Pattern = []byte(pattern)
		}
		routes = append(routes, r)
	}
	for i := range 50 {
		add("never-"+strconv.Itoa(i), never, nil, "a")
	}
	add("go-c", always, nil, "c")
	add("code-b", "", filter.PredicateFunc(func(*fanbridge.Event) bool { return true }), "b", "c")
	add("code-never", "", filter.PredicateFunc(func(*fanbridge.Event) bool { return false }), "a")
	add("go-a", always, nil, "a", "b")
	add("go-d", always, nil, "d")
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "a", Sink: ok}, {Name: "b", Sink: ok}, {Name: "c", Sink: ok}, {Name: "d", Sink: ok}},
		Routes: routes,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	defer d.Close(ctx)
	res, err := d.Deliver(ctx, e)
	require.NoError(t, err)
	var got []string
	for _, s := range res.Sinks {
		got = append(got, s.Sink+"<-"+s.Route)
	}
	assert.Equal(t, []string{"c<-go-c", "b<-code-b", "a<-go-a", "d<-go-d"}, got)
}
