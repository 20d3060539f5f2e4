package eventbridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/internal/chunkbuf"
	"github.com/fanbridge/fanbridge/retry"
)

// Handler is an http.Handler that decodes each POSTed event and hands it to a Dispatcher,
// answering as the package documentation's status table says. Build one with NewHandler; it is
// safe for concurrent use.
type Handler struct {
	d   Dispatcher
	dec *Decoder
	cfg config
	log *slog.Logger
	tel *telemetry
	// retryAfter is the default Retry-After header value, formatted once.
	retryAfter []string
}

// NewHandler returns a Handler that dispatches to d. d must not be nil, nor hold the nil of a
// pointer, func, map, channel or slice type (a *fanout.Dispatcher left nil because fanout.New
// failed): such a Handler would fail every request. When d implements Queuer and reports true, the Handler answers as with
// WithQueuingDispatcher. Invalid options are reported together, as an error wrapping
// ErrInvalidConfig.
func NewHandler(d Dispatcher, opts ...Option) (*Handler, error) {
	c := config{
		maxBody:         DefaultMaxBodySize,
		ignoredStatus:   http.StatusOK,
		retryAfter:      DefaultRetryAfter,
		dispatchTimeout: DefaultDispatchTimeout,
	}
	switch {
	case d == nil:
		c.fail("dispatcher must not be nil")
	case holdsNil(d):
		c.fail("dispatcher is a nil %T (was the error of its constructor checked?)", d)
	default:
		// Asked once: a Dispatcher queues or delivers for its whole life (fanout's mode is fixed
		// when it is built), and the answer is then not a method call per request.
		if q, ok := d.(Queuer); ok && q.Queues() {
			c.queuing = true
		}
	}
	for _, o := range opts {
		if o == nil {
			c.fail("nil option")
			continue
		}
		o.apply(&c)
	}
	var dec *Decoder
	if len(c.errs) == 0 {
		var err error
		if dec, err = NewDecoder(c.formats...); err != nil {
			c.errs = append(c.errs, err)
		} else if c.binaryMode && dec.formats&formatBit(FormatCloudEvents) == 0 {
			c.fail("WithCloudEventsBinaryMode needs FormatCloudEvents among WithFormats")
		}
	}
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	tel, err := newTelemetry(&c)
	if err != nil {
		return nil, fmt.Errorf("eventbridge: creating instruments: %w", err)
	}
	log := c.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{
		d:          d,
		dec:        dec,
		cfg:        c,
		log:        log,
		tel:        tel,
		retryAfter: []string{strconv.FormatInt(retryAfterSeconds(c.retryAfter), 10)},
	}, nil
}

// holdsNil reports whether d holds a nil of a kind that has one: a typed nil passes d == nil and
// would panic, or fail, only when the first request reaches it.
func holdsNil(d Dispatcher) bool {
	switch v := reflect.ValueOf(d); v.Kind() {
	case reflect.Pointer, reflect.Func, reflect.Map, reflect.Chan, reflect.Slice, reflect.UnsafePointer:
		return v.IsNil()
	}
	return false
}

// Header values shared by every answer; net/http only reads them.
var (
	jsonContentType = []string{"application/json"}
	allowPost       = []string{http.MethodPost}
	ignoredBody     = []byte(`{"status":"ignored"}`)
	duplicateBody   = []byte(`{"status":"duplicate"}`)
)

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var start time.Time
	if h.tel.metrics {
		start = time.Now()
		h.tel.requests.Add(ctx, 1, h.tel.requestOpts...)
	}
	var span trace.Span
	var ht headerTrace
	if h.tel.tracer != nil {
		// The parent is the trace context the Handler itself accepts (see copyTraceContext), so
		// that the span and the event's metadata never name different traces.
		if ht = readHeaderTrace(r.Header); ht.ok {
			md := propagation.MapCarrier{fanbridge.MetaTraceparent: ht.parent}
			if ht.state != "" {
				md[fanbridge.MetaTracestate] = ht.state
			}
			ctx = h.tel.propagator.Extract(ctx, md)
		}
		ctx, span = h.tel.tracer.Start(ctx, "eventbridge receive", trace.WithSpanKind(trace.SpanKindServer))
	}
	if span == nil && !h.tel.metrics {
		h.serve(ctx, w, r, nil, ht)
		return
	}
	// Deferred, so that a Dispatcher that panics (net/http recovers it) still ends the span and
	// records the request.
	status := http.StatusInternalServerError
	defer func() {
		if span != nil {
			span.SetAttributes(attribute.Int("http.response.status_code", status))
			span.End()
		}
		if h.tel.metrics {
			opts, ok := h.tel.statusOpts[status]
			if !ok {
				opts = []metric.RecordOption{metric.WithAttributeSet(h.tel.statusSet(status))}
			}
			h.tel.duration.Record(ctx, time.Since(start).Seconds(), opts...)
		}
	}()
	status = h.serve(ctx, w, r, span, ht)
}

// serve answers the request and returns the status it answered with; ht is the request's trace
// context when the span has read it already.
func (h *Handler) serve(ctx context.Context, w http.ResponseWriter, r *http.Request, span trace.Span, ht headerTrace) int {
	if r.Method != http.MethodPost {
		w.Header()["Allow"] = allowPost
		chunkbuf.LeavePending(w, r)
		return h.reject(ctx, w, span, reasonMethod, http.StatusMethodNotAllowed,
			"eventbridge: method not allowed, use POST")
	}
	if len(r.Header["Content-Type"]) > 1 {
		// A proxy in front that reads the last copy would not see the type this Handler reads.
		chunkbuf.LeavePending(w, r)
		return h.reject(ctx, w, span, reasonContentType, http.StatusUnsupportedMediaType,
			"eventbridge: Content-Type is sent more than once")
	}
	ct := r.Header.Get("Content-Type")
	media, err := parseMediaType(ct)
	binary := len(r.Header["Ce-Specversion"]) > 0 && !cloudEventsMedia(ct)
	switch {
	case binary && !h.cfg.binaryMode:
		// A CloudEvent in the HTTP binding's binary mode: its attributes are in the ce-* headers.
		// Decoded as a body alone, it would be another event (a webhook, with an id made from its
		// body and the sender's type and source dropped).
		chunkbuf.LeavePending(w, r)
		return h.reject(ctx, w, span, reasonContentType, http.StatusUnsupportedMediaType,
			"eventbridge: CloudEvents binary content mode (ce-* headers) is not enabled here; send the event in structured mode, Content-Type: application/cloudevents+json")
	case err != nil && !binary:
		chunkbuf.LeavePending(w, r)
		return h.reject(ctx, w, span, reasonContentType, http.StatusUnsupportedMediaType, err.Error())
	}
	body, err := h.readBody(r)
	if err != nil {
		var mbe *http.MaxBytesError // an http.MaxBytesHandler around the handler set a lower limit
		if errors.As(err, &mbe) {
			err = fmt.Errorf("%w: limit is %d bytes", errTooLarge, mbe.Limit)
		}
		if errors.Is(err, errTooLarge) {
			// The rest of the body stays unread; do not keep the connection for another request.
			chunkbuf.LeaveBody(w, r)
			return h.reject(ctx, w, span, reasonSize, http.StatusRequestEntityTooLarge, err.Error())
		}
		if chunkbuf.TimedOut(err) {
			// Too slow for the server's ReadTimeout: the connection is there, the sender hears
			// the answer, and may well send the body in time on another try.
			chunkbuf.LeaveTimedOutBody(w, r)
			w.Header()["Retry-After"] = h.retryAfter
			chunkbuf.AnswerTime(w)
			return h.reject(ctx, w, span, reasonRead, http.StatusServiceUnavailable, "eventbridge: the body did not arrive in time, retry later")
		}
		return h.reject(ctx, w, span, reasonRead, http.StatusBadRequest, "eventbridge: reading the body failed")
	}
	var e *fanbridge.Event
	if binary {
		e, err = h.dec.decodeBinary(r.Context(), r.Header, body)
	} else {
		e, err = h.dec.decode(r.Context(), body, media)
	}
	if err != nil {
		return h.reject(ctx, w, span, reasonMalformed, http.StatusBadRequest, err.Error())
	}
	if !h.sourceAllowed(e.Source) {
		return h.reject(ctx, w, span, reasonSource, http.StatusForbidden, "eventbridge: source not allowed")
	}
	if h.cfg.accounts != nil {
		if _, ok := h.cfg.accounts[e.Metadata[fanbridge.MetaAccount]]; !ok {
			return h.reject(ctx, w, span, reasonAccount, http.StatusForbidden, "eventbridge: account not allowed")
		}
	}
	if !ht.read {
		ht = readHeaderTrace(r.Header)
	}
	fromHeaders := copyTraceContext(ht, e)
	if span != nil {
		span.SetAttributes(attribute.String("messaging.message.id", e.ID),
			attribute.String("fanbridge.event.type", e.Type))
		// Trace context that came in the body (webhook metadata, CloudEvents extensions) was
		// read after the span began: the span links to it, and the dispatch, a child of the span,
		// stays in the request's trace.
		if !fromHeaders && e.Meta(fanbridge.MetaTraceparent) != "" {
			if sc := trace.SpanContextFromContext(h.tel.propagator.Extract(context.Background(),
				propagation.MapCarrier(e.Metadata))); sc.IsValid() {
				span.AddLink(trace.Link{SpanContext: sc})
			}
		}
	}

	// The dispatch keeps the request's values (the span) but not its cancellation: a sender that
	// hangs up must not stop a fan-out halfway. The budget bounds it instead.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.dispatchTimeout)
	err = h.d.Dispatch(dctx, e)
	cancel()

	switch {
	case err == nil && h.cfg.queuing:
		h.count(ctx, outcomeQueued)
		return writeAccepted(w, queuedPrefix, e.ID)
	case err == nil:
		h.count(ctx, outcomeDelivered)
		return writeAccepted(w, deliveredPrefix, e.ID)
	case errors.Is(err, fanbridge.ErrNoMatch):
		h.count(ctx, outcomeIgnored)
		if h.cfg.ignoredStatus == http.StatusNoContent {
			w.WriteHeader(http.StatusNoContent)
			return http.StatusNoContent
		}
		return writeJSON(w, h.cfg.ignoredStatus, ignoredBody)
	case errors.Is(err, fanbridge.ErrDuplicate):
		h.count(ctx, outcomeDuplicate)
		return writeJSON(w, http.StatusOK, duplicateBody)
	}

	var o outcome
	var msg string
	switch {
	case errors.Is(err, fanbridge.ErrOverloaded):
		o, msg = outcomeOverloaded, "eventbridge: overloaded, retry later"
	case errors.Is(err, fanbridge.ErrClosed):
		o, msg = outcomeClosed, "eventbridge: shutting down, retry later"
	case errors.Is(err, context.DeadlineExceeded):
		o, msg = outcomeTimeout, "eventbridge: delivery did not finish in time, retry later"
	default:
		o, msg = outcomeFailed, "eventbridge: delivery failed, retry later"
	}
	h.count(ctx, o)
	if span != nil {
		span.SetStatus(codes.Error, outcomeNames[o])
	}
	if h.log.Enabled(ctx, slog.LevelWarn) {
		// The dispatcher's error stays in the log: it can name sinks and hosts the sender must
		// not learn.
		h.log.LogAttrs(ctx, slog.LevelWarn, "eventbridge: dispatch failed",
			slog.String("id", e.ID), slog.String("type", e.Type), slog.String("outcome", outcomeNames[o]),
			slog.Any("error", err))
	}
	if d, ok := retry.RetryAfter(err); ok && d > 0 {
		w.Header()["Retry-After"] = []string{strconv.FormatInt(retryAfterSeconds(d), 10)}
	} else {
		w.Header()["Retry-After"] = h.retryAfter
	}
	return writeError(w, http.StatusServiceUnavailable, msg, e.ID)
}

func (h *Handler) count(ctx context.Context, o outcome) {
	if h.tel.metrics {
		h.tel.dispatched.Add(ctx, 1, h.tel.outcomeOpts[o]...)
	}
}

// reject answers a request refused before dispatch.
func (h *Handler) reject(ctx context.Context, w http.ResponseWriter, span trace.Span, why reason, status int, msg string) int {
	if h.tel.metrics {
		h.tel.rejected.Add(ctx, 1, h.tel.reasonOpts[why]...)
	}
	if span != nil {
		// A server span's status is an error only when the server failed (a 5xx); a request the
		// sender got wrong leaves it unset, as OpenTelemetry's HTTP conventions ask, and says why.
		span.SetAttributes(attribute.String("fanbridge.rejected.reason", reasonNames[why]))
		if status >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, reasonNames[why])
		}
	}
	if h.log.Enabled(ctx, slog.LevelDebug) {
		h.log.LogAttrs(ctx, slog.LevelDebug, "eventbridge: request rejected",
			slog.String("reason", reasonNames[why]), slog.Int("status", status), slog.String("error", msg))
	}
	return writeError(w, status, msg, "")
}

// cloudEventsMedia reports whether a Content-Type names a CloudEvents format
// (application/cloudevents, a structured or batched body) rather than the data of an event in
// binary mode.
func cloudEventsMedia(ct string) bool {
	const prefix = "application/cloudevents"
	ct = strings.TrimSpace(ct)
	return len(ct) >= len(prefix) && strings.EqualFold(ct[:len(prefix)], prefix)
}

func (h *Handler) sourceAllowed(src string) bool {
	if h.cfg.exactSources == nil && h.cfg.prefixSources == nil {
		return true
	}
	if src == "" {
		return false
	}
	if _, ok := h.cfg.exactSources[src]; ok {
		return true
	}
	for _, p := range h.cfg.prefixSources {
		if strings.HasPrefix(src, p) {
			return true
		}
	}
	return false
}

// retryAfterSeconds rounds d up to whole seconds, at least one.
func retryAfterSeconds(d time.Duration) int64 {
	s := int64(d / time.Second) // dividing first: adding a second to d could overflow
	if d%time.Second != 0 {
		s++
	}
	return max(s, 1)
}

var errTooLarge = errors.New("eventbridge: body too large")

// bodyBytes is implemented by request bodies that were read already (signature.Verify replaces
// r.Body with one); the Handler uses their bytes instead of reading a second copy.
type bodyBytes interface{ Bytes() []byte }

// firstReadSize bounds the buffer allocated for a body before any of it has arrived.
const firstReadSize = chunkbuf.Size

// readBody returns the whole body, or errTooLarge past the limit without reading further.
func (h *Handler) readBody(r *http.Request) ([]byte, error) {
	limit := h.cfg.maxBody
	if b, ok := r.Body.(bodyBytes); ok {
		body := b.Bytes()
		if int64(len(body)) > limit {
			return nil, fmt.Errorf("%w: limit is %d bytes", errTooLarge, limit)
		}
		return body, nil
	}
	if r.ContentLength > limit {
		return nil, fmt.Errorf("%w: limit is %d bytes", errTooLarge, limit)
	}
	if r.Body == nil {
		return nil, nil
	}
	if r.ContentLength >= 0 && r.ContentLength <= firstReadSize {
		// Nearly every event: one allocation of exactly its size, and one byte of room more so
		// that the final Read reports EOF without a regrow.
		buf := make([]byte, 0, r.ContentLength+1)
		for len(buf) < cap(buf) {
			n, err := r.Body.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
			if err == io.EOF {
				if int64(len(buf)) > limit {
					return nil, fmt.Errorf("%w: limit is %d bytes", errTooLarge, limit)
				}
				return buf, nil
			}
			if err != nil {
				return nil, err
			}
		}
		// More than announced: only a body that ignores its Content-Length gets here.
		return readChunks(r.Body, buf, limit, 0)
	}
	return readChunks(r.Body, nil, limit, r.ContentLength)
}

// readChunks reads rd to its end, after the bytes in head, refusing more than limit bytes in all.
// The bytes are collected in pooled chunks as they arrive and copied into one slice of exactly
// their size at the end, so the memory held for a body follows the bytes received, never the
// Content-Length a client announced and may not send. size, the announced length when known,
// only sizes the list of chunks, up to 1 MiB's worth.
func readChunks(rd io.Reader, head []byte, limit, size int64) ([]byte, error) {
	// The list starts small and grows as chunks fill: size is only what the client claims.
	chunks := make([]*chunkbuf.Chunk, 0, min(max(size, 0), 1<<20)/firstReadSize+1)
	defer func() { chunkbuf.Put(chunks) }()
	var last *chunkbuf.Chunk
	total := int64(len(head))
	fill := firstReadSize // of the last chunk
	for {
		if total > limit {
			return nil, fmt.Errorf("%w: limit is %d bytes", errTooLarge, limit)
		}
		if fill == firstReadSize {
			last, fill = chunkbuf.Get(), 0
			chunks = append(chunks, last)
		}
		// Never more than one byte past the limit, which is enough to know it was passed.
		// (total <= limit here; limit+1 would overflow for a limit of math.MaxInt64.)
		room := int64(firstReadSize - fill)
		if left := limit - total; left < room {
			room = left + 1
		}
		n, err := rd.Read(last[fill : fill+int(room)])
		fill += n
		total += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if total > limit {
		return nil, fmt.Errorf("%w: limit is %d bytes", errTooLarge, limit)
	}
	return chunkbuf.Join(head, chunks, total), nil
}

func writeJSON(w http.ResponseWriter, status int, body []byte) int {
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return status
}

// answerPool recycles the buffers of delivered answers: io.Writer implementations must not keep
// what they are given, so a buffer is free again once Write returns.
var answerPool = sync.Pool{New: func() any { b := make([]byte, 0, 128); return &b }}

// The answers to a nil from the Dispatcher, up to the event's id.
const (
	deliveredPrefix = `{"status":"delivered","id":`
	queuedPrefix    = `{"status":"queued","id":`
)

// writeAccepted answers 200 with prefix, the event's id and the closing brace.
func writeAccepted(w http.ResponseWriter, prefix, id string) int {
	bp := answerPool.Get().(*[]byte)
	b := append((*bp)[:0], prefix...)
	b = appendJSONString(b, id)
	b = append(b, '}')
	status := writeJSON(w, http.StatusOK, b)
	if cap(b) <= 4096 {
		*bp = b
		answerPool.Put(bp)
	}
	return status
}

// writeError answers {"error": msg, "id": id}; id is left out when empty.
func writeError(w http.ResponseWriter, status int, msg, id string) int {
	b := make([]byte, 0, len(msg)+len(id)+32)
	b = append(b, `{"error":`...)
	b = appendJSONString(b, msg)
	if id != "" {
		b = append(b, `,"id":`...)
		b = appendJSONString(b, id)
	}
	b = append(b, '}')
	return writeJSON(w, status, b)
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
