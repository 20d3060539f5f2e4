// Package service runs fanbridge as a process: it builds the intake, sinks, routes and
// dead-letter queue a config.Config describes, serves them over HTTP with health and metrics
// endpoints, reloads routes and sinks at run time, and shuts down without losing what it
// acknowledged.
package service

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/filter"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
	"go.opentelemetry.io/otel/metric"
)

// Options are the process-level settings that do not come from the configuration file.
type Options struct {
	// ConfigPath is the file ReloadFile reads; empty for a configuration built in memory.
	ConfigPath string
	// Logger receives the service's logs. Required.
	Logger *slog.Logger
	// Level, when set, is changed on reload to the new logging.level.
	Level *slog.LevelVar
	// Listener, when set, is served instead of listening on cfg.Listen.Address.
	Listener net.Listener
	// ListenAddress, when set, overrides listen.address of every configuration, the first and
	// the reloaded ones (the -listen flag).
	ListenAddress string
	// ConfigText is the file's text the running configuration was parsed from; the file watch
	// (reload.watch) reloads when the file's content differs from the last text read.
	ConfigText []byte
}

// Service is a running fanbridge.
type Service struct {
	opts Options
	log  *slog.Logger
	tel  *telemetry

	disp    *fanout.Dispatcher
	queue   dlq.Queue
	closeQ  func(ctx context.Context) error // closes the queue, waiting only as long as ctx lasts
	dlqPing func(context.Context) error

	// reloadMu serialises reloads from reading the file to applying it, so that of two reloads
	// at once (the file watch and SIGHUP) the one that read the newer text applies last.
	reloadMu sync.Mutex
	mu       sync.Mutex // guards cfg, sinks and replay
	cfg      *config.Config
	sinks    map[string]*builtSink
	// replay holds the replay caches of the standard_webhooks verifiers running now, kept across
	// reloads so that a reload does not forget the messages already accepted.
	replay map[string]*replayStore

	intake atomic.Pointer[http.Handler]
	ready  *readiness

	// ws is the WebSocket source of the notifications section, nil without one; notify is the
	// dispatcher it hands its events to, which a reload points at the new logging settings.
	ws     *wsSource
	notify atomic.Pointer[eventLogger]

	srv *http.Server
	ln  net.Listener
	// admin serves /metrics, /readyz and /healthz on listen.admin_address; nil when unset.
	admin   *http.Server
	adminLn net.Listener

	// fileSum is the SHA-256 of the configuration text last read (at start or by ReloadFile).
	fileSum atomic.Pointer[[sha256.Size]byte]

	unready  atomic.Bool // /readyz fails: the shutdown began
	shutting atomic.Bool // intake requests are refused: the listener closes
	stopOnce sync.Once
	stopped  chan struct{}

	// settleMu guards settling and settleAgain: whether a goroutine waits for the configurations
	// reloads replaced (see settleRetired), and whether a reload came after its wait began.
	settleMu    sync.Mutex
	settling    bool
	settleAgain bool
	settleWG    sync.WaitGroup // the waiting goroutine, which the shutdown waits for
	// settleCtx ends when the shutdown begins: Close reports what is left from then on.
	settleCtx    context.Context
	settleCancel context.CancelFunc
}

// New builds everything cfg (validated) describes and starts listening; Run serves.
func New(cfg *config.Config, opts Options) (_ *Service, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.ListenAddress != "" {
		cfg.Listen.Address = opts.ListenAddress
	}
	// The cleanups below close over s, which the named result would turn to nil on return.
	s := &Service{opts: opts, log: opts.Logger, cfg: cfg, stopped: make(chan struct{})}
	s.settleCtx, s.settleCancel = context.WithCancel(context.Background())
	if opts.ConfigText != nil {
		sum := sha256.Sum256(opts.ConfigText)
		s.fileSum.Store(&sum)
	}
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()

	if s.tel, err = newTelemetry(cfg.Tracing, s.log); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	cleanup = append(cleanup, func() { _ = s.tel.shutdown(context.Background()) })

	if err = s.openDLQ(cfg); err != nil {
		return nil, err
	}
	if s.closeQ != nil {
		cleanup = append(cleanup, func() { _ = s.closeQ(context.Background()) })
	}

	s.sinks = map[string]*builtSink{}
	for i := range cfg.Sinks {
		b, berr := buildSink(&cfg.Sinks[i], s.log)
		if berr != nil {
			err = cfg.SinkError(i, berr)
			return nil, err
		}
		s.sinks[b.name] = b
		cleanup = append(cleanup, func() { b.release(); _ = sink.Close(b.sink) })
	}
	routes, err := buildRoutes(cfg, s.log)
	if err != nil {
		return nil, err
	}
	s.disp, err = fanout.New(fanout.Config{Sinks: sinkConfigs(cfg, s.sinks), Routes: routes, DLQ: s.queue}, s.dispatchOptions(cfg)...)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	// From here on the Dispatcher owns the sinks: undo in the order shutdown uses.
	cleanup = []func(){func() { _ = s.tel.shutdown(context.Background()) }}
	if s.closeQ != nil {
		cleanup = append(cleanup, func() { _ = s.closeQ(context.Background()) })
	}
	cleanup = append(cleanup, func() { _ = s.disp.Close(context.Background()) })
	for _, b := range s.sinks {
		cleanup = append(cleanup, b.release)
	}

	h, replay, err := s.buildIntake(cfg)
	if err != nil {
		return nil, err
	}
	s.intake.Store(&h)
	s.replay = replay
	s.notify.Store(s.eventLogger(cfg, notificationsScope))
	if err = s.openNotifications(cfg); err != nil {
		return nil, err
	}
	if s.ws != nil {
		// Before the Dispatcher's Close (cleanup runs backwards), as in the shutdown.
		cleanup = append(cleanup, s.ws.close)
	}
	s.ready = newReadiness(cfg.Health, &s.unready, s.tel.meters, s.log.With("component", "readiness"))
	s.ready.setProbes(s.probes())

	server := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: cfg.Listen.ReadHeaderTimeout.D(),
			ReadTimeout:       cfg.Listen.ReadTimeout.D(),
			WriteTimeout:      cfg.Listen.WriteTimeout.D(),
			IdleTimeout:       cfg.Listen.IdleTimeout.D(),
			MaxHeaderBytes:    int(cfg.Listen.MaxHeaderBytes),
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		}
	}
	admin := cfg.Listen.AdminAddress != ""
	s.srv = server(s.routes(!admin))
	s.ln = opts.Listener
	if s.ln == nil {
		if s.ln, err = net.Listen("tcp", cfg.Listen.Address); err != nil {
			if opts.ListenAddress != "" {
				// The address is the flag's, not the file's: the file is not what to fix.
				return nil, fmt.Errorf("-listen: %w", err)
			}
			return nil, cfg.SettingError("listen.address", err)
		}
		cleanup = append(cleanup, func() { _ = s.ln.Close() })
	}
	if admin {
		s.admin = server(s.adminRoutes())
		if s.adminLn, err = net.Listen("tcp", cfg.Listen.AdminAddress); err != nil {
			return nil, cfg.SettingError("listen.admin_address", err)
		}
	}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Service) Addr() net.Addr { return s.ln.Addr() }

// AdminAddr is the address of the listener of listen.admin_address, nil when it is not set.
func (s *Service) AdminAddr() net.Addr {
	if s.adminLn == nil {
		return nil
	}
	return s.adminLn.Addr()
}

func (s *Service) openDLQ(cfg *config.Config) error {
	d := cfg.DLQ
	switch {
	case d == nil:
		return nil
	case d.File != nil:
		f := d.File
		opts := []filedlq.Option{filedlq.WithLogger(s.log.With("component", "dlq")), filedlq.WithMaxEntrySize(FileDLQEntrySize)}
		switch f.Fsync {
		case "always":
			opts = append(opts, filedlq.WithSync(filedlq.SyncAlways()))
		case "interval":
			opts = append(opts, filedlq.WithSync(filedlq.SyncInterval(f.FsyncInterval.D())))
		case "never":
			opts = append(opts, filedlq.WithSync(filedlq.SyncNever()))
		}
		if f.MaxSegmentSize > 0 {
			opts = append(opts, filedlq.WithMaxSegmentSize(int64(f.MaxSegmentSize)))
		}
		if f.Retention > 0 {
			opts = append(opts, filedlq.WithRetention(f.Retention))
		}
		// Open makes a missing directory itself, with mode 0700 (dead letters hold customer
		// events), and syncs each new directory's parent so that an acknowledged Put does not
		// depend on the mkdir reaching the disk: a directory made here first would defeat both.
		q, err := filedlq.Open(f.Dir, opts...)
		if err != nil {
			return cfg.SettingError("dlq.file.dir", err)
		}
		s.queue, s.closeQ = q, func(context.Context) error { return q.Close() }
		// Readiness fails once the queue refuses entries (a failed fsync, a full disk, its
		// segment removed), which lasts until a restart: a load balancer then sends elsewhere.
		s.dlqPing = func(context.Context) error { return q.Err() }
	case d.Kafka != nil:
		log := s.log.With("component", "dlq")
		q, ks, err := dialKafkaDLQ(d.Kafka, log)
		if err != nil {
			return cfg.SettingError("dlq.kafka", err)
		}
		s.queue, s.dlqPing = q, kafkaProbe(ks, []string{d.Kafka.Topic})
		s.closeQ = func(ctx context.Context) error { return closeKafkaDLQ(ctx, ks, log) }
	}
	return nil
}

func (s *Service) dispatchOptions(cfg *config.Config) []fanout.Option {
	d := cfg.Dispatch
	opts := []fanout.Option{
		fanout.WithLogger(s.log.With("component", "fanout")),
		fanout.WithMeterProvider(s.tel.meters),
		fanout.WithTracerProvider(s.tel.tracer),
	}
	if d.Mode == "async" {
		opts = append(opts, fanout.WithMode(fanout.Async))
	}
	switch d.OrderingKey {
	case "conversation":
		opts = append(opts, fanout.WithOrderingKey(kafkasink.ConversationKey))
	case "user":
		opts = append(opts, fanout.WithOrderingKey(kafkasink.UserKey))
	}
	if d.Budget > 0 {
		opts = append(opts, fanout.WithBudget(d.Budget.D()))
	}
	if d.DLQTimeout > 0 {
		opts = append(opts, fanout.WithDLQTimeout(d.DLQTimeout.D()))
	}
	if d.DLQReserve > 0 {
		opts = append(opts, fanout.WithDLQReserve(d.DLQReserve.D()))
	}
	if d.OverloadRetryAfter > 0 {
		opts = append(opts, fanout.WithOverloadRetryAfter(d.OverloadRetryAfter.D()))
	}
	if d.Dedup.Disabled {
		opts = append(opts, fanout.WithDedup(nil))
	} else {
		// Validate checked the window and size; NewMemoryDedup cannot fail on them.
		if dd, err := fanout.NewMemoryDedup(d.Dedup.Window.D(), d.Dedup.Size); err == nil {
			opts = append(opts, fanout.WithDedup(dd))
		}
	}
	return opts
}

// buildRoutes builds the routes of cfg. A CEL route's evaluation errors (a missing field, a
// limit reached) are logged to log at debug level, naming the route (see routeLog): such an
// event does not match the route.
func buildRoutes(cfg *config.Config, log *slog.Logger) ([]fanout.Route, error) {
	routes := make([]fanout.Route, 0, len(cfg.Routes))
	filterLog := log.With("component", "filter")
	for i := range cfg.Routes {
		var extra []filter.ExprOption
		if cfg.Routes[i].CEL != "" {
			extra = append(extra, filter.WithExprLogger(routeLog(filterLog, cfg.Routes[i].Name)))
		}
		r, err := cfg.Routes[i].Build(cfg.CEL, extra...)
		if err != nil {
			return nil, fmt.Errorf("config: routes[%d].%w", i, err)
		}
		routes = append(routes, r)
	}
	return routes, nil
}

func (s *Service) probes() []probe {
	var ps []probe
	for i := range s.cfg.Sinks {
		b := s.sinks[s.cfg.Sinks[i].Name]
		ps = append(ps, probe{name: b.name, check: b.probe})
	}
	if s.dlqPing != nil {
		ps = append(ps, probe{name: dlqProbe, check: s.dlqPing})
	}
	if s.ws != nil {
		ps = append(ps, probe{name: notificationsProbe, check: s.ws.probe})
	}
	return ps
}

// Run serves until ctx ends (a signal), then shuts down gracefully: readiness fails at once, the
// server stops accepting and finishes its requests, the Dispatcher drains, and sinks, the
// dead-letter queue and telemetry are closed. It returns nil after a clean shutdown.
func (s *Service) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- s.srv.Serve(s.ln) }()
	if s.admin != nil {
		go func() { errc <- s.admin.Serve(s.adminLn) }()
	}
	s.mu.Lock()
	watch, every := s.cfg.Reload.Watch && s.opts.ConfigPath != "", s.cfg.Reload.Interval.D()
	s.mu.Unlock()
	if watch {
		// The watch compares with the text read at start (or now, when none was given), so a
		// change made as soon as "listening" is logged is not missed.
		if s.fileSum.Load() == nil {
			if b, err := os.ReadFile(s.opts.ConfigPath); err == nil {
				sum := sha256.Sum256(b)
				s.fileSum.Store(&sum)
			}
		}
		t := time.NewTicker(every)
		go func() {
			defer t.Stop()
			s.watch(ctx, t.C)
		}()
	}
	if s.ws != nil {
		go s.ws.run()
	}
	if s.admin != nil {
		s.log.Info("listening", "addr", s.ln.Addr().String(), "admin_addr", s.adminLn.Addr().String())
	} else {
		s.log.Info("listening", "addr", s.ln.Addr().String())
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			serveErr = fmt.Errorf("http server: %w", err)
		}
	}
	return errors.Join(serveErr, s.shutdown())
}

func (s *Service) shutdown() error {
	var err error
	s.stopOnce.Do(func() {
		defer close(s.stopped)
		// Under mu, which a reload holds from its check of unready to its end: a reload under
		// way finishes first (and starts its wait for what it retired, if any), and later ones
		// see unready and do nothing.
		s.mu.Lock()
		s.unready.Store(true)
		cfg := s.cfg
		s.mu.Unlock()
		// The wait for retired configurations ends at once, before Close, which reports what is
		// left: each close failure goes to the one or the other.
		s.settleCancel()
		s.settleWG.Wait()
		// New requests are refused from the moment the log says so: at once without a ready
		// delay, after it with one.
		delay := cfg.Shutdown.ReadyDelay.D()
		if delay <= 0 {
			s.shutting.Store(true)
		}
		s.log.Info("shutting down", "ready_delay", delay.String(),
			"http_timeout", cfg.Shutdown.HTTPTimeout.D().String(), "drain_timeout", cfg.Shutdown.DrainTimeout.D().String())
		start := time.Now()
		if delay > 0 {
			// Readiness fails from now on, while requests are still taken as usual, so that a
			// load balancer has time to stop sending new ones before the listener closes.
			time.Sleep(delay)
			s.shutting.Store(true)
			s.log.Info("ready delay over; closing the listener")
		}

		hctx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown.HTTPTimeout.D())
		var admin, ws sync.WaitGroup
		if s.ws != nil {
			// The WebSocket source stops reading with the listener, and dispatches what it has
			// read (within http_timeout, as requests in flight) while the Dispatcher still takes
			// events: Genesys does not send an event again, so one dropped here would be lost.
			ws.Go(s.ws.close)
		}
		if s.admin != nil {
			// The admin listener closes with the intake's, under the same deadline, as /healthz,
			// /readyz and /metrics on the intake's listener do when there is no admin listener:
			// not once the intake's requests are done, which can take the whole http_timeout.
			admin.Go(func() {
				if herr := s.admin.Shutdown(hctx); herr != nil {
					_ = s.admin.Close()
				}
			})
		}
		if herr := s.srv.Shutdown(hctx); herr != nil {
			s.log.Warn("http requests still running at the shutdown deadline; closing their connections", "err", herr)
			_ = s.srv.Close()
		}
		admin.Wait()
		ws.Wait()
		cancel()

		dctx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown.DrainTimeout.D())
		derr := s.disp.Close(dctx)
		cancel()
		if derr != nil {
			err = fmt.Errorf("dispatcher: %w", derr)
		}
		s.mu.Lock()
		for _, b := range s.sinks {
			b.release()
		}
		s.mu.Unlock()
		if s.closeQ != nil {
			// The queue closes within what is left of ready_delay + http_timeout +
			// drain_timeout + dlq_timeout (nothing, when writing the backlog took the drain past
			// it), rather than after it: a Kafka queue whose broker is gone would otherwise wait
			// out its client's flush on top of the drain. What its client still holds then is of
			// writes that already failed.
			qctx, cancel := context.WithDeadline(context.Background(), start.Add(shutdownBound(cfg)))
			if qerr := s.closeQ(qctx); qerr != nil {
				err = errors.Join(err, fmt.Errorf("dlq: %w", qerr))
			}
			cancel()
		}
		tctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.tel.shutdown(tctx)
		cancel()
		if err != nil {
			s.log.Error("shutdown finished with errors", "err", err, "took", time.Since(start).String())
		} else {
			s.log.Info("shutdown complete", "took", time.Since(start).String())
		}
	})
	<-s.stopped
	return err
}

// shutdownBound is ready_delay + http_timeout + drain_timeout + dlq_timeout: how long a shutdown
// takes at most by the manual, less the time the dead-letter queue takes to write the backlog
// left at the drain's deadline, for which the Dispatcher's Close waits as long as the queue keeps
// taking entries (dlq_timeout being how long it waits for one).
func shutdownBound(cfg *config.Config) time.Duration {
	dlqTimeout := cfg.Dispatch.DLQTimeout.D()
	if dlqTimeout <= 0 {
		dlqTimeout = fanout.DefaultDLQTimeout
	}
	sh := cfg.Shutdown
	return sh.ReadyDelay.D() + sh.HTTPTimeout.D() + sh.DrainTimeout.D() + dlqTimeout
}

// ReloadFile reads the configuration file again and applies it (see Reload). A file that does
// not load or validate is rejected and the running configuration stays.
//
// As the watch does, it applies the text only once two reads settleDelay apart agree on it, and
// checks that the read it applies agrees too: a file written in place can be read half written,
// and half a file may still be valid (fewer routes, sinks or keys), which would answer events
// for what it lost 200 "ignored" or 404. A file that is still changing after settleMax is
// rejected, as is one that cannot be read. A writer that pauses for settleDelay or more in the
// middle of the file can still have its first part applied: write elsewhere and rename.
func (s *Service) ReloadFile() error {
	if s.opts.ConfigPath == "" {
		return s.reloadFile(nil, false)
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	var last *[sha256.Size]byte
	for start := time.Now(); ; {
		if s.unready.Load() {
			return s.skipReload()
		}
		b, err := os.ReadFile(s.opts.ConfigPath)
		if err != nil {
			// Rejected as it is, not read again: a file being replaced may be back, half
			// written, by then.
			return s.rejectReload(fmt.Errorf("config: %w", err))
		}
		if settleRead != nil {
			settleRead()
		}
		sum := sha256.Sum256(b)
		if last != nil && *last == sum {
			if err := s.reloadFile(&sum, false); !errors.Is(err, errChangedAgain) {
				return err
			}
		}
		if time.Since(start) >= settleMax {
			return s.rejectReload(fmt.Errorf("config: %s was still changing after %v; write it elsewhere and rename it into place",
				s.opts.ConfigPath, settleMax))
		}
		last = &sum
		timer.Reset(settleDelay)
		select {
		case <-timer.C:
		case <-s.stopped:
			return s.skipReload()
		}
	}
}

// rejectReload reports a reload of the file rejected before it was parsed, and returns err.
func (s *Service) rejectReload(err error) error {
	s.tel.reloads.Add(context.Background(), 1, metric.WithAttributes(resultAttr("rejected")))
	s.log.Error("configuration reload rejected; the running configuration stays", "path", s.opts.ConfigPath, "err", err)
	return err
}

// settleDelay is how far apart ReloadFile's reads are; settleMax how long it waits for two to
// agree. Variables, so that tests can shorten them.
var (
	settleDelay = 100 * time.Millisecond
	settleMax   = 3 * time.Second
)

// errChangedAgain says that the file the watch saw settle changed again before it was read for
// the reload: the watch waits for it to settle anew.
var errChangedAgain = errors.New("the configuration file changed again")

// reloadFile reads the file and applies it. With want, it applies the file only if its text still
// hashes to want, and otherwise returns errChangedAgain and changes nothing, not even the
// remembered hash. watched says the file watch asks, which the log tells.
func (s *Service) reloadFile(want *[sha256.Size]byte, watched bool) error {
	if s.opts.ConfigPath == "" {
		return errors.New("no configuration file to reload")
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.unready.Load() {
		return s.skipReload()
	}
	b, err := os.ReadFile(s.opts.ConfigPath)
	if want != nil {
		if err != nil || sha256.Sum256(b) != *want {
			return errChangedAgain
		}
	}
	if watched {
		s.log.Info("configuration file changed; reloading", "path", s.opts.ConfigPath)
	}
	if afterRead != nil {
		afterRead()
	}
	var cfg *config.Config
	if err != nil {
		err = fmt.Errorf("config: %w", err)
	} else {
		// Remembered even when rejected: the watch waits for the next change rather than
		// reporting the same mistake at every tick.
		sum := sha256.Sum256(b)
		s.fileSum.Store(&sum)
		cfg, err = config.Parse(b, nil)
	}
	if err != nil {
		s.tel.reloads.Add(context.Background(), 1, metric.WithAttributes(resultAttr("rejected")))
		s.log.Error("configuration reload rejected; the running configuration stays", "path", s.opts.ConfigPath, "err", err)
		return err
	}
	return s.reload(cfg)
}

// settleRead, when set by a test, runs in ReloadFile after each read that waits for the file to
// settle.
var settleRead func()

// afterRead, when set by a test, runs in ReloadFile between reading the file and applying it.
var afterRead func()

// beforeSwap, when set by a test, runs in a reload once the new sinks are built, before the
// Dispatcher takes them.
var beforeSwap func()

// Reload applies a new, validated configuration without dropping traffic: sinks whose settings
// changed (or are new) are built first, then routes and sinks are swapped into the Dispatcher
// atomically, then the intake paths and verifiers. Settings that cannot change in a running
// process are reported and keep their old values until a restart. On any error nothing changes.
func (s *Service) Reload(cfg *config.Config) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	return s.reload(cfg)
}

// reload is Reload; the caller holds reloadMu.
func (s *Service) reload(cfg *config.Config) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unready.Load() {
		return s.skipReload()
	}
	fail := func(err error) error {
		s.tel.reloads.Add(context.Background(), 1, metric.WithAttributes(resultAttr("rejected")))
		s.log.Error("configuration reload rejected; the running configuration stays", "err", err)
		return err
	}
	var fresh []*builtSink
	discard := func() {
		for _, b := range fresh {
			b.release()
			_ = sink.Close(b.sink)
		}
	}
	// A panic while building or swapping in the new configuration (a value the checks let
	// through and a library cannot take) rejects it like any other error: a reload runs on
	// the SIGHUP or watch goroutine, where a panic would end the process and lose what the
	// async queues hold. Until the Dispatcher took the new sinks and routes, nothing changed;
	// after that the new configuration partly runs, so a panic there is no rejection and goes on.
	swapped := false
	defer func() {
		if p := recover(); p != nil {
			if swapped {
				panic(p)
			}
			discard()
			err = fail(fmt.Errorf("config: the configuration could not be applied: %v", p))
		}
	}()
	if s.opts.ListenAddress != "" {
		cfg.Listen.Address = s.opts.ListenAddress
	}
	// Settings that belong to the process keep their running values. That is said once the new
	// configuration runs: of a rejected one, no setting takes effect, after a restart or not.
	restart := restartOnly(s.cfg, cfg)
	// Validate compared each dispatch_timeout with the file's listen timeouts, but the server
	// keeps the running ones: a deadline past them would cut answers off.
	for i := range cfg.Intake {
		rt, wt, dt := s.cfg.Listen.ReadTimeout.D(), s.cfg.Listen.WriteTimeout.D(), cfg.Intake[i].DispatchTimeout.D()
		late := s.cfg.Dispatch.DeadLetterOverrun(dt)
		if config.DispatchTimeoutProblem(dt, late, rt, wt, false) != "" {
			return fail(fmt.Errorf("config: intake[%d].dispatch_timeout: plus the running listen.read_timeout (%s) and %s of dead-letter writes that may end after it must be shorter than the running listen.write_timeout (%s), which change only with a restart", i, rt, late, wt))
		}
	}
	// So was a cel.time_limit the file sets, which a reload applies, with the file's
	// dispatch.dlq_timeout: the running one, which changes only with a restart too, bounds the
	// dead-letter writes.
	rt, wt, dt := s.cfg.Listen.ReadTimeout.D(), s.cfg.Listen.WriteTimeout.D(), s.cfg.Dispatch.DeadLetterTimeout()
	if tl := cfg.CEL.TimeLimit.D(); tl != 0 && config.CELTimeLimitProblem(tl, dt, rt, wt, false) != "" {
		return fail(fmt.Errorf("config: cel.time_limit: plus the running listen.read_timeout (%s) and dispatch.dlq_timeout (%s) must be shorter than the running listen.write_timeout (%s), which change only with a restart", rt, dt, wt))
	}
	// Validate let a file with a notifications section leave out the intake paths, but the
	// section is a restart's: applied to a service without a source, it would take nothing.
	if len(cfg.Intake) == 0 && s.ws == nil {
		return fail(errors.New("config: intake: at least one intake path is required: the running service has no notifications source, and the section takes effect only after a restart"))
	}
	cfg.Listen, cfg.DLQ, cfg.Dispatch, cfg.Tracing, cfg.Health = s.cfg.Listen, s.cfg.DLQ, s.cfg.Dispatch, s.cfg.Tracing, s.cfg.Health
	cfg.Notifications = s.cfg.Notifications
	cfg.Logging.Format, cfg.Reload = s.cfg.Logging.Format, s.cfg.Reload

	next := map[string]*builtSink{}
	for i := range cfg.Sinks {
		sc := &cfg.Sinks[i]
		if old, ok := s.sinks[sc.Name]; ok && old.key == sinkKey(sc) {
			next[sc.Name] = old
			continue
		}
		b, err := buildSink(sc, s.log)
		if err != nil {
			discard()
			return fail(cfg.SinkError(i, err))
		}
		next[sc.Name] = b
		fresh = append(fresh, b)
	}
	routes, err := buildRoutes(cfg, s.log)
	if err != nil {
		discard()
		return fail(err)
	}
	h, replay, err := s.buildIntake(cfg)
	if err != nil {
		discard()
		return fail(err)
	}
	if beforeSwap != nil {
		beforeSwap()
	}
	if err := s.disp.Update(fanout.Config{Sinks: sinkConfigs(cfg, next), Routes: routes, DLQ: s.queue}); err != nil {
		discard()
		return fail(fmt.Errorf("config: %w", err))
	}
	swapped = true
	s.intake.Store(&h)
	s.notify.Store(s.eventLogger(cfg, notificationsScope))
	var released []string
	var gone []*builtSink
	for name, old := range s.sinks {
		if next[name] != old {
			gone = append(gone, old)
			released = append(released, name)
		}
	}
	s.sinks, s.cfg, s.replay = next, cfg, replay
	// The new probes first; the replaced sinks' probes close once no readiness check is still
	// probing through them, so a /readyz answered during the reload is not failed by it. That
	// holds because each probe has connections (gRPC) or a client (Kafka) of its own: the sinks
	// themselves the Dispatcher closes once drained, whether a check is running or not.
	s.ready.swapProbes(s.probes(), func() {
		for _, old := range gone {
			old.release() // the Dispatcher closes the sink itself once drained
		}
	})
	if s.opts.Level != nil {
		s.opts.Level.Set(parseLevel(cfg.Logging.Level))
	}
	slices.Sort(released)
	names := make([]string, 0, len(fresh))
	for _, b := range fresh {
		names = append(names, b.name)
	}
	s.tel.reloads.Add(context.Background(), 1, metric.WithAttributes(resultAttr("applied")))
	s.log.Info("configuration reloaded", "routes", len(routes), "sinks", len(cfg.Sinks), "rebuilt_sinks", names, "retired_sinks", released)
	if len(released) > 0 {
		s.settleRetired()
	}
	for _, k := range restart {
		s.log.Warn("setting changed in the file takes effect after a restart", "key", k)
	}
	return nil
}

// settleRetired waits in the background until the configurations reloads replaced are done with
// (fanout.Dispatcher.Settle), and logs at error each sink they alone had that failed to close (a
// Kafka sink whose broker was away longer than its close bound), naming the sink. Close would
// otherwise report those failures at the shutdown, days later, as if that shutdown had lost
// something, and exit 1. A configuration is done with once its own deliveries ended, and those of
// the configurations before it (in async mode, a slow sink's queue holds that back), so a
// failure is logged then, not always at the instant of the close. One goroutine waits at a time:
// a reload while it waits makes it wait once more, for the newer replacements too. The wait ends
// when the shutdown begins; Close reports what is left.
func (s *Service) settleRetired() {
	s.settleMu.Lock()
	defer s.settleMu.Unlock()
	if s.settling {
		s.settleAgain = true
		return
	}
	s.settling = true
	s.settleWG.Add(1)
	go func() {
		defer s.settleWG.Done()
		for {
			// Close failures Settle returns are taken off the Dispatcher's list: they are logged
			// whatever happened since, or nobody would report them.
			if err := s.disp.Settle(s.settleCtx); errors.Is(err, fanout.ErrSinkClose) {
				s.log.Error("sinks retired by a reload failed to close", "err", err)
			}
			s.settleMu.Lock()
			if !s.settleAgain || s.settleCtx.Err() != nil {
				s.settling = false
				s.settleMu.Unlock()
				return
			}
			s.settleAgain = false
			s.settleMu.Unlock()
		}
	}()
}

// errShuttingDown is what a reload asked for once the shutdown began returns.
var errShuttingDown = errors.New("shutting down")

// skipReload says that a reload asked for during the shutdown (a SIGHUP, the file watch) is not
// done, rather than dropping it without a word: the running configuration serves to the end.
func (s *Service) skipReload() error {
	s.log.Info("configuration reload skipped: shutting down; the running configuration stays to the end")
	return errShuttingDown
}

// restartOnly lists the keys whose change needs a restart.
func restartOnly(old, cur *config.Config) []string {
	var keys []string
	if old.Listen != cur.Listen {
		keys = append(keys, "listen")
	}
	if !equalJSON(old.DLQ, cur.DLQ) {
		keys = append(keys, "dlq")
	}
	if !equalJSON(old.Dispatch, cur.Dispatch) {
		keys = append(keys, "dispatch")
	}
	if !equalJSON(old.Tracing, cur.Tracing) {
		keys = append(keys, "tracing")
	}
	if old.Health != cur.Health {
		keys = append(keys, "health")
	}
	if old.Logging.Format != cur.Logging.Format {
		keys = append(keys, "logging.format")
	}
	if old.Reload != cur.Reload {
		keys = append(keys, "reload")
	}
	if !equalJSON(old.Notifications, cur.Notifications) {
		keys = append(keys, "notifications")
	}
	return keys
}

// watch reloads the file when its content changes, reading it at every tick. It hashes the
// text rather than trusting the modification time, which can be too coarse to see two quick
// writes. A change is applied once two reads a tick apart agree on it, and the reload checks
// that its own read agrees too: a file written in place, by an editor or a copy in progress,
// can be read half written, and half a file may still be valid (fewer routes, fewer sinks).
func (s *Service) watch(ctx context.Context, ticks <-chan time.Time) {
	var seen *[sha256.Size]byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stopped:
			return
		case <-ticks:
			seen = s.watched(seen)
		}
		if watchTicked != nil {
			watchTicked()
		}
	}
}

// watched reads the file at a tick of the watch. seen is the hash of a change read at the last
// tick and not applied; it returns the one to remember for the next tick.
func (s *Service) watched(seen *[sha256.Size]byte) *[sha256.Size]byte {
	b, err := os.ReadFile(s.opts.ConfigPath)
	if err != nil {
		return nil // being replaced, or gone: keep the running configuration
	}
	sum := sha256.Sum256(b)
	switch last := s.fileSum.Load(); {
	case last != nil && *last == sum:
		return nil
	case seen == nil || *seen != sum:
		return &sum
	}
	_ = s.reloadFile(&sum, true)
	return nil
}

// watchTicked, when set by a test, runs in the file watch once it has handled a tick.
var watchTicked func()
