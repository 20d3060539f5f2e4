package filter_test

import (
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/filter"
)

var (
	yes = filter.PredicateFunc(func(*fanbridge.Event) bool { return true })
	no  = filter.PredicateFunc(func(*fanbridge.Event) bool { return false })
)

// counting records whether it was consulted, to check short-circuiting.
type counting struct {
	answer bool
	calls  int
}

func (c *counting) Match(*fanbridge.Event) bool { c.calls++; return c.answer }

func TestCombinators(t *testing.T) {
	e := &fanbridge.Event{}
	tests := []struct {
		name string
		p    filter.Predicate
		want bool
	}{
		{"and-both", filter.And(yes, yes), true},
		{"and-one", filter.And(yes, no), false},
		{"or-one", filter.Or(no, yes), true},
		{"or-none", filter.Or(no, no), false},
		{"all-empty", filter.All(), true},
		{"all-three", filter.All(yes, yes, yes), true},
		{"all-last-fails", filter.All(yes, yes, no), false},
		{"any-empty", filter.Any(), false},
		{"any-last", filter.Any(no, no, yes), true},
		{"not-yes", filter.Not(yes), false},
		{"not-no", filter.Not(no), true},
		{"nested", filter.Any(filter.All(yes, no), filter.Not(filter.Or(no, no))), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.p.Match(e))
		})
	}

	t.Run("not-of-undecided", func(t *testing.T) {
		// A Field test decides at the first value that passes, so damage after it goes unseen,
		// while a pattern reads the whole event.
		field := filter.Field("x").Eq(1)
		pattern, err := filter.ParsePattern([]byte(`{"detail":{"eventBody":{"x":[1]}}}`))
		require.NoError(t, err)
		for _, tt := range []struct {
			body                 string
			notField, notPattern bool
		}{
			{`{"x":1}`, false, false},
			{`{"x":1,`, false, true},
			{`{"x":[1,`, false, true},
			{`{"x":2,`, true, true},
			{`{"y":1,`, true, true},
			{`{"x":1,"x":1}`, false, true},
		} {
			ev := &fanbridge.Event{Type: "t", Data: []byte(tt.body)}
			assert.Equal(t, tt.notField, filter.Not(field).Match(ev), "field on %s", tt.body)
			assert.Equal(t, tt.notPattern, filter.Not(pattern).Match(ev), "pattern on %s", tt.body)
		}
	})
	t.Run("short-circuit", func(t *testing.T) {
		second := &counting{answer: true}
		assert.False(t, filter.And(no, second).Match(e))
		assert.True(t, filter.Or(yes, second).Match(e))
		assert.Zero(t, second.calls)
	})
	t.Run("nil-panics-at-construction", func(t *testing.T) {
		assert.Panics(t, func() { filter.And(yes, nil) })
		assert.Panics(t, func() { filter.Any(nil) })
		assert.Panics(t, func() { filter.Not(nil) })
	})
	t.Run("typed-nil-panics-at-construction", func(t *testing.T) {
		// An interface holding a nil pointer is not nil: the combinators look inside.
		typedNils := []filter.Predicate{(*filter.Pattern)(nil), (*filter.Expression)(nil), filter.PredicateFunc(nil)}
		for _, p := range typedNils {
			assert.Panics(t, func() { filter.All(p) }, "%T", p)
			assert.Panics(t, func() { filter.Any(yes, p) }, "%T", p)
			assert.Panics(t, func() { filter.And(yes, p) }, "%T", p)
			assert.Panics(t, func() { filter.Or(p, yes) }, "%T", p)
			assert.Panics(t, func() { filter.Not(p) }, "%T", p)
		}
	})
	t.Run("nil-receivers-match-nothing", func(t *testing.T) {
		ev := &fanbridge.Event{Raw: []byte(`{"detail-type":"x"}`), Data: []byte(`{}`)}
		var p *filter.Pattern
		assert.False(t, p.Match(ev))
		ok, err := p.MatchRaw(ev.Raw)
		assert.False(t, ok)
		assert.NoError(t, err)
		assert.Empty(t, p.String())
		var x *filter.Expression
		assert.False(t, x.Match(ev))
		ok, err = x.Eval(ev)
		assert.False(t, ok)
		assert.ErrorIs(t, err, filter.ErrInvalidExpression)
		var ee *filter.EvalError
		require.ErrorAs(t, err, &ee)
		assert.Equal(t, "the expression is nil", ee.Reason)
		assert.Empty(t, x.String())
		assert.Equal(t, []int{1}, filter.MatchExprs(ev, []*filter.Expression{nil, filter.MustExpr("true")}, nil))
	})
	t.Run("zero-pattern-matches-nothing", func(t *testing.T) {
		// A Pattern not made by ParsePattern behaves as a nil one, and says so by its String.
		ev := &fanbridge.Event{Raw: []byte(`{"detail-type":"x"}`), Data: []byte(`{}`)}
		p := &filter.Pattern{}
		assert.False(t, p.Match(ev))
		ok, err := p.MatchRaw(ev.Raw)
		assert.False(t, ok)
		assert.NoError(t, err)
		assert.Empty(t, p.String())
		assert.False(t, filter.Any(p).Match(ev))
		assert.True(t, filter.Not(p).Match(ev))
	})
	t.Run("caller-slice-not-kept", func(t *testing.T) {
		ps := []filter.Predicate{yes, yes}
		all := filter.All(ps...)
		ps[1] = no
		assert.True(t, all.Match(e))
	})
}

const body = `{
  "wrapupCode": "Upsell",
  "wrapupDurationMs": 12000,
  "score": 4.5,
  "big": 1649237504949,
  "flag": true,
  "off": false,
  "none": null,
  "empty": [],
  "nested": {"deeper": {"leaf": "v"}},
  "queues": ["q1", "q2"],
  "propertyChanges": [
    {"property": "PRESENCE", "newValues": ["Busy"]},
    {"property": "ROUTING", "newValues": ["Available", "Idle"]}
  ],
  "a.b": "dotted",
  "esc\"key": "caf\u00e9",
  "s5": "5"
}`

func TestFieldPredicates(t *testing.T) {
	e := &fanbridge.Event{Data: []byte(body)}
	tests := []struct {
		name string
		p    filter.Predicate
		want bool
	}{
		{"eq-string", filter.Field("wrapupCode").Eq("Upsell"), true},
		{"eq-string-case", filter.Field("wrapupCode").Eq("upsell"), false},
		{"in", filter.Field("wrapupCode").In("Sale", "Upsell"), true},
		{"in-none", filter.Field("wrapupCode").In("Sale", "Refund"), false},
		{"eq-int", filter.Field("wrapupDurationMs").Eq(12000), true},
		{"eq-float-same-value", filter.Field("wrapupDurationMs").Eq(12000.0), true},
		{"eq-uint8", filter.Field("wrapupDurationMs").Eq(uint8(7)), false},
		{"eq-json-number", filter.Field("score").Eq(json.Number("4.50")), true},
		{"eq-number-not-string", filter.Field("s5").Eq(5), false},
		{"eq-string-not-number", filter.Field("wrapupDurationMs").Eq("12000"), false},
		{"eq-big-int", filter.Field("big").Eq(int64(1649237504949)), true},
		{"eq-true", filter.Field("flag").Eq(true), true},
		{"eq-false", filter.Field("off").Eq(false), true},
		{"eq-bool-mismatch", filter.Field("flag").Eq(false), false},
		{"eq-nil", filter.Field("none").Eq(nil), true},
		{"eq-nil-missing", filter.Field("missing").Eq(nil), false},
		{"gt", filter.Field("wrapupDurationMs").Gt(11999), true},
		{"gt-equal", filter.Field("wrapupDurationMs").Gt(12000), false},
		{"gte", filter.Field("wrapupDurationMs").Gte(12000), true},
		{"lt", filter.Field("score").Lt(5), true},
		{"lte", filter.Field("score").Lte(4.5), true},
		{"lt-string", filter.Field("wrapupCode").Lt(1e9), false},
		{"between", filter.Field("score").Between(4, 5), true},
		{"between-outside", filter.Field("score").Between(5, 6), false},
		{"between-lower-bound", filter.Field("score").Between(4.5, 5), true},
		{"between-upper-bound", filter.Field("score").Between(4, 4.5), true},
		{"between-one-point", filter.Field("score").Between(4.5, 4.5), true},
		{"between-below-lower-bound", filter.Field("score").Between(4.51, 5), false},
		{"between-above-upper-bound", filter.Field("score").Between(4, 4.49), false},
		{"exists", filter.Field("none").Exists(), true},
		{"exists-object", filter.Field("nested").Exists(), true},
		{"exists-empty-array", filter.Field("empty").Exists(), false},
		{"exists-missing", filter.Field("missing").Exists(), false},
		{"exists-body", filter.Field("").Exists(), true},
		{"nested-path", filter.Field("nested.deeper.leaf").Eq("v"), true},
		{"nested-path-missing", filter.Field("nested.deeper.other").Exists(), false},
		{"through-scalar", filter.Field("wrapupCode.x").Exists(), false},
		{"array-any-element", filter.Field("queues").Eq("q2"), true},
		{"array-of-objects", filter.Field("propertyChanges.newValues").Eq("Available"), true},
		{"array-of-objects-property", filter.Field("propertyChanges.property").In("ROUTING"), true},
		{"array-of-objects-missing", filter.Field("propertyChanges.oldValues").Exists(), false},
		{"prefix", filter.Field("wrapupCode").Prefix("Up"), true},
		{"prefix-on-number", filter.Field("wrapupDurationMs").Prefix("1"), false},
		{"suffix", filter.Field("wrapupCode").Suffix("sell"), true},
		{"contains", filter.Field("propertyChanges.newValues").Contains("vail"), true},
		{"equal-fold", filter.Field("wrapupCode").EqualFold("UPSELL"), true},
		{"matches", filter.Field("queues").Matches(regexp.MustCompile(`^q\d$`)), true},
		{"escaped-dot", filter.Field(`a\.b`).Eq("dotted"), true},
		{"unescaped-dot-is-nesting", filter.Field("a.b").Exists(), false},
		{"escaped-key-and-value", filter.Field(`esc"key`).Eq("café"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.p.Match(e))
		})
	}
}

func TestFieldPredicatesNeverPanic(t *testing.T) {
	ps := []filter.Predicate{
		filter.Field("a").Exists(), filter.Field("a.b").Eq("x"), filter.Field("a").Gt(1),
		filter.Field("").Exists(), filter.Field("a").Matches(regexp.MustCompile("x")),
	}
	events := []*fanbridge.Event{
		nil, {}, {Data: []byte(`not json`)}, {Data: []byte(`{"a":`)}, {Data: []byte(`[[[`)},
		{Data: []byte(`{"a":"\u12"}`)}, {Data: []byte(`"x"`)}, {Data: []byte(`{"a":[1,}`)},
	}
	for _, p := range ps {
		for _, e := range events {
			assert.NotPanics(t, func() { p.Match(e) })
		}
	}
	assert.False(t, filter.Field("a").Exists().Match(&fanbridge.Event{Data: []byte(`{"b":1,`)}))
	assert.Panics(t, func() { filter.Field("a").Eq(struct{}{}) }, "unsupported comparison types fail at construction")
	assert.Panics(t, func() { filter.Field("a").In("x", []string{"y"}) })
	assert.Panics(t, func() { filter.Field("a").Matches(nil) })
}

func TestAttributePredicates(t *testing.T) {
	e := &fanbridge.Event{
		Type:     "v2.users.{id}.presence",
		Topic:    "v2.users.e40f28ea-fa86.presence",
		Source:   "aws.partner/genesys.com/cloud/org/suffix",
		Metadata: map[string]string{fanbridge.MetaRegion: "us-east-1"},
	}
	tests := []struct {
		name string
		p    filter.Predicate
		want bool
	}{
		{"type-exact", filter.Type("v2.users.{id}.presence"), true},
		{"type-one-of", filter.Type("v2.users.{id}.activity", "v2.users.{id}.presence"), true},
		{"type-other", filter.Type("v2.users.{id}.activity"), false},
		{"type-shorter", filter.Type("v2.users.{id}"), false},
		{"type-longer", filter.Type("v2.users.{id}.presence.x"), false},
		{"topic-template", filter.Topic("v2.users.{id}.presence"), true},
		{"topic-concrete", filter.Topic("v2.users.e40f28ea-fa86.presence"), true},
		{"topic-other-user", filter.Topic("v2.users.other.presence"), false},
		{"topic-template-other-kind", filter.Topic("v2.users.{id}.activity"), false},
		{"source", filter.Source("aws.partner/genesys.com/cloud/org/suffix"), true},
		{"source-prefix", filter.SourcePrefix("aws.partner/genesys.com/"), true},
		{"source-other", filter.Source("aws.ec2"), false},
		{"meta", filter.Meta(fanbridge.MetaRegion, "eu-west-1", "us-east-1"), true},
		{"meta-missing", filter.Meta(fanbridge.MetaAccount, "1"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.p.Match(e))
			assert.False(t, tt.p.Match(nil))
		})
	}
	// A braced segment stands for exactly one non-empty segment.
	assert.False(t, filter.Topic("v2.users.{id}.presence").Match(&fanbridge.Event{Topic: "v2.users..presence"}))
}

// TestPatternEnvelopeView checks what patterns see for an Event without Raw: an envelope written
// from its fields.
func TestPatternEnvelopeView(t *testing.T) {
	e := &fanbridge.Event{
		ID:     "id-1",
		Type:   "v2.detail.events.conversation.{id}.customer.end",
		Topic:  "v2.detail.events.conversation.c1.customer.end",
		Source: "aws.partner/genesys.com/cloud/o/s",
		Data:   json.RawMessage(`{"mediaType":"CHAT","interactingDurationMs":60000}`),
		Metadata: map[string]string{
			fanbridge.MetaAccount: "123456789012", fanbridge.MetaRegion: "us-east-1",
			fanbridge.MetaCorrelationID: "corr\"1",
		},
	}
	e.Time = mustTime(t, "2022-06-14T16:12:11Z")
	for _, tt := range []struct {
		pattern string
		want    bool
	}{
		{`{"id":["id-1"]}`, true},
		{`{"detail-type":[{"suffix":".customer.end"}]}`, true},
		{`{"source":[{"prefix":"aws.partner/genesys.com/"}]}`, true},
		{`{"account":["123456789012"],"region":["us-east-1"]}`, true},
		{`{"time":[{"prefix":"2022-06-14T16:12:11"}]}`, true},
		{`{"detail":{"topicName":["v2.detail.events.conversation.c1.customer.end"]}}`, true},
		{`{"detail":{"eventBody":{"mediaType":["CHAT"],"interactingDurationMs":[{"numeric":["<=",60000]}]}}}`, true},
		{`{"detail":{"metadata":{"CorrelationId":["corr\"1"]}}}`, true},
		{`{"detail":{"eventBody":{"mediaType":["VOICE"]}}}`, false},
		{`{"version":[{"exists":true}]}`, false},
	} {
		p := filter.MustParsePattern(tt.pattern)
		assert.Equal(t, tt.want, p.Match(e), tt.pattern)
		m := filter.NewMatcher()
		require.NoError(t, m.AddPattern("r", p))
		assert.Equal(t, tt.want, len(m.Match(e, nil)) == 1, "Matcher: %s", tt.pattern)
	}
	// An event with neither Raw nor fields is an empty envelope: only exists:false can match.
	assert.True(t, filter.MustParsePattern(`{"id":[{"exists":false}]}`).Match(&fanbridge.Event{}))
	assert.False(t, filter.MustParsePattern(`{"id":[{"exists":true}]}`).Match(nil))
	// A body that is not JSON spoils the envelope, so nothing matches.
	bad := &fanbridge.Event{ID: "x", Data: json.RawMessage(`{"a":`)}
	assert.False(t, filter.MustParsePattern(`{"id":["x"]}`).Match(bad))
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	require.NoError(t, err)
	return tm
}

// Eq and In take a json.Number that is one JSON number, beyond float64's range too (read as ±Inf,
// as the same number in an event is), and panic, at construction, on text that is not one.
func TestFieldJSONNumbers(t *testing.T) {
	e := &fanbridge.Event{Data: []byte(`{"big":1e400,"small":-1e400,"n":4.5}`)}
	assert.True(t, filter.Field("big").Eq(json.Number("1e400")).Match(e))
	assert.True(t, filter.Field("small").Eq(json.Number("-2e999")).Match(e))
	assert.True(t, filter.Field("n").In(json.Number("4.50"), json.Number("1e400")).Match(e))
	assert.False(t, filter.Field("n").Eq(json.Number("1e400")).Match(e))
	for _, bad := range []string{"Inf", "NaN", "0x1p4", "+1", "1.", "", "1 2", ".5"} {
		assert.Panics(t, func() { filter.Field("n").Eq(json.Number(bad)) }, bad)
	}
}
