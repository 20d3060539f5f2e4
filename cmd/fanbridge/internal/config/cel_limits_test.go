package config_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
	"github.com/fanbridge/fanbridge/filter"
)

// celRoute is minimal with its route's pattern replaced by the CEL expression x.
func celRoute(t *testing.T, x string) string {
	t.Helper()
	return edited(t, `pattern: {source: [{prefix: "aws."}]}`, "cel: "+x)
}

// The cel block is optional: left out, both limits stay 0, the library's defaults; given, they
// are kept as written.
func TestCELLimitsFromTheFile(t *testing.T) {
	cfg, err := config.Parse([]byte(minimal), env(nil))
	require.NoError(t, err)
	assert.Zero(t, cfg.CEL, "left out: the library's defaults")

	cfg, err = config.Parse([]byte(minimal+"cel: {cost_limit: 20_000, time_limit: 1500ms}\n"), env(nil))
	require.NoError(t, err)
	assert.EqualValues(t, 20_000, cfg.CEL.CostLimit)
	assert.Equal(t, "1.5s", cfg.CEL.TimeLimit.D().String())

	cfg, err = config.Parse([]byte(minimal+"cel: {time_limit: 2s}\n"), env(nil))
	require.NoError(t, err)
	assert.Zero(t, cfg.CEL.CostLimit, "one limit without the other")
	assert.Equal(t, "2s", cfg.CEL.TimeLimit.D().String())
}

// A bad limit is refused naming its key, and a time limit is held to the write timeout as an
// intake's dispatch_timeout is: listen.read_timeout plus the time limit plus dispatch.dlq_timeout
// must be shorter than listen.write_timeout (30s, read_timeout 10s and dlq_timeout 2s by
// default), as an evaluation is not stopped by the dispatch's deadline.
func TestCELLimitsNameTheKey(t *testing.T) {
	const budget = "plus listen.read_timeout (10s) and dispatch.dlq_timeout (2s) must be shorter than listen.write_timeout (30s): an evaluation is not stopped by dispatch_timeout"
	cases := []struct {
		name, cel, extra string
		env              map[string]string
		wantError        string // "" when the file is valid
		notInError       string
	}{
		{name: "negative cost limit", cel: "{cost_limit: -1}", wantError: "config: cel.cost_limit: want 1 to 10000000 cost units (0 for the default, 100000)"},
		{name: "cost limit one past the largest", cel: "{cost_limit: 10_000_001}", wantError: "config: cel.cost_limit: want 1 to 10000000 cost units"},
		{name: "largest cost limit", cel: "{cost_limit: 10_000_000}"},
		{name: "cost limit of one", cel: "{cost_limit: 1}"},
		{name: "cost limit not a number", cel: "{cost_limit: lots}", wantError: `config: cel.cost_limit: want a whole number, got "lots"`},
		{name: "cost limit a fraction", cel: "{cost_limit: 1.5}", wantError: `config: cel.cost_limit: want a whole number, got "1.5"`},
		{name: "negative time limit", cel: "{time_limit: -1s}", wantError: `config: cel.time_limit: want a duration such as 5s or 1m30s, got "-1s"`},
		{name: "time limit of microseconds", cel: "{time_limit: 1us}", wantError: "config: cel.time_limit: want at least 10ms (0 for the default, 10s)"},
		{name: "time limit just too short", cel: "{time_limit: 9999us}", wantError: "config: cel.time_limit: want at least 10ms"},
		{name: "shortest time limit", cel: "{time_limit: 10ms}"},
		{name: "time limit without a unit", cel: "{time_limit: 5}", wantError: `config: cel.time_limit: want a duration such as 5s or 1m30s, got "5"`},
		{name: "time limit leaving no time to answer", cel: "{time_limit: 18s}", wantError: "config: cel.time_limit: " + budget},
		{name: "longest time limit with the defaults", cel: "{time_limit: 17999ms}"},
		{name: "the default, set, under a shorter write timeout", cel: "{time_limit: 10s}", extra: "listen: {write_timeout: 20s}\n",
			wantError: "config: cel.time_limit: plus listen.read_timeout (10s) and dispatch.dlq_timeout (2s) must be shorter than listen.write_timeout (20s)"},
		{name: "left out under a shorter write timeout", cel: "{cost_limit: 5000}", extra: "listen: {write_timeout: 20s}\n"},
		{name: "a longer dlq_timeout leaves less", cel: "{time_limit: 10s}", extra: "dispatch: {dlq_timeout: 10s}\n",
			wantError: "config: cel.time_limit: plus listen.read_timeout (10s) and dispatch.dlq_timeout (10s) must be shorter than listen.write_timeout (30s)"},
		{name: "a longer write timeout leaves more", cel: "{time_limit: 1m}", extra: "listen: {write_timeout: 1m30s}\n"},
		{name: "from the environment", cel: "{time_limit: '${TL}'}", env: map[string]string{"TL": "47s"},
			wantError:  "config: cel.time_limit: plus listen.read_timeout and dispatch.dlq_timeout must be shorter than listen.write_timeout: an evaluation is not stopped by dispatch_timeout",
			notInError: "47s"},
		{name: "not a mapping", cel: "1s", wantError: "config: cel: want a mapping"},
		{name: "unknown key", cel: "{cost: 5}", wantError: "config: cel.cost: unknown key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(minimal+"cel: "+tc.cel+"\n"+tc.extra), env(tc.env))
			if tc.wantError == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.True(t, errors.Is(err, config.ErrInvalid))
			assert.Contains(t, err.Error(), tc.wantError)
			if tc.notInError != "" {
				assert.NotContains(t, err.Error(), tc.notInError)
			}
		})
	}
}

// A route's own problem is still reported beside a bad limit, and not as a problem of its
// expression with that limit.
func TestCELRouteCheckedBesideABadLimit(t *testing.T) {
	_, err := config.Parse([]byte(celRoute(t, `"data.x ==="`)+"cel: {time_limit: 1us, cost_limit: -5}\n"), env(nil))
	require.Error(t, err)
	msg := err.Error()
	assert.Contains(t, msg, "config: cel.time_limit: want at least 10ms")
	assert.Contains(t, msg, "config: cel.cost_limit: want 1 to")
	assert.Contains(t, msg, "config: routes[0].cel: filter: invalid CEL expression")
	assert.NotContains(t, msg, "limit must be positive", "the route is compiled under the defaults")
}

// The limits of the cel block reach the expression a route is built into: an evaluation past
// the file's cost limit, or still running at its time limit, is an evaluation error, and the
// event does not match, where the library's defaults let the same expression match it.
func TestCELLimitsReachTheRoute(t *testing.T) {
	ids := func(n int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = i
		}
		return s
	}
	cases := []struct {
		name, cel, expr string
		ids             int
		wantReason      string
	}{
		// 300 iterations of a few cost units each: well under the default of 100,000, past 100.
		{name: "cost limit", cel: "{cost_limit: 100}", expr: "data.ids.exists(i, i == 299)", ids: 300,
			wantReason: "the cost limit was exceeded"},
		// exists_one with a constant is charged nothing per step, so only the time limit stops
		// it; CEL's cost tracker makes its time grow with the square of the steps: over 30,000
		// numbers it ran half a second without the race detector where this test was written
		// (120,000 ran 26s where filter's doc was measured), fifty times the limit.
		{name: "time limit", cel: "{time_limit: 10ms}", expr: "!data.ids.exists_one(i, false)", ids: 30_000,
			wantReason: "the time limit was exceeded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, err := json.Marshal(map[string]any{"ids": ids(tc.ids)})
			require.NoError(t, err)
			e := &fanbridge.Event{ID: "e1", Type: "t", Data: body}
			doc := celRoute(t, `"`+tc.expr+`"`)

			if tc.ids <= 1000 {
				// Under the defaults the expression matches (the time limit case is not run
				// to its end: it takes seconds under the race detector).
				cfg, err := config.Parse([]byte(doc), env(nil))
				require.NoError(t, err)
				r, err := cfg.Routes[0].Build(cfg.CEL)
				require.NoError(t, err)
				ok, err := r.Filter.(*filter.Expression).Eval(e)
				require.NoError(t, err)
				require.True(t, ok, "the defaults let it match")
			}

			cfg, err := config.Parse([]byte(doc+"cel: "+tc.cel+"\n"), env(nil))
			require.NoError(t, err)
			r, err := cfg.Routes[0].Build(cfg.CEL)
			require.NoError(t, err)
			x, ok := r.Filter.(*filter.Expression)
			require.True(t, ok, "a cel route's filter is its expression, %T", r.Filter)
			matched, err := x.Eval(e)
			assert.False(t, matched)
			var ee *filter.EvalError
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, tc.wantReason, ee.Reason)
			assert.False(t, x.Match(e), "a route does not match it")
		})
	}
}

// The example configuration writes the cel block out with the library's defaults.
func TestExampleConfigCELLimits(t *testing.T) {
	cfg, err := config.Load(filepath.Join("..", "..", "fanbridge.example.yaml"), env(exampleEnv(t)))
	require.NoError(t, err)
	assert.EqualValues(t, filter.DefaultCostLimit, cfg.CEL.CostLimit)
	assert.Equal(t, filter.DefaultTimeLimit, cfg.CEL.TimeLimit.D())
}

// A cost limit under what a route's expression costs on an event with an empty body is refused:
// the route could evaluate no ordinary event, and would answer every one "ignored", which the
// sender does not retry. The expression is evaluated once, under the file's limits, on such an
// event; a limit it does not exceed there is accepted, and the route evaluates.
func TestCELCostLimitBelowWhatARouteCosts(t *testing.T) {
	const chat = `"data.mediaType == 'CHAT' && data.interactingDurationMs > 1000"`
	// A comprehension of 160,000 steps over two literal lists: past the default limit on any event.
	zeros := "[" + strings.Repeat("0,", 399) + "0]"
	heavy := `"` + zeros + ".all(a, " + zeros + `.all(b, a == b))"`
	const lower = "is lower than what routes[0].cel costs even on an event with an empty body ({}): every evaluation would stop at the limit, and the route would match nothing; raise it (0 for the default, 100000)"
	cases := []struct {
		name, doc  string
		env        map[string]string
		wantErrors []string // none when the file is valid
	}{
		{name: "one", doc: celRoute(t, chat) + "cel: {cost_limit: 1}\n", wantErrors: []string{"config: cel.cost_limit: " + lower}},
		{name: "three", doc: celRoute(t, chat) + "cel: {cost_limit: 3}\n", wantErrors: []string{"config: cel.cost_limit: " + lower}},
		{name: "from the environment", doc: celRoute(t, chat) + "cel: {cost_limit: '${CL}'}\n", env: map[string]string{"CL": "2"},
			wantErrors: []string{"config: cel.cost_limit: " + lower}},
		{name: "enough for the empty body", doc: celRoute(t, chat) + "cel: {cost_limit: 4}\n"},
		{name: "a constant costs nothing", doc: celRoute(t, `"true"`) + "cel: {cost_limit: 1}\n"},
		{name: "a pattern route has no cost", doc: minimal + "cel: {cost_limit: 1}\n"},
		{name: "the second route", doc: celRoute(t, `"true"`) + `  - {name: chats, cel: ` + chat + `, sinks: [k]}` + "\ncel: {cost_limit: 3}\n",
			wantErrors: []string{"config: cel.cost_limit: is lower than what routes[1].cel costs even on an event with an empty body"}},
		{name: "past the default", doc: celRoute(t, heavy),
			wantErrors: []string{"config: routes[0].cel: costs more than the default cel.cost_limit (100000) even on an event with an empty body ({}): every evaluation would stop at the limit, and the route would match nothing; write a simpler expression, or raise cel.cost_limit"}},
		{name: "within a raised limit", doc: celRoute(t, heavy) + "cel: {cost_limit: 1_000_000}\n"},
		{name: "a limit out of range is reported once", doc: celRoute(t, chat) + "cel: {cost_limit: -3}\n",
			wantErrors: []string{"config: cel.cost_limit: want 1 to 10000000 cost units (0 for the default, 100000)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(tc.doc), env(tc.env))
			if len(tc.wantErrors) > 0 {
				require.Error(t, err)
				assert.True(t, errors.Is(err, config.ErrInvalid))
				var es *config.Errors
				require.ErrorAs(t, err, &es)
				require.Len(t, es.List, len(tc.wantErrors), err.Error())
				for i, want := range tc.wantErrors {
					assert.Contains(t, es.List[i], want)
				}
				return
			}
			require.NoError(t, err)
			for i := range cfg.Routes {
				if cfg.Routes[i].CEL == "" {
					continue
				}
				r, err := cfg.Routes[i].Build(cfg.CEL)
				require.NoError(t, err)
				_, err = r.Filter.(*filter.Expression).Eval(&fanbridge.Event{ID: "e1", Data: []byte(`{"mediaType":"CHAT","interactingDurationMs":60000}`)})
				var ee *filter.EvalError
				if errors.As(err, &ee) {
					assert.NotEqual(t, "the cost limit was exceeded", ee.Reason, "routes[%d]", i)
				}
			}
		})
	}
}
