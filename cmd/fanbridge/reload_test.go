package main_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// reloadConfig is rewritten during the test: the version comment and its padding make every
// version's text (and size) differ.
const reloadConfig = `# version %[1]d%[2]s
listen: {address: "127.0.0.1:0"}
intake:
  - path: /events
    verifiers:
      - api_key: {header: X-Api-Key, keys: ["${E2E_API_KEY}"]}
sinks:
%[3]s
routes:
%[4]s
dlq: {file: {dir: "%[5]s"}}
logging: {level: info, format: json}
reload: {watch: %[6]t, interval: 100ms}
%[7]s`

// Configuration A sends everything to reload.a; configuration B drops that sink, adds kafka-b,
// and routes with a pattern and a CEL expression: ended conversations to reload.b and the gRPC
// consumer, started ones to reload.b only.
const (
	sinksA = `  - name: analytics
    grpc: {targets: ["%[1]s"], insecure: true}
  - name: kafka-a
    kafka: {brokers: ["%[2]s"], topic: reload.a}`
	routesA = `  - {name: everything, all: true, sinks: [kafka-a]}`
	sinksB  = `  - name: analytics
    grpc: {targets: ["%[1]s"], insecure: true}
  - name: kafka-b
    kafka: {brokers: ["%[2]s"], topic: reload.b}`
	routesB = `  - name: ended
    pattern: {detail-type: [{suffix: ".customer.end"}]}
    sinks: [kafka-b, analytics]
  - name: started
    cel: "event.type.endsWith('.customer.start')"
    sinks: [kafka-b]`
	// Two ways to get B wrong: a misspelt key, and a route naming a sink that does not exist.
	routesBadKey = `  - name: ended
    patern: {detail-type: [{suffix: ".customer.end"}]}
    sinks: [kafka-b, analytics]`
	routesBadRef = `  - name: ended
    pattern: {detail-type: [{suffix: ".customer.end"}]}
    sinks: [kafka-b, analytics]
  - name: started
    cel: "event.type.endsWith('.customer.start')"
    sinks: [kafka-b, kafka-c]`
)

// TestReloadUnderLoad changes the routes of the running binary while clients post without pause,
// first with SIGHUP and then by editing the file under reload.watch: no request fails, each event
// follows exactly one configuration (the old one or the new one), events posted after the reload
// follow the new routes, and a file with a mistake is refused with the key named while the
// running routes carry on.
func TestReloadUnderLoad(t *testing.T) {
	for _, tc := range []struct {
		name  string
		watch bool
	}{
		{"SIGHUP", false},
		{"file change", true},
	} {
		t.Run(tc.name, func(t *testing.T) { testReload(t, tc.watch) })
	}
}

func testReload(t *testing.T, watch bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	perPhase, nPosters := 20, 4
	if *long {
		perPhase, nPosters = 500, 16
	}
	kc := newKafka(t, "reload.a", "reload.b")
	broker := kc.ListenAddrs()[0]
	cons := newConsumer(t)
	dlqDir := filepath.Join(t.TempDir(), "dlq")
	cfgPath := filepath.Join(t.TempDir(), "fanbridge.yaml")
	version := 0
	write := func(sinks, routes string) {
		version++
		// B also asks for async dispatch, which only a restart can change: it is reported and
		// ignored (the events of B are still delivered before the answer).
		extra := ""
		if sinks == sinksB {
			extra = "dispatch: {mode: async}\n"
		}
		writeFile(t, cfgPath, fmt.Sprintf(reloadConfig, version, strings.Repeat(" #", version),
			fmt.Sprintf(sinks, cons.addr, broker), routes, dlqDir, watch, extra))
	}
	write(sinksA, routesA)
	p := startService(t, ctx, cfgPath, "E2E_API_KEY="+e2eAPIKey)

	// change writes a new version and triggers a reload, then waits for the service's verdict.
	change := func(sinks, routes, want string) map[string]any {
		t.Helper()
		from := p.stderr.len()
		write(sinks, routes)
		if !watch {
			p.signal(t, syscall.SIGHUP)
		}
		line, _, err := p.stderr.wait(ctx, from, func(s string) bool {
			_, applied := logMsg(s, "configuration reloaded")
			_, rejected := logMsg(s, "configuration reload rejected; the running configuration stays")
			return applied || rejected
		})
		require.NoError(t, err, "no reload logged")
		m, ok := logMsg(line, want)
		require.True(t, ok, "want %q, got %s", want, line)
		trigger := "SIGHUP: reloading configuration"
		if watch {
			trigger = "configuration file changed; reloading"
		}
		_, _, err = p.stderr.wait(ctx, from, func(s string) bool { _, ok := logMsg(s, trigger); return ok })
		require.NoError(t, err)
		return m
	}

	ps := startPosters(ctx, t, nPosters, p.url("/events"), e2eAPIKey, newEnvelopes(t), 0)
	const (
		cfgA = 1 << iota
		cfgB
	)
	// allowed lists the configurations an event may follow by the phase it was posted in; a
	// phase during which a reload was under way allows both.
	allowed := []int{cfgA}
	next := func(cfgs int) {
		allowed = append(allowed, cfgs)
		ps.phase.Add(1)
	}
	require.NoError(t, ps.waitPhase(ctx, perPhase))

	next(cfgA | cfgB)
	from := p.stderr.len()
	change(sinksB, routesB, "configuration reloaded")
	next(cfgB)
	_, _, err := p.stderr.wait(ctx, from, func(s string) bool {
		m, ok := logMsg(s, "setting changed in the file takes effect after a restart")
		return ok && m["key"] == "dispatch"
	})
	require.NoError(t, err, "a restart-only setting is reported")
	require.NoError(t, ps.waitPhase(ctx, perPhase))

	m := change(sinksB, routesBadKey, "configuration reload rejected; the running configuration stays")
	assert.Contains(t, m["err"], `routes[0].patern: unknown key`)
	next(cfgB)
	require.NoError(t, ps.waitPhase(ctx, perPhase))

	m = change(sinksB, routesBadRef, "configuration reload rejected; the running configuration stays")
	assert.Contains(t, m["err"], `routes[1].sinks[1]: no sink is named "kafka-c"`)
	next(cfgB)
	require.NoError(t, ps.waitPhase(ctx, perPhase))

	next(cfgA | cfgB)
	change(sinksA, routesA, "configuration reloaded")
	next(cfgA)
	require.NoError(t, ps.waitPhase(ctx, perPhase))
	attempts := ps.stop()

	// Where each event went.
	type dest = string
	got := map[string]map[dest]int{}
	add := func(id string, d dest) {
		if got[id] == nil {
			got[id] = map[dest]int{}
		}
		got[id][d]++
	}
	for _, r := range readAll(t, ctx, []string{broker}, "reload.a", "reload.b") {
		add(r.Event.ID, r.Topic)
	}
	for _, d := range cons.deliveries() {
		add(d.Event.ID, "grpc")
	}
	want := func(cfg, kind int) []dest {
		switch {
		case cfg == cfgA:
			return []dest{"reload.a"}
		case kind == kindEnd:
			return []dest{"grpc", "reload.b"}
		}
		return []dest{"reload.b"}
	}

	byPhase := map[int32]int{}
	for _, a := range attempts {
		byPhase[a.Start]++
		if !assert.NoError(t, a.Err, "%s: no request may fail during a reload", a.ID) {
			continue
		}
		if !assert.Equal(t, 200, a.Status, "%s: %s", a.ID, a.Body) {
			continue
		}
		assert.Contains(t, a.Body, `"status":"delivered"`, a.ID)
		var dests []dest
		for d, n := range got[a.ID] {
			assert.Equal(t, 1, n, "%s delivered %d times to %s", a.ID, n, d)
			dests = append(dests, d)
		}
		slices.Sort(dests)
		cfgs := 0
		for ph := a.Start; ph <= a.End; ph++ {
			cfgs |= allowed[ph]
		}
		ok := false
		for _, c := range []int{cfgA, cfgB} {
			if cfgs&c != 0 && slices.Equal(dests, want(c, a.Kind)) {
				ok = true
			}
		}
		assert.True(t, ok, "%s (kind %d, phases %d-%d) went to %v", a.ID, a.Kind, a.Start, a.End, dests)
		delete(got, a.ID)
	}
	assert.Empty(t, got, "events nobody posted")
	t.Logf("%d events posted, by phase: %v", len(attempts), byPhase)

	// Exactly the two valid versions were applied: a refused file is not retried at every tick of
	// the watch, and SIGHUP alone reloads when the watch is off.
	var applied, changed int
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		if _, ok := logMsg(l, "configuration reloaded"); ok {
			applied++
		}
		if _, ok := logMsg(l, "configuration file changed; reloading"); ok {
			changed++
		}
	}
	assert.Equal(t, 2, applied, "reloads applied")
	if watch {
		assert.Equal(t, 4, changed, "one reload per change of the file")
	} else {
		assert.Zero(t, changed, "the file is not watched")
	}

	p.signal(t, syscall.SIGTERM)
	code, err := p.exit(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, code)
}

// A SIGHUP that arrives while the service starts (initializing its packages, reading its file,
// building its sinks, binding its listener) does not end the process with the signal's default
// action: it is kept, and reloads the file once the service runs. The process asks for SIGHUP in
// the init of package hangup; with GODEBUG=inittrace=1 the Go runtime reports that init on
// stderr, and from then on the test sends SIGHUP without pause until the service listens (before
// that, SIGHUP ends any program). Then it checks that the service runs, reloads, and stops
// cleanly on SIGTERM.
func TestSIGHUPDuringStartUpIsKept(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kc := newKafka(t, "startup")
	cfgPath := filepath.Join(t.TempDir(), "fanbridge.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(reloadConfig, 1, "", fmt.Sprintf(`  - name: kafka
    kafka: {brokers: ["%s"], topic: startup}`, kc.ListenAddrs()[0]),
		`  - {name: everything, all: true, sinks: [kafka]}`, filepath.Join(t.TempDir(), "dlq"), false, ""))
	p := start(t, []string{"E2E_API_KEY=" + e2eAPIKey, "GODEBUG=inittrace=1"}, "-config", cfgPath)
	_, _, err := p.stderr.wait(ctx, 0, func(s string) bool {
		return strings.HasPrefix(s, "init github.com/fanbridge/fanbridge/cmd/fanbridge/internal/hangup ")
	})
	require.NoError(t, err, "no init trace of package hangup:\n%s", p.stderr.String())

	listening := func() bool {
		for _, l := range strings.Split(p.stderr.String(), "\n") {
			if _, ok := logMsg(l, "listening"); ok {
				return true
			}
		}
		return false
	}
	sent := 0
	for !listening() {
		select {
		case <-p.done:
			t.Fatalf("the process ended after %d SIGHUPs during start-up: %v\n%s", sent, p.err, p.stderr.String())
		case <-ctx.Done():
			t.Fatalf("the service did not start:\n%s", p.stderr.String())
		default:
		}
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err == nil {
			sent++
		}
		runtime.Gosched()
	}
	t.Logf("%d SIGHUPs sent during start-up", sent)
	require.Positive(t, sent)

	_, _, err = p.stderr.wait(ctx, 0, func(s string) bool { _, ok := logMsg(s, "SIGHUP: reloading configuration"); return ok })
	require.NoError(t, err, "the SIGHUP kept from the start-up did not reload:\n%s", p.stderr.String())
	line, _, err := p.stderr.wait(ctx, 0, func(s string) bool { _, ok := logMsg(s, "listening"); return ok })
	require.NoError(t, err)
	m, _ := logMsg(line, "listening")
	p.addr = m["addr"].(string)
	code, _, err := get(ctx, p.url("/healthz"))
	require.NoError(t, err)
	assert.Equal(t, 200, code)

	p.signal(t, syscall.SIGTERM)
	code, err = p.exit(ctx)
	require.NoError(t, err)
	assert.Zero(t, code, "exit code after SIGTERM:\n%s", p.stderr.String())
}
