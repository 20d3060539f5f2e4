package lossless_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/retry"
)

// TestReconcileCatches proves the reconciliation can fail: starting from a run where every
// destination holds exactly what it should, each case breaks one promise the way a faulty
// library would, and the reconciliation must name it.
func TestReconcileCatches(t *testing.T) {
	const n = 20
	c := newCorpus(t, "0badc0de", n)
	routes := map[string][]string{}
	for _, r := range routeDefs {
		routes[r.name] = r.sinks
	}
	// A route that names sink s, for dead-letter entries.
	routeFor := func(s string) string {
		for _, r := range routeDefs {
			if contains(r.sinks, s) {
				return r.name
			}
		}
		return ""
	}
	// firstFor returns the index of the first event that wants (or does not want) sink s.
	firstFor := func(s string, want bool) int {
		for i := range c.events {
			if c.wants(i, s) == want {
				return i
			}
		}
		t.Fatalf("no event with wants(%s) == %v", s, want)
		return -1
	}
	perfect := func() ([]outcome, *holdings) {
		outs := make([]outcome, n)
		h := newHoldings()
		for i, ev := range c.events {
			outs[i] = outcome{answers: []answer{{status: http.StatusOK, what: "delivered"}}, acked: true}
			for _, s := range kinds[ev.kind].sinks {
				h.delivered[s][ev.id] = 1
			}
		}
		return outs, h
	}
	deadLetter := func(h *holdings, i int, s string, cond dlq.Condition, class retry.Class, text string) {
		ev := c.events[i]
		h.dlq[s][ev.id] = append(h.dlq[s][ev.id], dlq.Entry{ID: dlq.NewID(), Sink: s, Route: routeFor(s), Condition: cond, Class: class, Error: text})
		h.dlq[s][ev.id][len(h.dlq[s][ev.id])-1].Event.ID = ev.id
	}

	outs, h := perfect()
	require.True(t, reconcile(c, outs, h, rules{allAcked: true, routes: routes}).ok(), "a perfect run must pass")

	tests := []struct {
		name   string
		want   string
		rules  rules
		mutate func(outs []outcome, h *holdings)
	}{
		{"a sink silently drops an event", "lost", rules{}, func(_ []outcome, h *holdings) {
			delete(h.delivered[sinkA], c.events[firstFor(sinkA, true)].id)
		}},
		{"2xx before delivering: nothing anywhere", "lost", rules{holdingsOnly: true}, func(_ []outcome, h *holdings) {
			id := c.events[0].id
			for _, s := range allSinks {
				delete(h.delivered[s], id)
			}
		}},
		{"a loss in Sync mode, even when logged", "reported-lost", rules{}, func(_ []outcome, h *holdings) {
			i := firstFor(sinkB, true)
			delete(h.delivered[sinkB], c.events[i].id)
			h.reported = map[string]map[string]bool{sinkB: {c.events[i].id: true}}
		}},
		{"an Async loss nobody reported", "lost", rules{mayLose: true}, func(_ []outcome, h *holdings) {
			i := firstFor(sinkB, true)
			delete(h.delivered[sinkB], c.events[i].id)
			h.reported = map[string]map[string]bool{sinkB: {c.events[i+1].id: true}}
		}},
		{"an event on a sink its routes do not name", "misrouted", rules{}, func(_ []outcome, h *holdings) {
			h.delivered[sinkKafka][c.events[firstFor(sinkKafka, false)].id] = 1
		}},
		{"a dead letter for a sink its routes do not name", "misrouted", rules{}, func(_ []outcome, h *holdings) {
			deadLetter(h, firstFor(sinkA, false), sinkA, dlq.ConditionAttempts, retry.ClassRetryable, "x")
		}},
		{"a duplicate on a sink that never failed", "unexplained-duplicate", rules{}, func(_ []outcome, h *holdings) {
			h.delivered[sinkB][c.events[firstFor(sinkB, true)].id] = 2
		}},
		{"more copies than failed Sends", "unexplained-duplicate", rules{}, func(_ []outcome, h *holdings) {
			h.delivered[sinkKafka][c.events[firstFor(sinkKafka, true)].id] = 3
			h.ambiguous[sinkKafka][c.events[firstFor(sinkKafka, true)].id] = 1
		}},
		{"two dead letters for one event and sink", "dead-lettered-twice", rules{}, func(_ []outcome, h *holdings) {
			i := firstFor(sinkA, true)
			delete(h.delivered[sinkA], c.events[i].id)
			deadLetter(h, i, sinkA, dlq.ConditionAttempts, retry.ClassRetryable, "x")
			deadLetter(h, i, sinkA, dlq.ConditionAttempts, retry.ClassRetryable, "x")
		}},
		{"more dead letters than failed Puts explain", "dead-lettered-twice", rules{}, func(_ []outcome, h *holdings) {
			i := firstFor(sinkA, true)
			delete(h.delivered[sinkA], c.events[i].id)
			h.dlqMaybe[sinkA][c.events[i].id] = 1
			for range 3 {
				deadLetter(h, i, sinkA, dlq.ConditionAttempts, retry.ClassRetryable, "x")
			}
		}},
		{"a dead letter naming a route that does not name its sink", "dead-letter-entry", rules{}, func(_ []outcome, h *holdings) {
			i := firstFor(sinkA, true)
			deadLetter(h, i, sinkA, dlq.ConditionAttempts, retry.ClassRetryable, "x")
			h.dlq[sinkA][c.events[i].id][0].Route = "audits"
		}},
		{"a refusal dead-lettered as retryable", "refusal-not-permanent", rules{}, func(_ []outcome, h *holdings) {
			i := firstFor(sinkA, true)
			delete(h.delivered[sinkA], c.events[i].id)
			deadLetter(h, i, sinkA, dlq.ConditionAttempts, retry.ClassRetryable, permanentA(c.events[i].id).Error())
		}},
		{"an event a consumer refused is on it anyway", "refused-but-delivered", rules{}, func(_ []outcome, h *holdings) {
			h.refused[sinkA][c.events[firstFor(sinkA, true)].id] = 1
		}},
		{"an answer EventBridge does not retry", "refused", rules{}, func(outs []outcome, _ *holdings) {
			outs[3].answers = append([]answer{{status: http.StatusBadRequest}}, outs[3].answers...)
		}},
		{"an event never acknowledged", "unacknowledged", rules{allAcked: true}, func(outs []outcome, _ *holdings) {
			outs[4] = outcome{answers: []answer{{status: http.StatusServiceUnavailable}}, gaveUp: true}
		}},
		{"an event ignored by every route", "2xx-not-delivered", rules{}, func(outs []outcome, _ *holdings) {
			outs[5].answers[0].what = "ignored"
		}},
		{"an id nobody sent", "unknown-id", rules{}, func(_ []outcome, h *holdings) {
			h.delivered[sinkB]["not-sent"] = 1
		}},
		{"bytes changed on the way", "corrupt", rules{}, func(_ []outcome, h *holdings) {
			h.corrupt = append(h.corrupt, "kafka record x")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outs, h := perfect()
			tt.mutate(outs, h)
			ru := tt.rules
			ru.routes = routes
			r := reconcile(c, outs, h, ru)
			assert.Contains(t, r.problems, tt.want, "problems found: %v", r.problems)
		})
	}

	t.Run("explained duplicates and dead letters pass", func(t *testing.T) {
		outs, h := perfect()
		i := firstFor(sinkKafka, true)
		h.delivered[sinkKafka][c.events[i].id] = 2
		h.ambiguous[sinkKafka][c.events[i].id] = 1
		j := firstFor(sinkA, true)
		delete(h.delivered[sinkA], c.events[j].id)
		h.refused[sinkA][c.events[j].id] = 1
		deadLetter(h, j, sinkA, dlq.ConditionPermanent, retry.ClassPermanent, permanentA(c.events[j].id).Error())
		// Its first Put failed after storing the entry (the fsync wait ran out of time), the
		// sender retried, and the refusal was dead-lettered again.
		h.dlqMaybe[sinkA][c.events[j].id] = 1
		deadLetter(h, j, sinkA, dlq.ConditionPermanent, retry.ClassPermanent, permanentA(c.events[j].id).Error())
		k := firstFor(sinkB, true)
		delete(h.delivered[sinkB], c.events[k].id)
		h.reported = map[string]map[string]bool{sinkB: {c.events[k].id: true}}
		outs[1].answers = append([]answer{{status: 0}, {status: http.StatusServiceUnavailable}, {status: http.StatusTooManyRequests}}, outs[1].answers...)
		r := reconcile(c, outs, h, rules{allAcked: true, mayLose: true, routes: routes})
		assert.True(t, r.ok(), "problems found: %v", r.problems)
	})
}
