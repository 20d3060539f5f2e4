package lossless_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/fanout"
)

var (
	longFlag   = flag.Bool("long", false, "run the long variant: 50,000 events per mode, 20,000 with Kafka timeouts and in the shutdown scenario")
	eventsFlag = flag.Int("events", 0, "events per scenario (overrides the default and -long)")
)

// shortEvents is the size of every scenario under -short: enough for each fault to land among
// events, small enough for a quick check.
const shortEvents = 1000

// eventCount returns a scenario's size: -events if given, else long with -long, shortEvents with
// -short, and ci otherwise.
func eventCount(ci, long int) int {
	switch {
	case *eventsFlag > 0:
		return *eventsFlag
	case *longFlag:
		return long
	case testing.Short():
		return min(ci, shortEvents)
	}
	return ci
}

const senders = 32

// The broker holds produce requests once per run: for shortStall, which the Kafka sink's attempt
// timeout (2 s) rides out, or for longStall, which it does not, so that Sends time out while
// their records wait in the client, and the retries produce them again.
const (
	shortStall = 600 * time.Millisecond
	longStall  = 2500 * time.Millisecond
)

// chaosMarks are the milestones chaos waits for.
var chaosMarks = []float64{0.15, 0.30, 0.45, 0.60}

// chaos runs the fault schedule of a run by milestones of its progress, each fault on its own
// goroutine: a broker stall at 15%, grpc-b stopped and restarted on its address at 30% and 60%,
// and a dead-letter outage (every Put refused for longer than the DLQ timeout) at 45%. It returns
// a function that ends the schedule (bringing everything back up) and reports what it did.
func (e *env) chaos(ctx context.Context, p *progress, total int) (stop func() string) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var log []string
	var mu sync.Mutex
	note := func(format string, args ...any) {
		mu.Lock()
		log = append(log, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	// after waits for the fraction f of the run, then runs fault; hold is how long the fault
	// lasts before heal runs.
	after := func(f float64, hold time.Duration, fault, heal func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-p.at(total, f):
			case <-ctx.Done():
				return
			}
			fault()
			t := time.NewTimer(hold)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			heal()
		}()
	}
	after(0.15, 0, func() { e.kfaults.stall.Store(int64(e.cfg.kafkaStall)) }, func() {})
	var srvMu sync.Mutex // the two stops of grpc-b must not overlap
	restartB := func() {
		if err := e.srvB.restart(context.WithoutCancel(ctx)); err != nil {
			note("grpc-b restart failed: %v", err)
		}
		srvMu.Unlock()
	}
	stopB := func() { srvMu.Lock(); e.srvB.stop() }
	after(0.30, 500*time.Millisecond, stopB, restartB)
	after(0.60, 300*time.Millisecond, stopB, restartB)
	outage := fanout.DefaultDLQTimeout + 500*time.Millisecond
	after(0.45, outage, func() { e.outage.down.Store(true) }, func() { e.outage.down.Store(false) })
	return func() string {
		cancel()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("kafka stall %v at 15%%; grpc-b stopped at 30%% and 60%%, restarted %d times, down %v in all; dead-letter queue refused every Put for %v at 45%% (%d refused)%s",
			e.cfg.kafkaStall, e.srvB.restarts, e.srvB.downtime.Round(time.Millisecond), outage, e.outage.refused.Load(), strings.Join(append([]string{""}, log...), "; "))
	}
}

// injected summarises the failures injected during a run.
func (e *env) injected() string {
	return fmt.Sprintf("grpc-a: %d unavailable, %d refused, %d answers lost; grpc-b: %d unavailable, %d refused; kafka: %d of %d produce requests failed (%d records, %d undecoded), %d stalled",
		e.consA.counts.unavailable.Load(), e.consA.counts.rejected.Load(), e.consA.counts.late.Load(),
		e.consB.counts.unavailable.Load(), e.consB.counts.rejected.Load(),
		e.kfaults.injected.Load(), e.kfaults.requests.Load(), e.kfaults.ids.total(), e.kfaults.undecoded.Load(), e.kfaults.stalls.Load())
}

// sendForged posts the forged events with a wrong key: each must be refused with 401.
func sendForged(t *testing.T, ctx context.Context, e *env) {
	t.Helper()
	s := newSender(e.http.URL + "/events")
	s.key = "not-the-key"
	for _, ev := range e.c.forged {
		o := s.deliver(ctx, ev.body)
		require.Len(t, o.answers, 1)
		assert.Equal(t, http.StatusUnauthorized, o.answers[0].status, "forged %s", ev.id)
	}
}

// TestLossless runs the whole path in both modes while everything fails (see chaos), then
// reconciles. The broker stall stays within the Kafka sink's attempt timeout here; see
// TestLosslessKafkaTimeouts for the longer one.
func TestLossless(t *testing.T) {
	n := eventCount(10000, 50000)
	for _, mode := range []fanout.Mode{fanout.Sync, fanout.Async} {
		t.Run(mode.String(), func(t *testing.T) { runScenario(t, mode, n, shortStall) })
	}
}

// TestLosslessKafkaTimeouts is TestLossless in Sync mode with a broker stall longer than the
// Kafka sink's attempt timeout: Sends time out while their records wait in the client, which
// delivers them later, so Kafka may hold events twice or both hold and dead-letter them.
func TestLosslessKafkaTimeouts(t *testing.T) {
	runScenario(t, fanout.Sync, eventCount(5000, 20000), longStall)
}

// runScenario sends n events through the path in the given mode while chaos runs, with a broker
// stall of the given length, and reconciles: before Close in Sync mode (what the answer promised
// must hold at once), and after Close in both.
func runScenario(t *testing.T, mode fanout.Mode, n int, stall time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := newCorpus(t, fmt.Sprintf("%08x", time.Now().UnixNano()&0xffffffff), n)
	e := newEnv(t, c, setup{mode: mode, breakerB: fanout.Breaker{Cooldown: 300 * time.Millisecond}, kafkaFaultRate: 0.03, kafkaStall: stall})
	e.kfaults.active.Store(true)

	start := time.Now()
	p := newProgress(n, chaosMarks...)
	stopChaos := e.chaos(ctx, p, n)
	sendForged(t, ctx, e)
	outs := sendAll(ctx, newSender(e.http.URL+"/events"), c, senders, p)
	faults := stopChaos()
	e.kfaults.active.Store(false)
	sent := time.Since(start)

	lossless := mode == fanout.Sync
	if lossless {
		// The Sync answer's promise holds when it is given, not only after a drain.
		h, err := e.collect(ctx)
		require.NoError(t, err)
		if r := reconcile(c, outs, h, rules{allAcked: true, holdingsOnly: true, routes: e.routes}); !r.ok() {
			r.log(t)
			r.fail(t)
			t.FailNow()
		}
	}
	closeCtx, closeCancel := context.WithTimeout(ctx, 30*time.Second)
	defer closeCancel()
	closeErr := e.disp.Close(closeCtx)

	h, err := e.collect(ctx)
	require.NoError(t, err)
	r := reconcile(c, outs, h, rules{allAcked: true, mayLose: !lossless, queues: mode == fanout.Async, routes: e.routes})
	t.Logf("%s: %d events sent in %v by %d senders (%.0f events/s), drained in %v",
		mode, n, sent.Round(time.Millisecond), senders, float64(n)/sent.Seconds(), time.Since(start).Round(time.Millisecond))
	t.Logf("faults: %s", faults)
	t.Logf("injected: %s", e.injected())
	t.Logf("Close: %v", closeErr)
	r.log(t)
	r.fail(t)
	if lossless {
		assert.NoError(t, closeErr, "Close reports deliveries lost")
		return
	}
	// Async loses what the dead-letter queue refused after acceptance; Close must say
	// so, with the count the log holds.
	reported := 0
	for _, m := range h.reported {
		reported += len(m)
	}
	if reported == 0 {
		assert.NoError(t, closeErr)
	} else if assert.Error(t, closeErr) {
		assert.Contains(t, closeErr.Error(), fmt.Sprintf("%d deliveries neither delivered nor dead-lettered", reported))
	}
}

// TestLosslessShutdown stops the receiver under load the way a SIGTERM handler does: the HTTP
// server stops accepting first, then the Dispatcher is closed with a deadline while requests are
// still being dispatched, with grpc-b down so that deliveries are still retrying when the
// deadline comes. Nothing acknowledged may be lost, and Close must return within its deadline
// plus the dead-letter timeout.
func TestLosslessShutdown(t *testing.T) {
	n := eventCount(3000, 20000)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := newCorpus(t, fmt.Sprintf("%08x", time.Now().UnixNano()&0xffffffff), n)
	// grpc-b's breaker is off, so that its deliveries keep retrying rather than going straight
	// to the dead-letter queue.
	e := newEnv(t, c, setup{mode: fanout.Sync, breakerB: fanout.Breaker{Failures: -1}, kafkaFaultRate: 0.03})
	e.kfaults.active.Store(true)

	var gone atomic.Bool
	s := newSender(e.http.URL + "/events")
	s.gone = gone.Load
	p := newProgress(n, 0.3, 0.5)
	outsCh := make(chan []outcome, 1)
	go func() { outsCh <- sendAll(ctx, s, c, senders, p) }()

	waitFor := func(ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		}
	}
	waitFor(p.at(n, 0.3), "30% of the events")
	e.srvB.stop()
	waitFor(p.at(n, 0.5), "50% of the events")

	// SIGTERM: stop accepting (Shutdown closes the listener at once and then waits for the
	// requests in progress), then close the Dispatcher with a deadline while they run.
	gone.Store(true)
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- e.http.Config.Shutdown(ctx) }()
	waitFor(e.lisClose, "the listener to close")
	const closeDeadline = 500 * time.Millisecond
	closeCtx, closeCancel := context.WithTimeout(ctx, closeDeadline)
	defer closeCancel()
	began := time.Now()
	closeErr := e.disp.Close(closeCtx)
	took := time.Since(began)
	require.NoError(t, closeErr, "Close reports deliveries lost")
	// Past its deadline Close waits while the dead-letter queue keeps taking entries, and gives
	// up once it has taken none for the DLQ timeout, plus a 100ms grace: with the small backlog
	// left at this deadline, written at once by a healthy queue, that is within its deadline plus
	// the DLQ timeout plus the grace. The extra second absorbs a loaded 2-core machine under
	// -race, and the measured figure is logged.
	limit := closeDeadline + fanout.DefaultDLQTimeout + 100*time.Millisecond
	assert.LessOrEqual(t, took, limit+time.Second, "Close took %v, promised %v", took, limit)
	require.ErrorIs(t, e.disp.Dispatch(ctx, &fanbridge.Event{ID: "after-close", Type: "t"}), fanbridge.ErrClosed)
	select {
	case err := <-shutdownErr:
		require.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("timed out waiting for the HTTP server to shut down")
	}
	var outs []outcome
	select {
	case outs = <-outsCh:
	case <-ctx.Done():
		t.Fatal("timed out waiting for the senders")
	}

	h, err := e.collect(ctx)
	require.NoError(t, err)
	r := reconcile(c, outs, h, rules{routes: e.routes})
	acked, partial := 0, 0
	for i, o := range outs {
		if o.acked {
			acked++
			continue
		}
		for _, sn := range allSinks {
			if h.delivered[sn][c.events[i].id] > 0 || len(h.dlq[sn][c.events[i].id]) > 0 {
				partial++
				break
			}
		}
	}
	require.Positive(t, acked, "no event was acknowledged before the shutdown")
	require.Less(t, acked, n, "the shutdown came after every event was acknowledged")
	t.Logf("shutdown at 50%%: Close took %v (deadline %v, promised by %v); %d acknowledged, %d not (%d of them reached some sink or the dead-letter queue: the sender retries elsewhere)",
		took.Round(time.Millisecond), closeDeadline, limit, acked, n-acked, partial)
	t.Logf("injected: %s", e.injected())
	r.log(t)
	r.fail(t)
}
