package lossless_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/retry"
)

// holdings is what the destinations really have, read back after a run, plus the evidence of
// failed deliveries per sink.
//
// ambiguous counts, per sink and event, the failed Sends after which the event may still have
// landed: every failed Send of the Kafka sink (a timed-out record stays with the client, which
// may deliver it), and the failed Sends of a gRPC sink minus the calls its consumer answered with
// an error without storing the event. Each can account for one extra copy at most; a produce
// request the broker failed is not among them, since the broker stored nothing.
type holdings struct {
	delivered map[string]map[string]int         // sink -> event id -> deliveries
	dlq       map[string]map[string][]dlq.Entry // sink -> event id -> dead-letter entries
	ambiguous map[string]map[string]int         // sink -> event id -> failed Sends that may have landed
	dlqMaybe  map[string]map[string]int         // sink -> event id -> failed dead-letter Puts that may have stored their entry
	refused   map[string]map[string]int         // sink -> event id -> calls the consumer refused for good
	reported  map[string]map[string]bool        // sink -> event id: deliveries the Dispatcher logged as lost
	misplaced []string                          // Kafka records on a topic their type does not map to
	corrupt   []string                          // records or entries whose bytes differ from what was sent
}

func newHoldings() *holdings {
	h := &holdings{delivered: map[string]map[string]int{}, dlq: map[string]map[string][]dlq.Entry{}, ambiguous: map[string]map[string]int{},
		dlqMaybe: map[string]map[string]int{}, refused: map[string]map[string]int{}}
	for _, s := range allSinks {
		h.delivered[s], h.dlq[s], h.ambiguous[s], h.dlqMaybe[s], h.refused[s] = map[string]int{}, map[string][]dlq.Entry{}, map[string]int{}, map[string]int{}, map[string]int{}
	}
	return h
}

func addAll(dst, src map[string]int) {
	for k, v := range src {
		dst[k] += v
	}
}

// collect reads every destination back: the Kafka topics through a consumer, the consumers'
// records, the dead-letter files through their Reader.
func (e *env) collect(ctx context.Context) (*holdings, error) {
	h := newHoldings()
	recs, err := e.readKafka(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading Kafka back: %w", err)
	}
	for _, r := range recs {
		id := string(r.Key)
		h.delivered[sinkKafka][id]++
		if idx, ok := e.c.byID[id]; ok {
			ev := e.c.events[idx]
			if want := kinds[ev.kind].topic; r.Topic != want {
				h.misplaced = append(h.misplaced, fmt.Sprintf("%s on %s, want %s", id, r.Topic, want))
			}
			if !bytes.Equal(r.Value, ev.body) {
				h.corrupt = append(h.corrupt, "kafka record "+id)
			}
		}
	}
	addAll(h.delivered[sinkA], e.consA.delivered.snapshot())
	addAll(h.delivered[sinkB], e.consB.delivered.snapshot())
	for _, cs := range []*consumer{e.consA, e.consB} {
		if n := cs.counts.corrupt.Load(); n > 0 {
			h.corrupt = append(h.corrupt, fmt.Sprintf("%d calls to %s", n, cs.name))
		}
	}

	entries, err := e.readDLQ(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the dead-letter queue back: %w", err)
	}
	for _, en := range entries {
		if h.dlq[en.Sink] == nil {
			h.dlq[en.Sink] = map[string][]dlq.Entry{}
		}
		h.dlq[en.Sink][en.Event.ID] = append(h.dlq[en.Sink][en.Event.ID], en)
		if idx, ok := e.c.byID[en.Event.ID]; ok && !bytes.Equal(en.Event.Raw, e.c.events[idx].body) {
			h.corrupt = append(h.corrupt, "dead-letter entry "+en.ID)
		}
	}

	addAll(h.ambiguous[sinkKafka], e.obs[sinkKafka].fails.snapshot())
	for _, cs := range []*consumer{e.consA, e.consB} {
		clean := cs.clean.snapshot()
		for id, n := range e.obs[cs.name].fails.snapshot() {
			if n > clean[id] {
				h.ambiguous[cs.name][id] = n - clean[id]
			}
		}
	}
	for key, n := range e.outage.uncertain.snapshot() {
		if sinkName, id, ok := strings.Cut(key, " "); ok && h.dlqMaybe[sinkName] != nil {
			h.dlqMaybe[sinkName][id] += n
		}
	}
	h.reported = e.losses.snapshot()
	addAll(h.refused[sinkA], e.consA.refused.snapshot())
	addAll(h.refused[sinkB], e.consB.refused.snapshot())
	return h, nil
}

// report is the reconciliation's verdict: problems by kind (each with its examples) and the
// counts.
type report struct {
	problems map[string][]string
	lines    []string
}

func (r *report) problem(kind, format string, args ...any) {
	if r.problems == nil {
		r.problems = map[string][]string{}
	}
	r.problems[kind] = append(r.problems[kind], fmt.Sprintf(format, args...))
}

func (r *report) logf(format string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

func (r *report) ok() bool { return len(r.problems) == 0 }

// fail reports every problem kind with its count and a few examples.
func (r *report) fail(t testing.TB) {
	t.Helper()
	kinds := make([]string, 0, len(r.problems))
	for k := range r.problems {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		ex := r.problems[k]
		t.Errorf("%s: %d, e.g. %s", k, len(ex), strings.Join(ex[:min(len(ex), 5)], "; "))
	}
}

func (r *report) log(t testing.TB) {
	t.Helper()
	for _, l := range r.lines {
		t.Log(l)
	}
}

// rules says what a run promised.
type rules struct {
	// allAcked: every event must end with a 2xx (no shutdown in the way).
	allAcked bool
	// holdingsOnly: check only that acknowledged events are held (the Sync answer's promise,
	// checked before Close); duplicates and dead-letter details wait for the final pass.
	holdingsOnly bool
	// mayLose: Async mode, where an accepted delivery that reaches neither its sink nor the
	// dead-letter queue is lost by design, but must be reported (logged with its id, counted by
	// Close). An unreported loss is still a failure.
	mayLose bool
	// queues: the dispatcher queues (Async mode), so a 2xx for a new event says "queued".
	queues bool
	routes map[string][]string
}

// reconcile checks the holdings against what the senders were told.
func reconcile(c *corpus, outs []outcome, h *holdings, ru rules) *report {
	r := &report{}

	// The answers: every non-2xx one was an answer the sender retries, and the last one is 2xx.
	var acked, retried, attempts, gaveUp int
	statusCount := map[int]int{}
	whatCount := map[string]int{}
	for i, o := range outs {
		id := c.events[i].id
		attempts += len(o.answers)
		if len(o.answers) > 1 {
			retried++
		}
		for j, a := range o.answers {
			statusCount[a.status]++
			last := j == len(o.answers)-1
			switch {
			case a.status/100 == 2:
				whatCount[a.what]++
				if !last {
					r.problem("2xx-not-last", "%s answer %d of %d", id, j+1, len(o.answers))
				}
				want := "delivered"
				if ru.queues {
					want = "queued"
				}
				if a.what != want && a.what != "duplicate" {
					r.problem("2xx-not-delivered", "%s answered %d %q", id, a.status, a.what)
				}
			case a.status == 0, a.status == http.StatusTooManyRequests, a.status >= 500:
				// retryable: the sender tries again
			default:
				r.problem("refused", "%s answered %d (not retryable)", id, a.status)
			}
		}
		switch {
		case o.acked:
			acked++
		case ru.allAcked:
			r.problem("unacknowledged", "%s: %d answers, last %v", id, len(o.answers), o.answers)
		default:
			gaveUp++
		}
	}

	// Every acknowledged event is on each sink its routes name, or in the dead-letter queue for
	// it; nothing is anywhere it should not be.
	wanted, reportedLost := map[string]int{}, map[string]int{}
	for s, m := range h.reported {
		if !ru.mayLose {
			for id := range m {
				r.problem("reported-lost", "%s on %s reported lost in a mode that must not lose", id, s)
			}
		}
	}
	for i, o := range outs {
		ev := c.events[i]
		for _, s := range allSinks {
			want := c.wants(i, s)
			got, dead := h.delivered[s][ev.id], len(h.dlq[s][ev.id])
			switch {
			case !want && got+dead > 0:
				r.problem("misrouted", "%s (%s) on %s: %d deliveries, %d dead letters", ev.id, kinds[ev.kind].file, s, got, dead)
			case want && o.acked:
				wanted[s]++
				switch {
				case got > 0 || dead > 0:
				case ru.mayLose && h.reported[s][ev.id]:
					reportedLost[s]++
				default:
					r.problem("lost", "%s acknowledged but neither on %s nor in its dead letters (%d answers)", ev.id, s, len(o.answers))
				}
			}
		}
	}
	for _, s := range allSinks {
		for id := range h.delivered[s] {
			if _, ok := c.byID[id]; !ok {
				r.problem("unknown-id", "%s holds %s, which was never accepted", s, id)
			}
		}
		for id := range h.dlq[s] {
			if _, ok := c.byID[id]; !ok {
				r.problem("unknown-id", "dead letters for %s hold %s, which was never accepted", s, id)
			}
		}
	}
	for s, m := range h.dlq {
		if _, ok := h.delivered[s]; !ok {
			for id := range m {
				r.problem("unknown-sink", "dead letter of %s for sink %q", id, s)
			}
		}
	}
	for _, m := range h.misplaced {
		r.problem("wrong-topic", "%s", m)
	}
	for _, m := range h.corrupt {
		r.problem("corrupt", "%s differs from the bytes sent", m)
	}
	r.logf("sent %d events (+%d with a wrong key), %d acknowledged (2xx %v), %d retried by the sender, %d attempts in all, %d not acknowledged",
		len(c.events), len(c.forged), acked, whatCount, retried, attempts, gaveUp)
	r.logf("answers by status (0 = no answer): %v", statusCount)
	if ru.holdingsOnly {
		return r
	}

	// Dead letters: one per (event, sink), or one more for each failed Put that may have stored
	// its entry all the same, naming a route that chose the sink, with a reason; the events a
	// consumer refuses for good are there and nowhere else.
	for _, s := range allSinks {
		conds := map[dlq.Condition]int{}
		var both, dups, extra, dead, deadTwice int
		for id, es := range h.dlq[s] {
			dead += len(es)
			if len(es) > 1 {
				deadTwice++
				if len(es)-1 > h.dlqMaybe[s][id] {
					r.problem("dead-lettered-twice", "%s for %s: %d entries, after %d failed Puts that may have stored theirs", id, s, len(es), h.dlqMaybe[s][id])
				}
			}
			if h.delivered[s][id] > 0 {
				both++
			}
			for _, en := range es {
				conds[en.Condition]++
				if en.Condition == "" {
					r.problem("dead-letter-entry", "entry %s for %s has no condition", en.ID, id)
				}
				if !contains(ru.routes[en.Route], s) {
					r.problem("dead-letter-entry", "entry %s for %s names route %q, which does not name %s", en.ID, id, en.Route, s)
				}
			}
		}
		for id, n := range h.delivered[s] {
			if n > 1 {
				dups++
				extra += n - 1
				if n-1 > h.ambiguous[s][id] {
					r.problem("unexplained-duplicate", "%s delivered %d times to %s, after %d failed Sends that may have landed", id, n, s, h.ambiguous[s][id])
				}
			}
		}
		// An event a consumer refused for good is never on that sink, and its dead letter, when
		// the refusal was the last word, says permanent.
		rejected := 0
		for id := range h.refused[s] {
			rejected++
			if h.delivered[s][id] > 0 {
				r.problem("refused-but-delivered", "%s on %s", id, s)
			}
		}
		for _, es := range h.dlq[s] {
			for _, en := range es {
				if isRefusal(en.Error) && (en.Condition != dlq.ConditionPermanent || en.Class != retry.ClassPermanent) {
					r.problem("refusal-not-permanent", "%s on %s: last error is the consumer's refusal, entry says %s/%v", en.Event.ID, s, en.Condition, en.Class)
				}
			}
		}
		ambiguous := sum(h.ambiguous[s])
		r.logf("%-6s wanted %d, delivered %d events (%d deliveries), dead-lettered %d %v, both %d, lost and reported %d, duplicated %d events (%d extra deliveries), refused for good %d, failed Sends that may have landed %d, dead-lettered twice %d after %d failed Puts that may have stored theirs",
			s, wanted[s], len(h.delivered[s]), sum(h.delivered[s]), dead, conds, both, reportedLost[s], dups, extra, rejected, ambiguous, deadTwice, sum(h.dlqMaybe[s]))
	}
	return r
}

// isRefusal tells a consumer's permanent refusal (permanentA, invalidB) by its text.
func isRefusal(text string) bool {
	return strings.Contains(text, "breaks a business rule") || strings.Contains(text, "is not acceptable")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
