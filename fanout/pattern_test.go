package fanout_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/filter"
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
