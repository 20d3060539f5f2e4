package filter_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/filter"
)

// The benchmarks match the padded 2.7 KB customer.end envelope against generated Genesys rule
// sets (genesysRules) of 1 to 10,000 rules, with fanbridge's Matcher, with cel-go programs
// evaluated one by one (what a hand-rolled CEL router does), and with hand-written Go.
// BenchmarkSideBySide runs them interleaved in one loop and reports the ratios, which stay
// meaningful on a loaded machine where absolute numbers do not.

var ruleCounts = []int{1, 100, 1000, 10000}

const benchSeed = 1

func buildMatcher(tb testing.TB, rules []genRule) *filter.Matcher {
	m := filter.NewMatcher()
	for _, r := range rules {
		require.NoError(tb, m.Add(r.name, r.src))
	}
	return m
}

// celBaseline is the straightforward cel-go router: one program per rule, the body decoded with
// encoding/json once per event, every program evaluated in turn.
type celBaseline struct {
	progs []cel.Program
}

func newCELBaseline(tb testing.TB, rules []genRule) *celBaseline {
	env, err := cel.NewEnv(
		cel.Variable("data", cel.DynType),
		cel.Variable("event", cel.MapType(cel.StringType, cel.DynType)),
		cel.CrossTypeNumericComparisons(true),
	)
	require.NoError(tb, err)
	c := &celBaseline{}
	for _, r := range rules {
		ast, iss := env.Compile(r.cel)
		require.NoError(tb, iss.Err(), r.cel)
		prg, err := env.Program(ast)
		require.NoError(tb, err)
		c.progs = append(c.progs, prg)
	}
	return c
}

func (c *celBaseline) match(e *fanbridge.Event, dst []int) []int {
	var data any
	if err := json.Unmarshal(e.Data, &data); err != nil {
		return dst
	}
	act, err := cel.NewActivation(map[string]any{
		"data":  data,
		"event": map[string]any{"id": e.ID, "type": e.Type, "topic": e.Topic, "source": e.Source},
	})
	if err != nil {
		return dst
	}
	for i, p := range c.progs {
		out, _, err := p.Eval(act)
		if err == nil && out.Value() == true {
			dst = append(dst, i)
		}
	}
	return dst
}

func BenchmarkMatcher(b *testing.B) {
	all := genesysRules(ruleCounts[len(ruleCounts)-1], benchSeed)
	e := benchEvent(b)
	for _, n := range ruleCounts {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			m := buildMatcher(b, all[:n])
			dst := m.Match(e, nil) // builds the snapshot
			b.ReportAllocs()
			b.SetBytes(int64(len(e.Raw)))
			for b.Loop() {
				dst = m.Match(e, dst[:0])
			}
			b.ReportMetric(float64(len(dst)), "matches")
		})
	}
}

func BenchmarkPatternsOneByOne(b *testing.B) {
	all := genesysRules(1000, benchSeed)
	e := benchEvent(b)
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			ps := make([]*filter.Pattern, n)
			for i, r := range all[:n] {
				ps[i] = filter.MustParsePattern(string(r.src))
			}
			b.ReportAllocs()
			for b.Loop() {
				for _, p := range ps {
					p.Match(e)
				}
			}
		})
	}
}

func BenchmarkCELOneByOne(b *testing.B) {
	all := genesysRules(ruleCounts[len(ruleCounts)-1], benchSeed)
	e := benchEvent(b)
	for _, n := range ruleCounts {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			c := newCELBaseline(b, all[:n])
			var dst []int
			b.ReportAllocs()
			for b.Loop() {
				dst = c.match(e, dst[:0])
			}
			b.ReportMetric(float64(len(dst)), "matches")
		})
	}
}

// BenchmarkExprs is fanbridge's own CEL path (MatchExprs: one lazy decode, typed event).
func BenchmarkExprs(b *testing.B) {
	all := genesysRules(1000, benchSeed)
	e := benchEvent(b)
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			xs := make([]*filter.Expression, n)
			for i, r := range all[:n] {
				xs[i] = filter.MustExpr(r.cel)
			}
			var dst []int
			b.ReportAllocs()
			for b.Loop() {
				dst = filter.MatchExprs(e, xs, dst[:0])
			}
		})
	}
}

// envelope is the struct a tutorial decodes the whole event into before testing fields.
type envelope struct {
	DetailType string `json:"detail-type"`
	Source     string `json:"source"`
	Detail     struct {
		TopicName string `json:"topicName"`
		EventBody struct {
			MediaType             string `json:"mediaType"`
			InteractingDurationMs int64  `json:"interactingDurationMs"`
			QueueID               string `json:"queueId"`
			WrapupCode            string `json:"wrapupCode"`
		} `json:"eventBody"`
	} `json:"detail"`
}

var goPredicates = map[string]filter.Predicate{
	"field-helpers": filter.All(
		filter.Type("v2.detail.events.conversation.{id}.customer.end"),
		filter.Field("mediaType").Eq("CHAT"),
		filter.Field("interactingDurationMs").Gt(120000),
	),
	"unmarshal-struct": filter.PredicateFunc(func(e *fanbridge.Event) bool {
		var env envelope
		if err := json.Unmarshal(e.Raw, &env); err != nil {
			return false
		}
		return env.DetailType == "v2.detail.events.conversation.{id}.customer.end" &&
			env.Detail.EventBody.MediaType == "CHAT" && env.Detail.EventBody.InteractingDurationMs > 120000
	}),
	"pattern": filter.MustParsePattern(`{"detail-type":["v2.detail.events.conversation.{id}.customer.end"],
		"detail":{"eventBody":{"mediaType":["CHAT"],"interactingDurationMs":[{"numeric":[">",120000]}]}}}`),
	"cel": filter.MustExpr(`event.type == 'v2.detail.events.conversation.{id}.customer.end' && data.mediaType == 'CHAT' && data.interactingDurationMs > 120000`),
}

func BenchmarkGoPredicate(b *testing.B) {
	e := benchEvent(b)
	for _, name := range []string{"field-helpers", "unmarshal-struct", "pattern", "cel"} {
		p := goPredicates[name]
		b.Run(name, func(b *testing.B) {
			if !p.Match(e) {
				b.Fatal("the predicate must match the sample")
			}
			b.ReportAllocs()
			for b.Loop() {
				p.Match(e)
			}
		})
	}
}

// BenchmarkSideBySide interleaves, in every iteration, batches of Matcher calls with 1, 1,000 and
// 10,000 rules and one pass of 1,000 cel-go programs, and reports:
//
//	ns/match-1, ns/match-1k, ns/match-10k  the Matcher's cost per event at each size
//	ns/cel-1k                              1,000 cel-go programs one by one, per event
//	10k/1-ratio                            Matcher cost at 10,000 rules over 1 rule (target <= 1.5)
//	x-faster-than-cel-1k                   cel-go one by one over the Matcher at 1,000 (target >= 40)
//	allocs/match                           allocations per Matcher call after warm-up (target 0)
func BenchmarkSideBySide(b *testing.B) {
	all := genesysRules(10000, benchSeed)
	e := benchEvent(b)
	m1, m1k, m10k := buildMatcher(b, all[:1]), buildMatcher(b, all[:1000]), buildMatcher(b, all)
	c1k := newCELBaseline(b, all[:1000])
	dst := make([]string, 0, 256)
	var idx []int
	for _, m := range []*filter.Matcher{m1, m1k, m10k} {
		dst = m.Match(e, dst[:0])
	}
	const batch = 32
	var d1, d1k, d10k, dcel time.Duration
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		for range batch {
			dst = m1.Match(e, dst[:0])
		}
		t1 := time.Now()
		for range batch {
			dst = m1k.Match(e, dst[:0])
		}
		t2 := time.Now()
		for range batch {
			dst = m10k.Match(e, dst[:0])
		}
		t3 := time.Now()
		idx = c1k.match(e, idx[:0])
		t4 := time.Now()
		d1, d1k, d10k, dcel = d1+t1.Sub(t0), d1k+t2.Sub(t1), d10k+t3.Sub(t2), dcel+t4.Sub(t3)
		n++
	}
	per := func(d time.Duration, k int) float64 { return float64(d.Nanoseconds()) / float64(n*k) }
	b.ReportMetric(per(d1, batch), "ns/match-1")
	b.ReportMetric(per(d1k, batch), "ns/match-1k")
	b.ReportMetric(per(d10k, batch), "ns/match-10k")
	b.ReportMetric(per(dcel, 1), "ns/cel-1k")
	b.ReportMetric(per(d10k, batch)/per(d1, batch), "10k/1-ratio")
	b.ReportMetric(per(dcel, 1)/per(d1k, batch), "x-faster-than-cel-1k")
	b.ReportMetric(testing.AllocsPerRun(50, func() { dst = m10k.Match(e, dst[:0]) }), "allocs/match")
}
