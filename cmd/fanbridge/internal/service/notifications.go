package service

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/notifications"
)

// notificationsProbe names the WebSocket source in /readyz and in the readiness logs. Like
// dlqProbe it holds a space, which no sink's name can.
const notificationsProbe = "genesys notifications"

// notificationsScope is the deduplication scope of the WebSocket source's events: an intake
// path starts with "/", so no path shares it.
const notificationsScope = "notifications"

// wsSource is the source of the notifications section: events read from Genesys Cloud's
// WebSocket Notification API, dispatched to the same Dispatcher as the intake paths'.
type wsSource struct {
	src    *notifications.Source
	client *genesys.Client
	log    *slog.Logger
	// redact cuts the values the environment put in the section out of a text about it.
	redact func(string) string
	// failed holds why Run ended before the shutdown, for readiness; nil while it runs.
	failed atomic.Pointer[sourceStopped]
}

// openNotifications builds the client and source of cfg's notifications section, if any. The
// source dispatches through s.notify, which a reload points at its logging settings; it drains
// what it has read within shutdown.http_timeout, as requests in flight finish within it, so that
// the shutdown keeps the bound the manual gives it.
func (s *Service) openNotifications(cfg *config.Config) error {
	n := cfg.Notifications
	if n == nil {
		return nil
	}
	log := s.log.With("component", "notifications")
	client, err := n.Client(genesys.WithLogger(s.log.With("component", "genesys")))
	if err != nil {
		return cfg.SettingError("notifications", err)
	}
	d := eventbridge.DispatcherFunc(func(ctx context.Context, e *fanbridge.Event) error {
		return s.notify.Load().Dispatch(ctx, e)
	})
	opts := append(n.SourceOptions(),
		notifications.WithLogger(log),
		notifications.WithMeterProvider(s.tel.meters),
		notifications.WithDrainTimeout(cfg.Shutdown.HTTPTimeout.D()),
	)
	src, err := notifications.New(client, n.Topics, d, opts...)
	if err != nil {
		_ = client.Close()
		return cfg.SettingError("notifications", err)
	}
	s.ws = &wsSource{src: src, client: client, log: log,
		redact: func(text string) string { return cfg.Redact("notifications", text) }}
	return nil
}

// run runs the source until close stops it. Should it end before that, with an error no retry
// cures (refused credentials, a missing permission, a topic Genesys refuses), the intake paths
// keep serving, and readiness fails from then on: no event is read over the WebSocket until a
// restart.
func (w *wsSource) run() {
	err := w.src.Run(context.Background())
	if err == nil || errors.Is(err, notifications.ErrClosed) {
		return
	}
	stopped := &sourceStopped{reason: stopReason(err), detail: w.redact(err.Error())}
	w.failed.Store(stopped)
	w.log.Error("notifications source stopped; no event is read from Genesys Cloud until a restart",
		"reason", stopped.reason, "err", stopped.detail)
}

// close stops the source, which first dispatches the events it has read (see openNotifications),
// then closes the client: the source leaves it open.
func (w *wsSource) close() {
	_ = w.src.Close()
	_ = w.client.Close()
}

// probe is the source's readiness probe: it fails once Run has ended with an error.
func (w *wsSource) probe(context.Context) error {
	if f := w.failed.Load(); f != nil {
		return f
	}
	return nil
}

// sourceStopped is the probe's error once the source stopped: its text (the source's error, the
// environment's values cut out) goes to the log, its reason to /readyz.
type sourceStopped struct {
	reason string
	detail string
}

func (e *sourceStopped) Error() string { return "stopped: " + e.detail }

// readyzReason is what /readyz says of the source: why it stopped, in words of fanbridge's own,
// never the error's text, which may name hosts.
func (e *sourceStopped) readyzReason() string { return "stopped: " + e.reason }

// stopReason classifies the error that ended the source's Run.
func stopReason(err error) string {
	switch {
	case genesys.IsUnauthorized(err):
		return "Genesys Cloud refused the OAuth client's credentials"
	case genesys.IsForbidden(err):
		return "the OAuth client lacks a permission"
	case errors.Is(err, genesys.ErrBadRequest) || genesys.IsNotFound(err):
		return "Genesys Cloud refused a request (a topic?)"
	}
	return "it could not open a channel"
}
