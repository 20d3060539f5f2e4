package notifications

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/retry"
)

var (
	// ErrInvalidConfig is wrapped by the errors New returns for arguments or options it cannot use.
	ErrInvalidConfig = errors.New("notifications: invalid configuration")
	// ErrAlreadyRunning is returned by a second call of Run.
	ErrAlreadyRunning = errors.New("notifications: source is already running")
	// ErrClosed is returned by Run after Close.
	ErrClosed = errors.New("notifications: source is closed")
)

// Source reads Genesys Cloud events from the WebSocket Notification API and hands each one to a
// Dispatcher. It holds one channel per 1,000 topics, replaces a channel that fails, goes quiet,
// announces maintenance or nears its 24-hour expiry, and dispatches each event once.
type Source struct {
	client *genesys.Client
	d      eventbridge.Dispatcher
	lanes  [][]string
	cfg    config
	log    *slog.Logger
	m      *metrics

	reconnect *retry.Retrier
	dispatch  *retry.Retrier
	account   *account // the channels Genesys holds for the source, against its limit of 20

	mu      sync.Mutex
	started bool
	closed  bool
	stop    context.CancelFunc
	done    chan struct{}
	// dispatching is the id of the goroutine that calls Dispatch, zero until it starts; see Close.
	dispatching atomic.Uint64
}

// New returns a source that subscribes the concrete topics (such as
// "v2.users.<uuid>.presence"; "{id}" templates are refused with genesys.ErrTemplateTopic) over as
// many channels as 1,000 topics each need, and dispatches their events to d. Duplicate topics
// are subscribed once. New makes no request; Run does the work.
func New(client *genesys.Client, topics []string, d eventbridge.Dispatcher, opts ...Option) (*Source, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	switch {
	case client == nil:
		return nil, fmt.Errorf("%w: nil client", ErrInvalidConfig)
	case d == nil:
		return nil, fmt.Errorf("%w: nil dispatcher", ErrInvalidConfig)
	case cfg.logger == nil:
		return nil, fmt.Errorf("%w: nil logger", ErrInvalidConfig)
	case cfg.clock == nil:
		return nil, fmt.Errorf("%w: nil clock", ErrInvalidConfig)
	case cfg.heartbeatTimeout <= 0:
		return nil, fmt.Errorf("%w: heartbeat timeout must be positive", ErrInvalidConfig)
	case cfg.pingInterval < 0 || cfg.expiryMargin < 0 || cfg.overlap < 0 || cfg.drainTimeout < 0:
		return nil, fmt.Errorf("%w: negative duration", ErrInvalidConfig)
	case cfg.bufferSize < 1 || cfg.bufferSize > MaxBufferSize:
		return nil, fmt.Errorf("%w: buffer size must be between 1 and %d", ErrInvalidConfig, MaxBufferSize)
	case cfg.dedupWindow < 1 || cfg.dedupWindow > MaxDedupWindow:
		return nil, fmt.Errorf("%w: dedup window must be between 1 and %d", ErrInvalidConfig, MaxDedupWindow)
	case cfg.maxChannels < 1 || cfg.maxChannels > MaxChannels:
		return nil, fmt.Errorf("%w: max channels must be between 1 and %d", ErrInvalidConfig, MaxChannels)
	case cfg.readLimit < 1024:
		return nil, fmt.Errorf("%w: read limit must be at least 1 KiB", ErrInvalidConfig)
	}
	if len(topics) == 0 {
		return nil, fmt.Errorf("%w: no topics", ErrInvalidConfig)
	}
	if err := genesys.CheckSubscriptionTopics(topics); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	unique := make([]string, 0, len(topics))
	seen := make(map[string]bool, len(topics))
	for _, t := range topics {
		if !seen[t] {
			seen[t] = true
			unique = append(unique, t)
		}
	}
	var lanes [][]string
	for len(unique) > 0 {
		n := min(len(unique), genesys.MaxTopicsPerChannel)
		lanes = append(lanes, unique[:n:n])
		unique = unique[n:]
	}
	if len(lanes) > cfg.maxChannels {
		return nil, fmt.Errorf("%w: %w: %d topics need %d channels, more than the %d allowed (WithMaxChannels)",
			ErrInvalidConfig, genesys.ErrTooManyTopics, len(seen), len(lanes), cfg.maxChannels)
	}
	reconnect, err := retry.New(cfg.reconnect, retry.WithClock(cfg.clock))
	if err != nil {
		return nil, fmt.Errorf("%w: reconnect policy: %w", ErrInvalidConfig, err)
	}
	dispatch, err := retry.New(cfg.dispatch, retry.WithClock(cfg.clock))
	if err != nil {
		return nil, fmt.Errorf("%w: dispatch policy: %w", ErrInvalidConfig, err)
	}
	m, err := newMetrics(cfg.meterProvider)
	if err != nil {
		return nil, fmt.Errorf("%w: metrics: %w", ErrInvalidConfig, err)
	}
	return &Source{
		client: client, d: d, lanes: lanes, cfg: cfg, log: cfg.logger, m: m,
		reconnect: reconnect, dispatch: dispatch, account: newAccount(client, m, cfg.logger, cfg.lateGrace), done: make(chan struct{}),
	}, nil
}

// Channels returns how many channels the source holds while it runs (one per 1,000 topics).
func (s *Source) Channels() int { return len(s.lanes) }

// Run opens the channels, subscribes the topics and dispatches events until ctx ends or Close is
// called; then it stops reading, dispatches what it has already read (for at most the drain
// timeout) and returns: nil after Close, ctx's error when ctx ended. It returns earlier with an
// error when a channel cannot be opened for a reason no retry cures (refused credentials, a
// missing permission, a topic Genesys refuses). Run may be called once.
func (s *Source) Run(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return ErrClosed
	case s.started:
		s.mu.Unlock()
		return ErrAlreadyRunning
	}
	s.started = true
	runCtx, stop := context.WithCancelCause(ctx)
	s.stop = func() { stop(ErrClosed) }
	s.mu.Unlock()
	defer close(s.done)
	defer stop(nil)

	// The dispatch loop outlives runCtx by the drain timeout, so that events already read are not
	// dropped because of the shutdown.
	dispatchCtx, stopDispatch := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDispatch()
	stopDrain := context.AfterFunc(runCtx, func() {
		time.AfterFunc(s.cfg.drainTimeout, stopDispatch)
	})
	defer stopDrain()

	events := make(chan *fanbridge.Event, s.cfg.bufferSize)
	dispatched := make(chan struct{})
	go func() {
		defer close(dispatched)
		s.dispatching.Store(goroutineID())
		s.dispatchLoop(dispatchCtx, events)
	}()

	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	// fail records the first error and stops every lane; a lane calls it before it closes its
	// channels, so that the shutdown does not wait for them.
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		stop(err)
	}
	for i, topics := range s.lanes {
		l := &lane{s: s, idx: i, topics: topics, events: events, pushCtx: dispatchCtx, fail: fail}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.run(runCtx); err != nil {
				fail(err)
			}
		}()
	}
	wg.Wait()
	close(events)
	<-dispatched

	switch {
	case firstErr != nil:
		return firstErr
	case errors.Is(context.Cause(runCtx), ErrClosed):
		return nil
	default:
		return ctx.Err()
	}
}

// Close stops a running source and waits until Run has returned (after draining, see
// WithDrainTimeout). Called from the Dispatcher's Dispatch, it starts the shutdown and returns at
// once: Run waits for Dispatch to return, so waiting for Run there would never end. Calling it on a
// source that never ran makes a later Run return ErrClosed. It always returns nil. It leaves the
// genesys.Client the source was given open, with its connections: close that with its Close once
// Close has returned.
func (s *Source) Close() error {
	s.mu.Lock()
	s.closed = true
	started, stop := s.started, s.stop
	s.mu.Unlock()
	if started {
		stop()
		if g := s.dispatching.Load(); g == 0 || g != goroutineID() {
			<-s.done
		}
	}
	return nil
}

// goroutineID returns the id of the calling goroutine, read from the first line of its stack
// ("goroutine 42 [running]:"); ids are never zero and never reused. Go offers no other way to
// tell whether Close is called from Dispatch, and Close alone asks, so its cost does not matter.
func goroutineID() uint64 {
	var buf [64]byte
	line := buf[:runtime.Stack(buf[:], false)]
	line, _ = bytes.CutPrefix(line, []byte("goroutine "))
	id, _, _ := bytes.Cut(line, []byte(" "))
	n, err := strconv.ParseUint(string(id), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// dispatchLoop hands events to the dispatcher one at a time, in the order they were read, and
// retries each until it is handled. After ctx ends it counts what is left as lost.
func (s *Source) dispatchLoop(ctx context.Context, events <-chan *fanbridge.Event) {
	seen := newDedup(s.cfg.dedupWindow)
	var lost int64
	for ev := range events {
		if ctx.Err() != nil {
			lost++
			continue
		}
		if ev.ID != "" && !seen.add(ev.ID) {
			s.m.event(outcomeDuplicate, 1)
			continue
		}
		s.deliver(ctx, ev, &lost)
	}
	if lost > 0 {
		s.m.event(outcomeLost, lost)
		s.log.LogAttrs(context.Background(), slog.LevelError, "notifications: events read but not delivered before the drain timeout",
			slog.Int64("count", lost), slog.Duration("drain_timeout", s.cfg.drainTimeout))
	}
}

func (s *Source) deliver(ctx context.Context, ev *fanbridge.Event, lost *int64) {
	outcome := outcomeDelivered
	attempts := 0
	err := s.dispatch.Do(ctx, func(ctx context.Context) error {
		// A retry is counted as it reaches the dispatcher: one the drain cut off during its wait
		// never happened.
		if attempts++; attempts > 1 {
			s.m.retries.Add(ctx, 1)
		}
		err := s.d.Dispatch(ctx, ev)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, fanbridge.ErrNoMatch) || errors.Is(err, fanbridge.ErrDuplicate):
			outcome = outcomeIgnored
			return nil
		}
		return err
	}, retry.OnRetry(func(a retry.Attempt) {
		s.log.LogAttrs(ctx, slog.LevelWarn, "notifications: dispatch failed, retrying",
			slog.String("id", ev.ID), slog.String("type", ev.Type), slog.Int("attempt", a.Number),
			slog.Duration("wait", a.Wait), slog.String("error", a.Err.Error()))
	}))
	switch {
	case err == nil:
		s.m.event(outcome, 1)
	case ctx.Err() != nil:
		*lost++
	default:
		s.m.event(outcomeFailed, 1)
		msg := "notifications: event not delivered: the dispatcher failed permanently"
		if re := (*retry.Error)(nil); errors.As(err, &re) && re.Reason != retry.ReasonPermanent {
			msg = "notifications: event not delivered: the dispatch policy's retries ran out"
		}
		s.log.LogAttrs(ctx, slog.LevelError, msg,
			slog.String("id", ev.ID), slog.String("type", ev.Type), slog.String("topic", ev.Topic), slog.String("error", err.Error()))
	}
}
