package signature

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/fanbridge/fanbridge/internal/chunkbuf"
)

// DefaultMaxBodyBytes is the default body limit: 260 KiB. Amazon EventBridge accepts events of up
// to 256 KiB, and an API destination posts them inside an envelope (id, account, time, region)
// that adds a few hundred bytes; the 4 KiB above covers it.
const DefaultMaxBodyBytes = 260 << 10

// Option configures Verify.
type Option interface{ apply(*config) }

type config struct {
	maxBody  int64
	logger   *slog.Logger
	meter    metric.MeterProvider
	attrs    []attribute.KeyValue
	onReject func(r *http.Request, err error)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithMaxBodyBytes sets the largest body accepted; a larger one is answered 413 before it is read
// further. It must be positive. The limit holds whatever the Verifier, header-only ones (APIKey,
// Basic, Bearer) too, since Verify reads the body for the next handler: the limit of the handler
// behind Verify takes effect only up to this one. In front of an eventbridge.Handler built with
// eventbridge.WithMaxBodySize(n), give WithMaxBodyBytes(n) too; a body between the two limits
// would otherwise be answered 413 here, which EventBridge does not retry. The default is
// DefaultMaxBodyBytes (260 KiB), the Handler's default too.
func WithMaxBodyBytes(n int64) Option {
	return optionFunc(func(c *config) { c.maxBody = n })
}

// WithLogger logs rejections at Warn, with their reason, method, path and remote address, and
// every verified request at Debug, with the scheme and the non-secret identity (key index, user,
// message id). Header values, secrets and bodies are never logged. The default is no logging.
//
// Anyone who can reach the server can be rejected, as often as they like, so at most
// RejectLogBurst rejections a second are logged at Warn; the others are logged at Debug, and the
// next Warn line says in "suppressed" how many were left out of Warn since the last one. The
// rejected counter of WithMeterProvider counts them all.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger = l })
}

// WithMeterProvider counts requests with OpenTelemetry: fanbridge.signature.verified (attribute
// "scheme") and fanbridge.signature.rejected (attribute "reason", see Reason). The default is no
// metrics.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.meter = mp })
}

// WithMetricAttributes adds attrs to every count WithMeterProvider records, so that several
// Verify middlewares on one MeterProvider, say one per intake path, have series of their own:
// WithMetricAttributes(attribute.String("intake", "/events")). The keys the middleware sets
// itself (scheme, reason) cannot be given, nor can an empty key or one key twice. Several calls
// add up.
func WithMetricAttributes(attrs ...attribute.KeyValue) Option {
	return optionFunc(func(c *config) { c.attrs = append(c.attrs, attrs...) })
}

// WithOnReject calls f for every request that is not passed on, with the error (classify it with
// errors.Is or Reason), before the answer is written. f must not write the response. The default
// is none.
func WithOnReject(f func(r *http.Request, err error)) Option {
	return optionFunc(func(c *config) { c.onReject = f })
}

// Verify returns HTTP middleware that reads the body (up to the limit), verifies the request with
// v, and passes it on to the next handler with the body intact: r.Body is a *Body over the verified
// bytes (its Bytes method hands them over without copying), r.ContentLength is their length, and
// the context carries the Identity (IdentityFrom).
//
// A HeaderVerifier (APIKey, Basic, Bearer, BearerFunc) is asked before the body is read, so a
// request with wrong credentials costs no body buffer. It answers itself, and never calls the next
// handler, when:
//   - the body is over the limit: 413 {"error":"request body too large"};
//   - the body cannot be read: 400 {"error":"cannot read request body"}, or, when it came too
//     slowly for the server's ReadTimeout, 503 with Retry-After and Connection: close, so that
//     the sender retries;
//   - verification fails for any reason: 401 {"error":"unauthorized"}, the same body and headers
//     whatever the reason, plus WWW-Authenticate when v is a Challenger (Basic, Bearer);
//   - verification could not complete (ErrUnavailable): 503 with Retry-After, so the sender retries.
//
// When v claimed the message id in a replay cache and the next handler answers outside 2xx (or
// panics), the claim is released so that the sender's retry is accepted. A copy of the request
// that comes while the first is still being handled (a sender's client that timed out, a proxy
// that resent it) is answered 503 with Retry-After rather than refused as a replay: the first may
// yet fail, and the copy's retry then verifies.
//
// Verify panics when v is nil or an option is invalid: configuration errors surface when the
// server is built, never per request.
func Verify(v Verifier, opts ...Option) func(http.Handler) http.Handler {
	m, err := newMiddleware(v, opts)
	if err != nil {
		panic(err)
	}
	return func(next http.Handler) http.Handler {
		if next == nil {
			panic("signature: Verify: next handler is nil")
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { m.serve(w, r, next) })
	}
}

// VerifyRequest verifies r with v outside any middleware, for frameworks that want the decision
// but not the HTTP answers. It reads the body (at most maxBody bytes; 0 means
// DefaultMaxBodyBytes), verifies it, and replaces r.Body with a *Body over the bytes and sets
// r.ContentLength, so the body can be read again. When v is a HeaderVerifier the credentials are
// checked first, and a request that fails them is returned with its body unread; so is one whose
// headers alone an HMAC or Standard Webhooks verifier refuses (see the order of the checks in
// the package documentation). The error wraps
// ErrTooLarge or ErrUnreadable when the body could not be read, otherwise it is the verifier's. On
// success, call Identity.Release if the message is then not accepted.
func VerifyRequest(v Verifier, r *http.Request, maxBody int64) (Identity, error) {
	if v == nil {
		return Identity{}, errors.New("signature: VerifyRequest: verifier is nil")
	}
	switch {
	case maxBody == 0:
		maxBody = DefaultMaxBodyBytes
	case maxBody < 0:
		return Identity{}, fmt.Errorf("signature: VerifyRequest: body limit %d must be positive", maxBody)
	}
	ctx := r.Context()
	hv, headerOnly := v.(HeaderVerifier)
	var id Identity
	switch p, ok := v.(prechecker); {
	case headerOnly:
		if err := checkDeclaredLength(r, maxBody); err != nil {
			return Identity{}, err
		}
		var err error
		if id, err = hv.VerifyHeader(ctx, r.Header); err != nil {
			return Identity{}, err
		}
	case ok:
		// What the headers alone refuse is refused with the body unread, as Verify does.
		if err := checkDeclaredLength(r, maxBody); err != nil {
			return Identity{}, err
		}
		if err := p.precheck(ctx, r.Header); err != nil {
			return Identity{}, err
		}
	}
	body, err := readBody(r, maxBody)
	if err != nil {
		if headerOnly {
			// The request goes no further: the sender's retry must not be refused as a replay.
			_ = id.Release(context.WithoutCancel(ctx))
		}
		return Identity{}, err
	}
	r.Body = NewBody(body)
	r.ContentLength = int64(len(body))
	if headerOnly {
		return id, nil
	}
	return v.Verify(ctx, r.Header, body)
}

type middleware struct {
	v          Verifier
	hv         HeaderVerifier  // v, when it decides from the headers alone; else nil
	tv         trackedVerifier // v, when it claims message ids and can tell one in flight; else nil
	maxBody    int64
	challenges []string
	logger     *slog.Logger
	warns      logLimit // of the rejections logged at Warn
	onReject   func(r *http.Request, err error)
	metrics    *metrics
}

// RejectLogBurst is how many rejections a second a middleware logs at Warn (see WithLogger).
const RejectLogBurst = 10

// logLimit lets through at most RejectLogBurst lines a second and counts the others.
type logLimit struct {
	mu         sync.Mutex
	second     int64 // the Unix second the lines in n were let through in
	n          int
	suppressed int64
}

// allow reports whether a line may be logged at now, and how many were not since the last one
// that was.
func (l *logLimit) allow(now time.Time) (ok bool, suppressed int64) {
	sec := now.Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	if sec != l.second {
		l.second, l.n = sec, 0
	}
	if l.n >= RejectLogBurst {
		l.suppressed++
		return false, 0
	}
	l.n++
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}

// logClock is the time the rejection log limit reads; tests set it.
var logClock = time.Now

func newMiddleware(v Verifier, opts []Option) (*middleware, error) {
	if v == nil {
		return nil, errors.New("signature: Verify: verifier is nil")
	}
	cfg := config{maxBody: DefaultMaxBodyBytes}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("signature: Verify: nil option")
		}
		o.apply(&cfg)
	}
	if cfg.maxBody <= 0 {
		return nil, fmt.Errorf("signature: Verify: body limit %d must be positive", cfg.maxBody)
	}
	seen := map[attribute.Key]bool{"scheme": true, "reason": true}
	for _, kv := range cfg.attrs {
		switch {
		case !kv.Valid():
			return nil, fmt.Errorf("signature: Verify: metric attribute %q has no key or no value", string(kv.Key))
		case kv.Key == "scheme" || kv.Key == "reason":
			return nil, fmt.Errorf("signature: Verify: metric attribute %q is set by the middleware itself", string(kv.Key))
		case seen[kv.Key]:
			return nil, fmt.Errorf("signature: Verify: metric attribute %q is given twice", string(kv.Key))
		}
		seen[kv.Key] = true
	}
	m := &middleware{v: v, maxBody: cfg.maxBody, logger: cfg.logger, onReject: cfg.onReject}
	m.hv, _ = v.(HeaderVerifier)
	m.tv, _ = v.(trackedVerifier)
	if c, ok := v.(Challenger); ok {
		m.challenges = c.Challenge()
	}
	if cfg.meter != nil {
		var err error
		if m.metrics, err = newMetrics(cfg.meter, cfg.attrs); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *middleware) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	id, body, ok := m.check(w, r)
	if !ok {
		return
	}
	m.verified(r, &id)

	// One allocation holds both the identity the context points to and the body reader.
	vr := &verifiedRequest{id: id, body: Body{b: body}}
	r2 := r.WithContext(context.WithValue(r.Context(), identityKey{}, &vr.id))
	r2.Body = &vr.body
	r2.ContentLength = int64(len(body))
	if id.release == nil {
		next.ServeHTTP(w, r2)
		return
	}
	sw := &statusWriter{ResponseWriter: w}
	returned := false
	defer func() {
		if !sw.accepted(returned) {
			m.release(r, &vr.id)
		}
		// After the release: a copy of the request that comes now finds the claim gone (and
		// verifies) or kept (and is a replay), never a claim without its request.
		if vr.id.settle != nil {
			vr.id.settle()
		}
	}()
	next.ServeHTTP(sw, r2)
	returned = true
}

// check verifies r and reads its body, or answers the request itself and returns false. A
// HeaderVerifier is asked before the body is read, so credentials that fail cost no body buffer;
// other verifiers need the body first.
func (m *middleware) check(w http.ResponseWriter, r *http.Request) (Identity, []byte, bool) {
	if m.hv == nil {
		if p, ok := m.v.(prechecker); ok {
			// Refused from the headers alone: the body stays unread, as for a HeaderVerifier.
			// An announced body over the limit is refused first, as for every verifier.
			err := checkDeclaredLength(r, m.maxBody)
			if err == nil {
				if err = p.precheck(r.Context(), r.Header); err != nil {
					chunkbuf.LeavePending(w, r)
				}
			}
			if err != nil {
				m.reject(w, r, err)
				return Identity{}, nil, false
			}
		}
		body, err := readBody(r, m.maxBody)
		if err != nil {
			m.reject(w, r, err)
			return Identity{}, nil, false
		}
		var id Identity
		if m.tv != nil {
			id, err = m.tv.verifyTracked(r.Context(), r.Header, body)
		} else {
			id, err = m.v.Verify(r.Context(), r.Header, body)
		}
		if err != nil {
			m.reject(w, r, err)
			return Identity{}, nil, false
		}
		return id, body, true
	}
	// An announced body over the limit is refused first, as for every verifier.
	if err := checkDeclaredLength(r, m.maxBody); err != nil {
		m.reject(w, r, err)
		return Identity{}, nil, false
	}
	id, err := m.hv.VerifyHeader(r.Context(), r.Header)
	if err != nil {
		// The body stays unread: the server must not read the rest of it, at the sender's pace,
		// to reuse the connection.
		chunkbuf.LeavePending(w, r)
		m.reject(w, r, err)
		return Identity{}, nil, false
	}
	body, err := readBody(r, m.maxBody)
	if err != nil {
		m.release(r, &id)
		m.reject(w, r, err)
		return Identity{}, nil, false
	}
	return id, body, true
}

// release undoes the replay-cache claim of id, if any, for a request that is not accepted. The
// handler's context may be cancelled already; the release must still happen.
func (m *middleware) release(r *http.Request, id *Identity) {
	if err := id.Release(context.WithoutCancel(r.Context())); err != nil && m.logger != nil {
		m.logger.LogAttrs(r.Context(), slog.LevelWarn, "signature: releasing message id failed",
			slog.String("error", err.Error()))
	}
}

type verifiedRequest struct {
	id   Identity
	body Body
}

var (
	bodyUnauthorized = []byte(`{"error":"unauthorized"}` + "\n")
	bodyTooLarge     = []byte(`{"error":"request body too large"}` + "\n")
	bodyUnreadable   = []byte(`{"error":"cannot read request body"}` + "\n")
	bodyTooSlow      = []byte(`{"error":"request body did not arrive in time, retry later"}` + "\n")
	bodyUnavailable  = []byte(`{"error":"verification unavailable, retry later"}` + "\n")
)

func (m *middleware) reject(w http.ResponseWriter, r *http.Request, err error) {
	reason := Reason(err)
	if m.onReject != nil {
		m.onReject(r, err)
	}
	if m.metrics != nil {
		m.metrics.rejected(r.Context(), reason)
	}
	if m.logger != nil && m.logger.Enabled(r.Context(), slog.LevelWarn) {
		m.logReject(r, reason, err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	var status int
	var body []byte
	switch reason {
	case ReasonTooLarge:
		// The rest of the body is not read.
		chunkbuf.LeaveBody(w, r)
		status, body = http.StatusRequestEntityTooLarge, bodyTooLarge
	case ReasonUnreadable:
		if chunkbuf.TimedOut(err) {
			// The body came too slowly for the server's ReadTimeout: the sender may well send
			// it in time on another try, and the rest of this one is not read.
			chunkbuf.LeaveTimedOutBody(w, r)
			h.Set("Retry-After", "1")
			chunkbuf.AnswerTime(w)
			status, body = http.StatusServiceUnavailable, bodyTooSlow
			break
		}
		status, body = http.StatusBadRequest, bodyUnreadable
	case ReasonUnavailable:
		h.Set("Retry-After", "1")
		status, body = http.StatusServiceUnavailable, bodyUnavailable
	default:
		for _, c := range m.challenges {
			h.Add("WWW-Authenticate", c)
		}
		status, body = http.StatusUnauthorized, bodyUnauthorized
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// logReject logs a rejection at Warn, or at Debug once RejectLogBurst lines went out at Warn
// in the same second.
func (m *middleware) logReject(r *http.Request, reason string, err error) {
	level := slog.LevelWarn
	ok, suppressed := m.warns.allow(logClock())
	if !ok {
		if !m.logger.Enabled(r.Context(), slog.LevelDebug) {
			return
		}
		level = slog.LevelDebug
	}
	attrs := [6]slog.Attr{
		slog.String("reason", reason),
		slog.String("error", err.Error()),
		slog.String("method", r.Method),
		slog.String("path", logPath(r.URL.Path)),
		slog.String("remote", r.RemoteAddr),
	}
	n := 5
	if suppressed > 0 {
		attrs[n] = slog.Int64("suppressed", suppressed)
		n++
	}
	m.logger.LogAttrs(r.Context(), level, "signature: request rejected", attrs[:n]...)
}

// maxLoggedPath is the longest request path a rejection's log line carries whole.
const maxLoggedPath = 256

// logPath returns p for a log line, cut to maxLoggedPath bytes (at a character's start) with its
// full length noted: the path is the sender's, and RejectLogBurst bounds the lines, not their
// size, so a megabyte path on every forged request would otherwise fill the log that fast.
func logPath(p string) string {
	if len(p) <= maxLoggedPath {
		return p
	}
	cut := maxLoggedPath
	for cut > 0 && !utf8.RuneStart(p[cut]) {
		cut--
	}
	return p[:cut] + "… (" + strconv.Itoa(len(p)) + " bytes)"
}

func (m *middleware) verified(r *http.Request, id *Identity) {
	if m.metrics != nil {
		m.metrics.verified(r.Context(), id.Scheme)
	}
	if m.logger != nil && m.logger.Enabled(r.Context(), slog.LevelDebug) {
		m.logger.LogAttrs(r.Context(), slog.LevelDebug, "signature: request verified",
			slog.String("scheme", id.Scheme),
			slog.Int("key", id.Key),
			slog.String("user", id.User),
			slog.String("message_id", id.MessageID),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path))
	}
}

// statusWriter records whether the handler accepted the request (answered 2xx).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Flush passes a flush on; a flushed response has started, with 200 unless a status was written.
func (s *statusWriter) Flush() {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the server's writer (Flush, deadlines).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// accepted reports a 2xx answer. A handler that returned without writing anything answers 200,
// as net/http sends it; one that panicked before writing answered nothing and is not accepted.
func (s *statusWriter) accepted(returned bool) bool {
	if s.status == 0 {
		return returned
	}
	return s.status >= 200 && s.status < 300
}

// metrics holds the OpenTelemetry counters and their attribute sets, built once.
type metrics struct {
	verifiedCount metric.Int64Counter
	rejectedCount metric.Int64Counter
	byReason      map[string]metric.AddOption
	attrs         []attribute.KeyValue // WithMetricAttributes, on every count

	mu       sync.RWMutex
	byScheme map[string]metric.AddOption
}

func newMetrics(mp metric.MeterProvider, attrs []attribute.KeyValue) (*metrics, error) {
	meter := mp.Meter("github.com/fanbridge/fanbridge/signature")
	v, err := meter.Int64Counter("fanbridge.signature.verified",
		metric.WithDescription("Requests whose credentials were verified."), metric.WithUnit("{request}"))
	if err != nil {
		return nil, fmt.Errorf("signature: creating metrics: %w", err)
	}
	rj, err := meter.Int64Counter("fanbridge.signature.rejected",
		metric.WithDescription("Requests refused, by reason."), metric.WithUnit("{request}"))
	if err != nil {
		return nil, fmt.Errorf("signature: creating metrics: %w", err)
	}
	m := &metrics{verifiedCount: v, rejectedCount: rj, byReason: map[string]metric.AddOption{}, byScheme: map[string]metric.AddOption{}, attrs: attrs}
	for _, r := range []string{ReasonMissing, ReasonMalformed, ReasonMismatch, ReasonStale, ReasonFuture,
		ReasonReplayed, ReasonTooLarge, ReasonUnavailable, ReasonUnreadable, ReasonOther} {
		m.byReason[r] = m.option(attribute.String("reason", r))
	}
	return m, nil
}

// option is the attribute set of a count: kv and the attributes of WithMetricAttributes.
func (m *metrics) option(kv attribute.KeyValue) metric.AddOption {
	return metric.WithAttributeSet(attribute.NewSet(append([]attribute.KeyValue{kv}, m.attrs...)...))
}

func (m *metrics) rejected(ctx context.Context, reason string) {
	m.rejectedCount.Add(ctx, 1, m.byReason[reason])
}

func (m *metrics) verified(ctx context.Context, scheme string) {
	m.mu.RLock()
	opt, ok := m.byScheme[scheme]
	m.mu.RUnlock()
	if !ok {
		m.mu.Lock()
		if opt, ok = m.byScheme[scheme]; !ok {
			// Custom verifiers may invent schemes, from request data even: past maxSchemes, new
			// ones are counted as "other", which bounds both this map and the metric's series.
			if len(m.byScheme) >= maxSchemes {
				scheme = otherScheme
			}
			if opt, ok = m.byScheme[scheme]; !ok {
				opt = m.option(attribute.String("scheme", scheme))
				m.byScheme[scheme] = opt
			}
		}
		m.mu.Unlock()
	}
	m.verifiedCount.Add(ctx, 1, opt)
}

// maxSchemes bounds the scheme label's values; otherScheme stands for those past the bound.
const (
	maxSchemes  = 64
	otherScheme = "other"
)
