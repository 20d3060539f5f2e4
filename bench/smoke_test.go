//go:build unix

package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/filter"
	"github.com/fanbridge/fanbridge/signature"
)

// These tests keep the benchmark honest: the three pipelines must do the same work (same rules
// selected for every sample), deliver every event they acknowledge to Kafka exactly once, and
// refuse a bad signature, or the figures the benchmark prints mean nothing.

// smokeSeq numbers the events the tests send themselves, far from the load generator's numbers.
var smokeSeq atomic.Uint64

func init() { smokeSeq.Store(1 << 44) }

func readSamples(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		out[filepath.Base(f)] = b
	}
	return out
}

// ruleForms are the generated rules in the three forms the pipelines use.
type ruleForms struct {
	patterns  *filter.Matcher
	tutorial  []tutorialFilter
	watermill []wmRule
}

func newRuleForms(t *testing.T, rules []rule) ruleForms {
	t.Helper()
	return ruleForms{newRuleMatcher(t, rules), tutorialFilters(rules), watermillRules(rules)}
}

// assertAgree checks that the tutorial's filters and Watermill's rules select for body the same
// rules as fanbridge's patterns, and returns those.
func (f ruleForms) assertAgree(t *testing.T, body []byte) []string {
	t.Helper()
	want := fanbridgeMatches(t, f.patterns, body)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(body, &doc))
	var e wmEvent
	require.NoError(t, json.Unmarshal(body, &e))
	assert.Equal(t, want, tutorialMatch(doc, f.tutorial), "tutorial filters")
	assert.Equal(t, want, watermillMatch(&e, f.watermill), "watermill rules")
	return want
}

// fanbridgeMatches is what the fanbridge pipeline's routes select: the patterns in one Matcher.
func fanbridgeMatches(t *testing.T, m *filter.Matcher, body []byte) []string {
	t.Helper()
	e, err := eventbridge.Decode(body, "application/json")
	require.NoError(t, err)
	return m.Match(e, nil)
}

func newRuleMatcher(t *testing.T, rules []rule) *filter.Matcher {
	t.Helper()
	m := filter.NewMatcher()
	for _, r := range rules {
		require.NoError(t, m.Add(r.name, r.pattern()), "rule %s: %s", r.name, r.pattern())
	}
	return m
}

func TestMatchersAgree(t *testing.T) {
	forms := newRuleForms(t, generateRules(numRules, 1))
	ignored := 0
	for name, body := range readSamples(t) {
		t.Run(name, func(t *testing.T) {
			want := forms.assertAgree(t, body)
			if name == benchSample {
				assert.GreaterOrEqual(t, len(want), 3, "the benchmark event must be routed")
				assert.Greater(t, len(bytes.TrimSpace(body)), 2600, "the benchmark event is the 2.7 KB one")
			}
			if len(want) == 0 {
				ignored++
			}
		})
	}
	assert.Positive(t, ignored, "some sample must match no rule, to exercise the ignored path")
}

// TestMatchersAgreeOnVariants changes the fields the rules read, one at a time, so that rules
// other than the planted ones are exercised too.
func TestMatchersAgreeOnVariants(t *testing.T) {
	forms := newRuleForms(t, generateRules(numRules, 1))
	base, err := os.ReadFile("testdata/" + benchSample)
	require.NoError(t, err)
	replace := func(old, new string) []byte {
		require.Contains(t, string(base), old)
		return bytes.Replace(base, []byte(old), []byte(new), 1)
	}
	variants := map[string][]byte{
		"voice":       replace(`"mediaType": "CHAT"`, `"mediaType": "VOICE"`),
		"transfer":    replace(`"disconnectType": "CLIENT"`, `"disconnectType": "TRANSFER"`),
		"short":       replace(`"interactingDurationMs": 185000`, `"interactingDurationMs": 42000`),
		"user.end":    replace(`"detail-type": "v2.detail.events.conversation.{id}.customer.end"`, `"detail-type": "v2.detail.events.conversation.{id}.user.end"`),
		"acw":         replace(`"detail-type": "v2.detail.events.conversation.{id}.customer.end"`, `"detail-type": "v2.detail.events.conversation.{id}.acw"`),
		"other queue": replace(`"queueId": "4750048b-1994-41d4-8410-a5760c49a6cd", "divisionId"`, `"queueId": "00000000-1994-41d4-8410-a5760c49a6cd", "divisionId"`),
	}
	matchedSome := 0
	for name, body := range variants {
		t.Run(name, func(t *testing.T) {
			if len(forms.assertAgree(t, body)) > 0 {
				matchedSome++
			}
		})
	}
	assert.Positive(t, matchedSome)
}

// sign is the signature every pipeline checks, as a signing proxy computes it.
func sign(t *testing.T, secret, body []byte) string {
	t.Helper()
	sig, err := signature.SignHMAC(benchScheme, string(secret), body)
	require.NoError(t, err)
	return sig
}

func post(t *testing.T, url string, body []byte, sig string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set(signatureHeader, sig)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	return resp.StatusCode
}

// readBack consumes topic from its log start until want records arrived, and returns the
// envelope ids of what it read.
func readBack(t *testing.T, brokers []string, topic string, want int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	var ids []string
	for len(ids) < want {
		fetches := cl.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "read %d of %d records", len(ids), want)
		fetches.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", tp, p, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			var env struct {
				ID string `json:"id"`
			}
			if assert.NoError(t, json.Unmarshal(r.Value, &env), "record value is the envelope") {
				ids = append(ids, env.ID)
			}
		})
	}
	return ids
}

func TestPipelines(t *testing.T) {
	h := getHarness(t)
	m := newRuleMatcher(t, h.rules)
	samples := readSamples(t)
	for _, name := range pipelineNames {
		p := h.pipelines[name]
		t.Run(name, func(t *testing.T) {
			_, err := h.gen.call(lgRequest{Op: "drain", Topic: p.topic})
			require.NoError(t, err)

			var want []string
			for file, sample := range samples {
				body, err := withSeq(sample, smokeSeq.Add(1))
				require.NoError(t, err)
				assert.Equal(t, http.StatusOK, post(t, p.url, body, sign(t, benchSecret, body)), file)
				if len(fanbridgeMatches(t, m, body)) > 0 {
					var env struct{ ID string }
					require.NoError(t, json.Unmarshal(body, &env))
					want = append(want, env.ID)
				}
			}

			// Refused: a wrong key, no signature, a body changed after signing. None may reach
			// Kafka, which the exact count below checks.
			body, err := withSeq(h.template, smokeSeq.Add(1))
			require.NoError(t, err)
			tampered := bytes.Replace(body, []byte(`"mediaType": "CHAT"`), []byte(`"mediaType": "VOICE"`), 1)
			assert.Equal(t, http.StatusUnauthorized, post(t, p.url, body, sign(t, []byte("wrong secret"), body)), "wrong key")
			assert.Equal(t, http.StatusUnauthorized, post(t, p.url, body, ""), "no signature")
			assert.Equal(t, http.StatusUnauthorized, post(t, p.url, tampered, sign(t, benchSecret, body)), "tampered body")

			// The load generator's path, as the benchmark drives it.
			const n = 300
			resp, err := h.gen.call(lgRequest{Op: "run", URL: p.url, N: n, Clients: 8,
				Template: h.template, IDAt: h.idAt, Secret: benchSecret})
			require.NoError(t, err)
			require.Equal(t, map[int]int{http.StatusOK: n}, resp.Statuses, "first error: %s", resp.FirstErr)
			for i := range uint64(n) {
				b, err := withSeq(h.template, resp.FirstSeq+i)
				require.NoError(t, err)
				var env struct{ ID string }
				require.NoError(t, json.Unmarshal(b, &env))
				want = append(want, env.ID)
			}

			got := readBack(t, h.brokers, p.topic, len(want))
			slices.Sort(got)
			slices.Sort(want)
			assert.Equal(t, want, got, "every acknowledged event in Kafka exactly once")
			drained, err := h.gen.call(lgRequest{Op: "drain", Topic: p.topic})
			require.NoError(t, err)
			assert.Equal(t, int64(len(want)), drained.Produced, "no record beyond those")

			// measure checks its own deliveries; run it once so the benchmark's path is tested.
			seg, err := h.measure(p, 100, true, nil)
			require.NoError(t, err)
			assert.Equal(t, 100, seg.events)
			assert.Positive(t, seg.cpu)
			assert.LessOrEqual(t, seg.p50, seg.p99)
		})
	}
}

// Every pipeline answers an event only once the broker has acknowledged its record: with every
// produce request held 300 ms by the broker, no answer comes sooner. A pipeline that answered
// when the record was only queued would answer in a few milliseconds, and the exact record
// counts of the other checks, taken after the run, would not see it.
func TestPipelinesAnswerAfterTheBrokerAcknowledges(t *testing.T) {
	const hold = 300 * time.Millisecond
	h := getHarness(t)
	for _, name := range pipelineNames {
		p := h.pipelines[name]
		t.Run(name, func(t *testing.T) {
			_, err := h.gen.call(lgRequest{Op: "drain", Topic: p.topic})
			require.NoError(t, err)
			_, err = h.gen.call(lgRequest{Op: "slow", SlowProduce: hold})
			require.NoError(t, err)
			defer func() {
				_, err := h.gen.call(lgRequest{Op: "slow"})
				require.NoError(t, err)
			}()
			body, err := withSeq(h.template, smokeSeq.Add(1))
			require.NoError(t, err)
			start := time.Now()
			require.Equal(t, http.StatusOK, post(t, p.url, body, sign(t, benchSecret, body)))
			took := time.Since(start)
			assert.GreaterOrEqual(t, took, hold, "answered before the broker acknowledged")
			drained, err := h.gen.call(lgRequest{Op: "drain", Topic: p.topic})
			require.NoError(t, err)
			assert.Equal(t, int64(1), drained.Produced)
		})
	}
}

func TestIDTail(t *testing.T) {
	for _, body := range []string{`{"id": "58fb5dac-f077-4eec-a25f-c638dbdd4368"}`, `{"id":"58fb5dac-f077-4eec-a25f-c638dbdd4368"}`} {
		got, err := withSeq([]byte(body), 0xabc)
		require.NoError(t, err)
		assert.Contains(t, string(got), `58fb5dac-f077-4eec-a25f-000000000abc"`)
	}
	for _, body := range []string{`{"id": "short"}`, `{"other": 1}`} {
		_, err := withSeq([]byte(body), 1)
		assert.Error(t, err, body)
	}
	assert.Equal(t, time.Duration(2), percentile([]time.Duration{1, 2, 3, 4}, 50))
	assert.Equal(t, time.Duration(4), percentile([]time.Duration{1, 2, 3, 4}, 99))
}
