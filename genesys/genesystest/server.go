// Package genesystest is a local fake of the parts of Genesys Cloud that fanbridge talks to: the
// OAuth token endpoint, integrations with versioned configs, available topics, notification
// channels with their WebSocket, and the organization. It behaves as Genesys documents (answers,
// error bodies with ININ-Correlation-Id, limits), records every request, and lets a test inject
// faults (429 with Retry-After, 5xx bursts, lost answers), expire tokens, publish events, and drop
// or close sockets. Like Genesys, it closes a socket a while after announcing maintenance on it
// (SendSocketClosing, WithSocketClosingDelay).
//
// A Server serves plain HTTP on 127.0.0.1; point a client at it with genesys.WithBaseURL(srv.URL)
// and genesys.WithTokenURL(srv.TokenURL()).
package genesystest

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is a fake Genesys Cloud. It is safe for concurrent use.
type Server struct {
	// URL is the base URL of the API, the token endpoint and the WebSockets.
	URL string

	opts  options
	hs    *httptest.Server
	corr  atomic.Int64
	pings atomic.Int64

	mu           sync.Mutex
	tokens       map[string]time.Time // access token -> expiry
	integrations []*integration
	nextID       int
	channels     []*channel
	created      int // channels created so far
	evictedInUse int // connected channels evicted by a channel created beyond the limit
	sockets      map[*socket]struct{}
	log          []Request
	logGen       int // counts ResetLog calls, so that an answer is not recorded in a newer log
	faults       []*Fault
	hook         func(*http.Request)
	seq          int64
	changed      chan struct{} // closed and replaced when channels, subscriptions or sockets change
	closed       bool
	closings     map[*time.Timer]struct{} // sockets to close after a socket_closing notice
}

// Request is one request the server received, as its log records it.
type Request struct {
	Method string
	Path   string
	Query  string
	// Status is the answer's status; 0 while the request is still being served. A request is
	// logged when it arrives, so that the log never lags behind what the request changed.
	Status int
	Time   time.Time
	// UserAgent is the request's User-Agent header.
	UserAgent string
}

// NewServer starts a fake Genesys Cloud. Close it when done.
func NewServer(opts ...Option) *Server {
	s := &Server{opts: defaults(), tokens: map[string]time.Time{}, sockets: map[*socket]struct{}{}, changed: make(chan struct{}),
		closings: map[*time.Timer]struct{}{}}
	for _, o := range opts {
		o.apply(&s.opts)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oauth/token", s.handleToken)
	mux.HandleFunc("GET /api/v2/organizations/me", s.handleOrganization)
	mux.HandleFunc("GET /api/v2/notifications/availabletopics", s.handleTopics)
	mux.HandleFunc("GET /api/v2/integrations", s.handleListIntegrations)
	mux.HandleFunc("POST /api/v2/integrations", s.handleCreateIntegration)
	mux.HandleFunc("GET /api/v2/integrations/{id}", s.handleGetIntegration)
	mux.HandleFunc("PATCH /api/v2/integrations/{id}", s.handlePatchIntegration)
	mux.HandleFunc("DELETE /api/v2/integrations/{id}", s.handleDeleteIntegration)
	mux.HandleFunc("GET /api/v2/integrations/{id}/config/current", s.handleGetConfig)
	mux.HandleFunc("PUT /api/v2/integrations/{id}/config/current", s.handlePutConfig)
	mux.HandleFunc("POST /api/v2/notifications/channels", s.handleCreateChannel)
	mux.HandleFunc("GET /api/v2/notifications/channels/{id}/subscriptions", s.handleGetSubscriptions)
	mux.HandleFunc("PUT /api/v2/notifications/channels/{id}/subscriptions", s.handlePutSubscriptions)
	mux.HandleFunc("GET /channels/{id}", s.handleSocket)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, http.StatusNotFound, "not.found", "No resource at "+r.URL.Path)
	})
	s.hs = httptest.NewServer(s.middleware(mux))
	s.URL = s.hs.URL
	return s
}

// TokenURL returns the URL of the OAuth token endpoint.
func (s *Server) TokenURL() string { return s.URL + "/oauth/token" }

// Close closes every socket and shuts the server down.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	socks := s.socketsLocked()
	for _, ch := range s.channels {
		if ch.timer != nil {
			ch.timer.Stop()
		}
	}
	for t := range s.closings {
		t.Stop()
	}
	s.mu.Unlock()
	for _, so := range socks {
		so.closeNow()
	}
	s.hs.CloseClientConnections()
	s.hs.Close()
}

// Requests returns a copy of the request log.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.log...)
}

// Count returns how many logged requests had the method (any when "") and a path starting with
// pathPrefix.
func (s *Server) Count(method, pathPrefix string) int {
	n := 0
	for _, r := range s.Requests() {
		if (method == "" || r.Method == method) && strings.HasPrefix(r.Path, pathPrefix) {
			n++
		}
	}
	return n
}

// Writes returns the logged API requests that may change state: POST, PUT, PATCH and DELETE
// below /api/.
func (s *Server) Writes() []Request {
	var out []Request
	for _, r := range s.Requests() {
		if strings.HasPrefix(r.Path, "/api/") && r.Method != http.MethodGet && r.Method != http.MethodHead {
			out = append(out, r)
		}
	}
	return out
}

// ResetLog empties the request log.
func (s *Server) ResetLog() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
	s.logGen++
}

// SetHook sets a function called with every request before it is handled (after fault injection
// and before authentication), outside the server's lock: tests use it to change state "in the
// middle" of a client's sequence. Nil removes it.
func (s *Server) SetHook(f func(*http.Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = f
}

// Fault is an answer the server gives instead of the real one to matching requests.
type Fault struct {
	// Method matches the request method; empty matches any.
	Method string
	// Path matches a request path that starts with it; empty matches any.
	Path string
	// Status is the status of the answer, such as 429, 503 or 501.
	Status int
	// RetryAfter, if set, is sent as the Retry-After header (seconds or an HTTP date). A 429
	// without one gets "1", as Genesys sends Retry-After with every 429.
	RetryAfter string
	// Code and Message go into the error body; defaults are derived from Status (the status
	// text as the message; as the API's code bad.credentials for 401, missing.permissions for
	// 403, not.found for 404, conflict for 409, too.many.requests.retry.after for 429,
	// internal.server.error for 5xx and bad.request for any other). On the token endpoint the
	// body takes the OAuth shape the login server uses, Code as "error" and Message as
	// "error_description" and "description"; elsewhere it is the API's error shape, with "code"
	// and "message".
	Code, Message string
	// Times is how many matching requests get the fault; zero means once.
	Times int
	// Processed handles the request for real before answering with the fault, as when a gateway
	// times out after the backend acted: the client sees a failure, the state has changed.
	Processed bool
}

// Fail queues a fault. Faults are matched in the order they were queued.
func (s *Server) Fail(f Fault) {
	if f.Times <= 0 {
		f.Times = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// PendingFaults returns how many fault answers are still queued.
func (s *Server) PendingFaults() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, f := range s.faults {
		n += f.Times
	}
	return n
}

// takeFault returns a copy of the first fault matching r and uses it up, or nil.
func (s *Server) takeFault(r *http.Request) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if (f.Method == "" || f.Method == r.Method) && strings.HasPrefix(r.URL.Path, f.Path) {
			f.Times--
			cp := *f
			if f.Times == 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
			return &cp
		}
	}
	return nil
}

// ExpireTokens makes every issued token invalid, as a revocation or an expiry would: the next API
// call with one gets a 401.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t := range s.tokens {
		s.tokens[t] = time.Time{}
	}
}

// Tokens returns every access token issued so far, valid or not, so that tests can check that no
// token leaks into logs or errors.
func (s *Server) Tokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.tokens))
	for t := range s.tokens {
		out = append(out, t)
	}
	return out
}

// TokensIssued returns how many tokens the token endpoint has issued.
func (s *Server) TokensIssued() int {
	return s.countStatus("/oauth/token", true)
}

func (s *Server) countStatus(path string, ok bool) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Path == path && (r.Status >= 200 && r.Status < 300) == ok {
			n++
		}
	}
	return n
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets the WebSocket upgrade reach the underlying connection.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		rec.Header().Set("ININ-Correlation-Id", s.correlationID())
		s.mu.Lock()
		at, gen := len(s.log), s.logGen
		s.log = append(s.log, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Time: s.opts.now(), UserAgent: r.UserAgent()})
		s.mu.Unlock()
		defer func() {
			status := rec.status
			if status == 0 {
				status = http.StatusSwitchingProtocols
			}
			s.mu.Lock()
			if s.logGen == gen { // not emptied by ResetLog meanwhile
				s.log[at].Status = status
			}
			s.mu.Unlock()
		}()
		if f := s.takeFault(r); f != nil {
			if f.Processed {
				s.serve(httptest.NewRecorder(), r, next)
			}
			s.writeFault(rec, r, f)
			return
		}
		s.mu.Lock()
		hook := s.hook
		s.mu.Unlock()
		if hook != nil {
			hook(r)
		}
		s.serve(rec, r, next)
	})
}

// serve authenticates API requests and hands them to the mux.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if strings.HasPrefix(r.URL.Path, "/api/") && !s.authorized(r) {
		s.writeError(w, http.StatusUnauthorized, "bad.credentials", "Invalid login credentials.")
		return
	}
	next.ServeHTTP(w, r)
}

func (s *Server) authorized(r *http.Request) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[token]
	return ok && s.opts.now().Before(exp)
}

// writeFault answers r with f, in the error shape of the server r was meant for.
func (s *Server) writeFault(w http.ResponseWriter, r *http.Request, f *Fault) {
	retryAfter := f.RetryAfter
	if retryAfter == "" && f.Status == http.StatusTooManyRequests {
		retryAfter = "1"
	}
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	msg := f.Message
	if msg == "" {
		msg = http.StatusText(f.Status)
	}
	if r.URL.Path == "/oauth/token" {
		s.writeTokenError(w, f.Status, cmp.Or(f.Code, tokenErrorCode(f.Status)), msg)
		return
	}
	s.writeError(w, f.Status, cmp.Or(f.Code, apiErrorCode(f.Status)), msg)
}

// apiErrorCode is the code an API fault with status gets by default: the one Genesys, and the
// fake's own routes where they answer that status, give it.
func apiErrorCode(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "bad.credentials"
	case status == http.StatusForbidden:
		return "missing.permissions"
	case status == http.StatusNotFound:
		return "not.found"
	case status == http.StatusConflict:
		return "conflict"
	case status == http.StatusTooManyRequests:
		return "too.many.requests.retry.after"
	case status >= 500:
		return "internal.server.error"
	default:
		return "bad.request"
	}
}

// tokenErrorCode is the OAuth error code (RFC 6749 section 5.2, and the server_error and
// temporarily_unavailable codes of section 4.1.2.1) a token fault with status gets by default.
func tokenErrorCode(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "invalid_client"
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		return "temporarily_unavailable"
	case status >= 500:
		return "server_error"
	default:
		return "invalid_request"
	}
}

func (s *Server) correlationID() string {
	n := s.corr.Add(1)
	return fmt.Sprintf("c0ffee00-0000-4000-8000-%012d", n)
}

// writeError writes an error in Genesys' shape.
func (s *Server) writeError(w http.ResponseWriter, status int, code, message string, details ...map[string]string) {
	if details == nil {
		details = []map[string]string{}
	}
	s.writeJSON(w, status, map[string]any{
		"message":   message,
		"code":      code,
		"status":    status,
		"contextId": w.Header().Get("ININ-Correlation-Id"),
		"details":   details,
		"errors":    []any{},
	})
}

// writeTokenError writes an error of the login server, in OAuth's shape: Genesys fills both
// "description" and "error_description".
func (s *Server) writeTokenError(w http.ResponseWriter, status int, code, description string) {
	s.writeJSON(w, status, map[string]string{"error": code, "description": description, "error_description": description})
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// decodeBody reads a JSON request body, answering 400 itself when it cannot.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<20))
	if err := dec.Decode(v); err != nil {
		s.writeError(w, http.StatusBadRequest, "bad.request", "The request could not be understood by the server due to malformed syntax.")
		return false
	}
	return true
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	// Genesys documents the header as Basic base64(clientId:clientSecret), with no form encoding
	// (RFC 6749 section 2.3.1) applied first, so the decoded id and secret are compared as they
	// are: a client that form-encodes a secret holding "+" or "%" is refused.
	id, secret, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(id), []byte(s.opts.clientID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.clientSecret)) != 1 {
		s.writeTokenError(w, http.StatusUnauthorized, "invalid_client", "client not found")
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		s.writeTokenError(w, http.StatusBadRequest, "unsupported_grant_type", "grant type not supported")
		return
	}
	token := randomHex(24)
	s.mu.Lock()
	s.tokens[token] = s.opts.now().Add(s.opts.tokenLifetime)
	s.mu.Unlock()
	s.writeJSON(w, http.StatusOK, map[string]any{
		"access_token": token,
		"token_type":   "bearer",
		"expires_in":   int64(s.opts.tokenLifetime / time.Second),
	})
}

func (s *Server) handleOrganization(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, http.StatusOK, map[string]any{
		"id": s.opts.orgID, "name": "fanbridge-test", "thirdPartyOrgName": "fanbridge-test", "state": "active",
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// notifyLocked wakes everything waiting for a change of channels or sockets.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// compactJSON returns v marshalled; it panics on values that cannot be, which is a test bug.
func compactJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("genesystest: cannot marshal %T: %v", v, err))
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
