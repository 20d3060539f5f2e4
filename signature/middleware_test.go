package signature_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"

	"github.com/fanbridge/fanbridge/signature"
)

// recorder is the next handler behind Verify: it records each call and checks that the body it is
// given is the one sent, byte for byte, through both Read and Bytes.
type recorder struct {
	t      *testing.T
	mu     sync.Mutex
	calls  int
	bodies [][]byte
	ids    []signature.Identity
	status int // answer to give; 0 means 200
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fast, ok := signature.BodyBytes(r)
	assert.True(rec.t, ok, "r.Body has a Bytes method")
	read, err := io.ReadAll(r.Body)
	assert.NoError(rec.t, err)
	assert.Equal(rec.t, fast, read, "Bytes and Read agree")
	assert.Equal(rec.t, int64(len(read)), r.ContentLength, "ContentLength matches the body")
	id, ok := signature.IdentityFrom(r.Context())
	assert.True(rec.t, ok, "the identity is in the context")
	rec.mu.Lock()
	rec.calls++
	rec.bodies = append(rec.bodies, read)
	rec.ids = append(rec.ids, id)
	status := rec.status
	rec.mu.Unlock()
	if status != 0 {
		w.WriteHeader(status)
	}
	_, _ = io.WriteString(w, "ok")
}

func (rec *recorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.calls
}

// endpoint is a real HTTP server with Verify in front of a recorder.
type endpoint struct {
	srv     *httptest.Server
	next    *recorder
	mu      sync.Mutex
	lastErr error
}

func newEndpoint(t *testing.T, v signature.Verifier, opts ...signature.Option) *endpoint {
	e := &endpoint{next: &recorder{t: t}}
	opts = append(opts, signature.WithOnReject(func(_ *http.Request, err error) {
		e.mu.Lock()
		e.lastErr = err
		e.mu.Unlock()
	}))
	e.srv = httptest.NewServer(signature.Verify(v, opts...)(e.next))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *endpoint) takeErr() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	err := e.lastErr
	e.lastErr = nil
	return err
}

type answer struct {
	status int
	header http.Header
	body   string
}

// post sends body with the given header lines (a key given twice is sent on two lines).
func (e *endpoint) post(t *testing.T, h http.Header, body []byte, chunked bool) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rd io.Reader = bytes.NewReader(body)
	if chunked {
		rd = io.MultiReader(rd) // hides the length: the client sends it chunked
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.srv.URL+"/events", rd)
	require.NoError(t, err)
	if chunked {
		req.ContentLength = -1
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func basicAuth(userPass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(userPass))
}

func swHeader(t testing.TB, id string, ts time.Time, body []byte, keys ...string) http.Header {
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	require.NoError(t, signature.SignStandardWebhooksRequest(r, id, ts, body, keys...))
	return r.Header
}

func hub(t testing.TB, s signature.HMACScheme, secret string, body []byte) string {
	v, err := signature.SignHMAC(s, secret, body)
	require.NoError(t, err)
	return v
}

// lastByteChanged returns sig, a MAC written in enc after prefix, with one bit of its last byte
// flipped: a signature that is right but for its end.
func lastByteChanged(t testing.TB, sig, prefix string, enc signature.Encoding) string {
	t.Helper()
	text, ok := strings.CutPrefix(sig, prefix)
	require.True(t, ok, sig)
	if enc == signature.Hex {
		mac, err := hex.DecodeString(text)
		require.NoError(t, err)
		mac[len(mac)-1] ^= 1
		return prefix + hex.EncodeToString(mac)
	}
	mac, err := base64.StdEncoding.DecodeString(text)
	require.NoError(t, err)
	mac[len(mac)-1] ^= 1
	return prefix + base64.StdEncoding.EncodeToString(mac)
}

// TestHostileRequests sends a corpus of hostile and good requests to real servers. Every
// rejection gets its documented status and JSON body, the 401s all look the same, and the next
// handler never sees a rejected request; good requests reach it with the body intact.
func TestHostileRequests(t *testing.T) {
	body := readSample(t, "v2.detail.events.conversation.customer.end.json")
	other := []byte(`{"tampered":true}`)
	const unauthorized = `{"error":"unauthorized"}` + "\n"
	tutorial := signature.HMACScheme{Header: "X-Genesys-Event-Signature", Encoding: signature.Hex}

	cache, err := signature.NewMemoryReplayCache(1000)
	require.NoError(t, err)
	verifiers := map[string]signature.Verifier{
		"apikey": signature.Must(signature.APIKey("X-Api-Key", "key-one", "key-two")),
		"basic":  signature.Must(signature.Basic(map[string]string{"eventbridge": "p:a:s:s", "other": "pw"})),
		"bearer": signature.Must(signature.Bearer("token-1", "token-2")),
		"bearerfunc": signature.Must(signature.BearerFunc(func(_ context.Context, tok string) error {
			switch tok {
			case "good":
				return nil
			case "down":
				return fmt.Errorf("introspection: %w", signature.ErrUnavailable)
			}
			return errors.New("token expired")
		})),
		"github":   signature.Must(signature.GitHub("gh-secret")),
		"om":       signature.Must(signature.OpenMessaging("om-secret")),
		"tutorial": signature.Must(signature.HMAC(tutorial, "tut-secret")),
		"sw": signature.Must(signature.StandardWebhooks([]string{secretA, publicC},
			signature.WithClock(fixedClock), signature.WithReplayCache(cache))),
	}
	verifiers["any"] = signature.Must(signature.Any(verifiers["basic"], verifiers["github"], verifiers["sw"]))
	endpoints := map[string]*endpoint{}
	for name, v := range verifiers {
		endpoints[name] = newEndpoint(t, v)
	}

	ghSig := hub(t, signature.GitHubScheme, "gh-secret", body)
	omSig := hub(t, signature.OpenMessagingScheme, "om-secret", body)
	tutSig := hub(t, tutorial, "tut-secret", body)
	big := bytes.Repeat([]byte("x"), signature.DefaultMaxBodyBytes+1)
	swOK := func(id string) http.Header { return swHeader(t, id, testNow, body, secretA) }
	swWith := func(id string, mutate func(h http.Header)) http.Header {
		h := swOK(id)
		mutate(h)
		return h
	}

	type tc struct {
		name      string
		endpoint  string
		header    http.Header
		body      []byte
		chunked   bool
		status    int
		err       error // the sentinel the verifier reported; nil for accepted requests
		challenge string
		key       int
	}
	cases := []tc{
		// API key (EventBridge API destination, API key authorization).
		{name: "apikey good", endpoint: "apikey", header: headers("X-Api-Key", "key-one"), status: 200},
		{name: "apikey rotated second key", endpoint: "apikey", header: headers("X-Api-Key", "key-two"), status: 200, key: 1},
		{name: "apikey missing", endpoint: "apikey", header: headers(), status: 401, err: signature.ErrMissing},
		{name: "apikey empty", endpoint: "apikey", header: headers("X-Api-Key", ""), status: 401, err: signature.ErrMissing},
		{name: "apikey wrong", endpoint: "apikey", header: headers("X-Api-Key", "key-three"), status: 401, err: signature.ErrMismatch},
		{name: "apikey truncated", endpoint: "apikey", header: headers("X-Api-Key", "key-on"), status: 401, err: signature.ErrMismatch},
		{name: "apikey extended", endpoint: "apikey", header: headers("X-Api-Key", "key-one1"), status: 401, err: signature.ErrMismatch},
		{name: "apikey case differs", endpoint: "apikey", header: headers("X-Api-Key", "KEY-ONE"), status: 401, err: signature.ErrMismatch},
		{name: "apikey two header lines", endpoint: "apikey", header: headers("X-Api-Key", "key-one", "X-Api-Key", "key-one"), status: 401, err: signature.ErrMalformed},
		{name: "apikey in another header", endpoint: "apikey", header: headers("Authorization", "key-one"), status: 401, err: signature.ErrMissing},
		{name: "apikey oversize body", endpoint: "apikey", header: headers("X-Api-Key", "key-one"), body: big, status: 413, err: signature.ErrTooLarge},
		{name: "apikey oversize chunked body", endpoint: "apikey", header: headers("X-Api-Key", "key-one"), body: big, chunked: true, status: 413, err: signature.ErrTooLarge},
		{name: "apikey chunked good", endpoint: "apikey", header: headers("X-Api-Key", "key-one"), chunked: true, status: 200},
		{name: "apikey empty body", endpoint: "apikey", header: headers("X-Api-Key", "key-one"), body: []byte{}, status: 200},

		// Basic (EventBridge API destination, Basic authorization).
		{name: "basic good password with colons", endpoint: "basic", header: headers("Authorization", basicAuth("eventbridge:p:a:s:s")), status: 200, key: -1},
		{name: "basic lower-case scheme", endpoint: "basic", header: headers("Authorization", "basic "+base64.StdEncoding.EncodeToString([]byte("other:pw"))), status: 200, key: -1},
		{name: "basic missing", endpoint: "basic", header: headers(), status: 401, err: signature.ErrMissing, challenge: "Basic"},
		{name: "basic no colon", endpoint: "basic", header: headers("Authorization", basicAuth("eventbridge")), status: 401, err: signature.ErrMalformed, challenge: "Basic"},
		{name: "basic bad base64", endpoint: "basic", header: headers("Authorization", "Basic ZXZlbnRicmlkZ2U6c*"), status: 401, err: signature.ErrMalformed, challenge: "Basic"},
		{name: "basic base64 of garbage length", endpoint: "basic", header: headers("Authorization", "Basic ZXZlb"), status: 401, err: signature.ErrMalformed, challenge: "Basic"},
		{name: "basic empty credentials", endpoint: "basic", header: headers("Authorization", "Basic "), status: 401, err: signature.ErrMalformed, challenge: "Basic"},
		{name: "basic wrong password", endpoint: "basic", header: headers("Authorization", basicAuth("eventbridge:p:a:s")), status: 401, err: signature.ErrMismatch, challenge: "Basic"},
		{name: "basic password split at last colon", endpoint: "basic", header: headers("Authorization", basicAuth("eventbridge:p:a:s:s:")), status: 401, err: signature.ErrMismatch, challenge: "Basic"},
		{name: "basic unknown user", endpoint: "basic", header: headers("Authorization", basicAuth("mallory:pw")), status: 401, err: signature.ErrMismatch, challenge: "Basic"},
		{name: "basic other user's password", endpoint: "basic", header: headers("Authorization", basicAuth("other:p:a:s:s")), status: 401, err: signature.ErrMismatch, challenge: "Basic"},
		{name: "basic wrong scheme", endpoint: "basic", header: headers("Authorization", "Bearer token-1"), status: 401, err: signature.ErrMissing, challenge: "Basic"},
		{name: "basic two header lines", endpoint: "basic", header: headers("Authorization", basicAuth("other:pw"), "Authorization", basicAuth("other:pw")), status: 401, err: signature.ErrMalformed, challenge: "Basic"},

		// Bearer.
		{name: "bearer good", endpoint: "bearer", header: headers("Authorization", "Bearer token-2"), status: 200, key: 1},
		{name: "bearer wrong", endpoint: "bearer", header: headers("Authorization", "Bearer token-3"), status: 401, err: signature.ErrMismatch, challenge: "Bearer"},
		{name: "bearer no token", endpoint: "bearer", header: headers("Authorization", "Bearer"), status: 401, err: signature.ErrMalformed, challenge: "Bearer"},
		{name: "bearer wrong scheme", endpoint: "bearer", header: headers("Authorization", basicAuth("a:b")), status: 401, err: signature.ErrMissing, challenge: "Bearer"},
		{name: "bearerfunc good", endpoint: "bearerfunc", header: headers("Authorization", "Bearer good"), status: 200, key: -1},
		{name: "bearerfunc rejected", endpoint: "bearerfunc", header: headers("Authorization", "Bearer expired"), status: 401, err: signature.ErrMismatch, challenge: "Bearer"},
		{name: "bearerfunc not token68", endpoint: "bearerfunc", header: headers("Authorization", "Bearer a,b"), status: 401, err: signature.ErrMalformed, challenge: "Bearer"},
		{name: "bearerfunc validator down", endpoint: "bearerfunc", header: headers("Authorization", "Bearer down"), status: 503, err: signature.ErrUnavailable},
		// The validator refuses every token but "good": a mismatch shows that it saw the token.
		{name: "bearerfunc longest token is validated", endpoint: "bearerfunc", header: headers("Authorization", "Bearer "+strings.Repeat("t", 4096)), status: 401, err: signature.ErrMismatch, challenge: "Bearer"},
		{name: "bearerfunc longer token is not", endpoint: "bearerfunc", header: headers("Authorization", "Bearer "+strings.Repeat("t", 4097)), status: 401, err: signature.ErrMalformed, challenge: "Bearer"},

		// GitHub: sha256=<hex>.
		{name: "github good", endpoint: "github", header: headers("X-Hub-Signature-256", ghSig), status: 200},
		{name: "github upper-case hex", endpoint: "github", header: headers("X-Hub-Signature-256", "sha256="+strings.ToUpper(ghSig[7:])), status: 200},
		{name: "github missing", endpoint: "github", header: headers(), status: 401, err: signature.ErrMissing},
		{name: "github empty", endpoint: "github", header: headers("X-Hub-Signature-256", ""), status: 401, err: signature.ErrMissing},
		{name: "github garbage", endpoint: "github", header: headers("X-Hub-Signature-256", "garbage"), status: 401, err: signature.ErrMalformed},
		{name: "github no prefix", endpoint: "github", header: headers("X-Hub-Signature-256", ghSig[7:]), status: 401, err: signature.ErrMalformed},
		{name: "github wrong prefix", endpoint: "github", header: headers("X-Hub-Signature-256", "sha1="+ghSig[7:]), status: 401, err: signature.ErrMalformed},
		{name: "github prefix in another case", endpoint: "github", header: headers("X-Hub-Signature-256", "S"+ghSig[1:]), status: 401, err: signature.ErrMalformed},
		{name: "github last digit wrong", endpoint: "github", header: headers("X-Hub-Signature-256", lastByteChanged(t, ghSig, "sha256=", signature.Hex)), status: 401, err: signature.ErrMismatch},
		{name: "github truncated", endpoint: "github", header: headers("X-Hub-Signature-256", ghSig[:len(ghSig)-2]), status: 401, err: signature.ErrMalformed},
		{name: "github not hex", endpoint: "github", header: headers("X-Hub-Signature-256", ghSig[:len(ghSig)-1]+"g"), status: 401, err: signature.ErrMalformed},
		{name: "github base64 instead of hex", endpoint: "github", header: headers("X-Hub-Signature-256", hub(t, signature.OpenMessagingScheme, "gh-secret", body)), status: 401, err: signature.ErrMalformed},
		{name: "github wrong secret", endpoint: "github", header: headers("X-Hub-Signature-256", hub(t, signature.GitHubScheme, "other", body)), status: 401, err: signature.ErrMismatch},
		{name: "github tampered body", endpoint: "github", header: headers("X-Hub-Signature-256", ghSig), body: other, status: 401, err: signature.ErrMismatch},
		{name: "github two header lines", endpoint: "github", header: headers("X-Hub-Signature-256", ghSig, "X-Hub-Signature-256", ghSig), status: 401, err: signature.ErrMalformed},

		// Genesys Open Messaging: sha256=<base64>.
		{name: "open messaging good", endpoint: "om", header: headers("X-Hub-Signature-256", omSig), status: 200},
		{name: "open messaging unpadded", endpoint: "om", header: headers("X-Hub-Signature-256", strings.TrimRight(omSig, "=")), status: 200},
		{name: "open messaging hex instead of base64", endpoint: "om", header: headers("X-Hub-Signature-256", hub(t, signature.GitHubScheme, "om-secret", body)), status: 401, err: signature.ErrMalformed},
		{name: "open messaging last byte wrong", endpoint: "om", header: headers("X-Hub-Signature-256", lastByteChanged(t, omSig, "sha256=", signature.Base64)), status: 401, err: signature.ErrMismatch},
		{name: "open messaging wrong secret", endpoint: "om", header: headers("X-Hub-Signature-256", hub(t, signature.OpenMessagingScheme, "x", body)), status: 401, err: signature.ErrMismatch},
		{name: "open messaging url alphabet", endpoint: "om", header: headers("X-Hub-Signature-256", strings.NewReplacer("+", "-", "/", "_").Replace(omSig)+"-_"), status: 401, err: signature.ErrMalformed},

		// Tutorials' hex header through the generic HMAC.
		{name: "tutorial hex good", endpoint: "tutorial", header: headers("X-Genesys-Event-Signature", tutSig), status: 200},
		{name: "tutorial hex tampered", endpoint: "tutorial", header: headers("X-Genesys-Event-Signature", tutSig), body: other, status: 401, err: signature.ErrMismatch},
		{name: "tutorial hex with prefix", endpoint: "tutorial", header: headers("X-Genesys-Event-Signature", "sha256="+tutSig), status: 401, err: signature.ErrMalformed},

		// Standard Webhooks.
		{name: "sw good v1", endpoint: "sw", header: swOK("msg_good_v1"), status: 200},
		{name: "sw good v1a", endpoint: "sw", header: swHeader(t, "msg_good_v1a", testNow, body, signingC), status: 200, key: 1},
		{name: "sw good among junk entries", endpoint: "sw", header: swWith("msg_junk", func(h http.Header) {
			h.Set("Webhook-Signature", "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,abc nocomma  "+h.Get("Webhook-Signature")+" v1a,short")
		}), status: 200},
		{name: "sw svix headers", endpoint: "sw", header: swWith("msg_svix", func(h http.Header) {
			for _, k := range []string{"Id", "Timestamp", "Signature"} {
				h.Set("Svix-"+k, h.Get("Webhook-"+k))
				h.Del("Webhook-" + k)
			}
		}), status: 200},
		{name: "sw mixed header families", endpoint: "sw", header: swWith("msg_mixed", func(h http.Header) {
			h.Set("Svix-Signature", h.Get("Webhook-Signature"))
			h.Del("Webhook-Signature")
		}), status: 401, err: signature.ErrMissing},
		{name: "sw webhook- headers beside a whole svix- set", endpoint: "sw", header: swWith("msg_both", func(h http.Header) {
			for _, k := range []string{"Id", "Timestamp", "Signature"} {
				h.Set("Svix-"+k, h.Get("Webhook-"+k))
			}
			h.Del("Webhook-Id")
		}), status: 401, err: signature.ErrMissing},
		{name: "sw edge of tolerance past", endpoint: "sw", header: swHeader(t, "msg_edge_past", testNow.Add(-5*time.Minute), body, secretA), status: 200},
		{name: "sw edge of tolerance future", endpoint: "sw", header: swHeader(t, "msg_edge_future", testNow.Add(5*time.Minute), body, secretA), status: 200},
		{name: "sw stale", endpoint: "sw", header: swHeader(t, "msg_stale", testNow.Add(-5*time.Minute-time.Second), body, secretA), status: 401, err: signature.ErrStale},
		{name: "sw future", endpoint: "sw", header: swHeader(t, "msg_future", testNow.Add(5*time.Minute+time.Second), body, secretA), status: 401, err: signature.ErrFuture},
		{name: "sw timestamp not numeric", endpoint: "sw", header: swWith("msg_ts1", func(h http.Header) { h.Set("Webhook-Timestamp", "17e8") }), status: 401, err: signature.ErrMalformed},
		{name: "sw timestamp negative", endpoint: "sw", header: swWith("msg_ts2", func(h http.Header) { h.Set("Webhook-Timestamp", "-1700000000") }), status: 401, err: signature.ErrMalformed},
		{name: "sw timestamp with plus", endpoint: "sw", header: swWith("msg_ts3", func(h http.Header) { h.Set("Webhook-Timestamp", "+1700000000") }), status: 401, err: signature.ErrMalformed},
		{name: "sw timestamp in milliseconds", endpoint: "sw", header: swWith("msg_ts4", func(h http.Header) { h.Set("Webhook-Timestamp", "1700000000000") }), status: 401, err: signature.ErrMalformed},
		{name: "sw timestamp changed", endpoint: "sw", header: swWith("msg_ts5", func(h http.Header) { h.Set("Webhook-Timestamp", "1700000001") }), status: 401, err: signature.ErrMismatch},
		{name: "sw id changed", endpoint: "sw", header: swWith("msg_id1", func(h http.Header) { h.Set("Webhook-Id", "msg_id2") }), status: 401, err: signature.ErrMismatch},
		{name: "sw id with dot", endpoint: "sw", header: swWith("msg_dot", func(h http.Header) { h.Set("Webhook-Id", "msg.dot") }), status: 401, err: signature.ErrMalformed},
		{name: "sw id too long", endpoint: "sw", header: swWith("msg_long", func(h http.Header) { h.Set("Webhook-Id", strings.Repeat("m", 257)) }), status: 401, err: signature.ErrMalformed},
		{name: "sw missing id", endpoint: "sw", header: swWith("msg_noid", func(h http.Header) { h.Del("Webhook-Id") }), status: 401, err: signature.ErrMissing},
		{name: "sw missing signature", endpoint: "sw", header: swWith("msg_nosig", func(h http.Header) { h.Del("Webhook-Signature") }), status: 401, err: signature.ErrMissing},
		{name: "sw nothing", endpoint: "sw", header: headers(), status: 401, err: signature.ErrMissing},
		{name: "sw empty v1", endpoint: "sw", header: swWith("msg_e", func(h http.Header) { h.Set("Webhook-Signature", "v1,") }), status: 401, err: signature.ErrMalformed},
		{name: "sw unknown versions only", endpoint: "sw", header: swWith("msg_v2", func(h http.Header) { h.Set("Webhook-Signature", "v2,"+h.Get("Webhook-Signature")[3:]) }), status: 401, err: signature.ErrMalformed},
		{name: "sw hex signature", endpoint: "sw", header: swWith("msg_hex", func(h http.Header) { h.Set("Webhook-Signature", "v1,"+strings.Repeat("ab", 32)) }), status: 401, err: signature.ErrMalformed},
		{name: "sw truncated signature", endpoint: "sw", header: swWith("msg_trunc", func(h http.Header) { h.Set("Webhook-Signature", h.Get("Webhook-Signature")[:20]) }), status: 401, err: signature.ErrMalformed},
		{name: "sw v1 signature labelled v1a", endpoint: "sw", header: swWith("msg_label", func(h http.Header) { h.Set("Webhook-Signature", "v1a"+h.Get("Webhook-Signature")[2:]) }), status: 401, err: signature.ErrMalformed},
		{name: "sw last byte wrong", endpoint: "sw", header: swWith("msg_tail", func(h http.Header) {
			h.Set("Webhook-Signature", lastByteChanged(t, h.Get("Webhook-Signature"), "v1,", signature.Base64))
		}), status: 401, err: signature.ErrMismatch},
		{name: "sw wrong key", endpoint: "sw", header: swHeader(t, "msg_wrongkey", testNow, body, secretB), status: 401, err: signature.ErrMismatch},
		{name: "sw tampered body", endpoint: "sw", header: swOK("msg_tampered"), body: other, status: 401, err: signature.ErrMismatch},
		{name: "sw two signature lines", endpoint: "sw", header: swWith("msg_twolines", func(h http.Header) { h.Add("Webhook-Signature", h.Get("Webhook-Signature")) }), status: 401, err: signature.ErrMalformed},
		{name: "sw too many entries", endpoint: "sw", header: swWith("msg_many", func(h http.Header) {
			h.Set("Webhook-Signature", strings.Repeat("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= ", 16)+h.Get("Webhook-Signature"))
		}), status: 401, err: signature.ErrMalformed},

		// Any of Basic, GitHub, Standard Webhooks.
		{name: "any via github", endpoint: "any", header: headers("X-Hub-Signature-256", ghSig), status: 200},
		{name: "any via basic", endpoint: "any", header: headers("Authorization", basicAuth("other:pw")), status: 200, key: -1},
		{name: "any nothing", endpoint: "any", header: headers(), status: 401, err: signature.ErrMissing, challenge: "Basic"},
		{name: "any github wrong", endpoint: "any", header: headers("X-Hub-Signature-256", hub(t, signature.GitHubScheme, "x", body)), status: 401, err: signature.ErrMismatch, challenge: "Basic"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := endpoints[c.endpoint]
			require.NotNil(t, e, c.endpoint)
			send := body
			if c.body != nil {
				send = c.body
			}
			before := e.next.count()
			got := e.post(t, c.header, send, c.chunked)
			assert.Equal(t, c.status, got.status)
			err := e.takeErr()
			if c.status == http.StatusOK {
				assert.NoError(t, err)
				require.Equal(t, before+1, e.next.count(), "the next handler is called once")
				e.next.mu.Lock()
				assert.Equal(t, send, e.next.bodies[len(e.next.bodies)-1], "body intact")
				assert.Equal(t, c.key, e.next.ids[len(e.next.ids)-1].Key)
				e.next.mu.Unlock()
				assert.Equal(t, "ok", got.body)
				return
			}
			assert.Equal(t, before, e.next.count(), "the next handler is never called")
			assert.ErrorIs(t, err, c.err)
			assert.Equal(t, "application/json", got.header.Get("Content-Type"))
			var payload map[string]string
			require.NoError(t, json.Unmarshal([]byte(got.body), &payload), got.body)
			if c.status == http.StatusUnauthorized {
				assert.Equal(t, unauthorized, got.body, "one body for every 401")
				if c.challenge != "" {
					assert.True(t, strings.HasPrefix(got.header.Get("WWW-Authenticate"), c.challenge), got.header.Get("WWW-Authenticate"))
				} else {
					assert.Empty(t, got.header.Get("WWW-Authenticate"))
				}
			}
			if c.status == http.StatusServiceUnavailable {
				assert.NotEmpty(t, got.header.Get("Retry-After"))
			}
		})
	}
}

// TestUnauthorizedAnswersAreIdentical checks that the 401 answers of different reasons cannot be
// told apart: same status, same headers, same body.
func TestUnauthorizedAnswersAreIdentical(t *testing.T) {
	body := []byte(`{"a":1}`)
	v := signature.Must(signature.StandardWebhooks([]string{secretA}, signature.WithClock(fixedClock)))
	e := newEndpoint(t, v)
	reqs := map[string]http.Header{
		"missing":   headers(),
		"malformed": headers("Webhook-Id", "m", "Webhook-Timestamp", "x", "Webhook-Signature", "v1,x"),
		"stale":     swHeader(t, "m1", testNow.Add(-time.Hour), body, secretA),
		"future":    swHeader(t, "m2", testNow.Add(time.Hour), body, secretA),
		"mismatch":  swHeader(t, "m3", testNow, body, secretB),
	}
	var first *answer
	for name, h := range reqs {
		got := e.post(t, h, body, false)
		require.Equal(t, http.StatusUnauthorized, got.status, name)
		got.header.Del("Date")
		if first == nil {
			first = &got
			continue
		}
		assert.Equal(t, first.header, got.header, name)
		assert.Equal(t, first.body, got.body, name)
	}
	assert.Zero(t, e.next.count())
}

func TestBodyLimitOption(t *testing.T) {
	v := signature.Must(signature.APIKey("X-Api-Key", "k"))
	e := newEndpoint(t, v, signature.WithMaxBodyBytes(10))
	assert.Equal(t, 200, e.post(t, headers("X-Api-Key", "k"), []byte("0123456789"), false).status)
	assert.Equal(t, 200, e.post(t, headers("X-Api-Key", "k"), []byte("0123456789"), true).status)
	got := e.post(t, headers("X-Api-Key", "k"), []byte("0123456789A"), false)
	assert.Equal(t, 413, got.status)
	assert.JSONEq(t, `{"error":"request body too large"}`, got.body)
	assert.Equal(t, 413, e.post(t, headers("X-Api-Key", "k"), []byte("0123456789A"), true).status)
	// The limit applies before the credentials are looked at.
	assert.Equal(t, 413, e.post(t, headers(), []byte("0123456789A"), false).status)
	assert.Equal(t, 2, e.next.count())

	// A lower limit set around Verify with http.MaxBytesHandler is answered like its own.
	r := httptest.NewRequest(http.MethodPost, "/", io.MultiReader(strings.NewReader("0123456789A")))
	r.ContentLength = -1
	r.Header.Set("X-Api-Key", "k")
	w := httptest.NewRecorder()
	http.MaxBytesHandler(signature.Verify(v)(e.next), 10).ServeHTTP(w, r)
	assert.Equal(t, 413, w.Code)
	assert.JSONEq(t, `{"error":"request body too large"}`, w.Body.String())
	assert.Equal(t, 2, e.next.count())
}

// TestLargestBodyLimit: a limit of math.MaxInt64 is a limit nothing passes, not one whose
// "one byte more" wraps around and reads nothing.
func TestLargestBodyLimit(t *testing.T) {
	v := signature.Must(signature.APIKey("X-Api-Key", "k"))
	e := newEndpoint(t, v, signature.WithMaxBodyBytes(math.MaxInt64))
	body := bytes.Repeat([]byte("x"), 70<<10)
	for _, chunked := range []bool{false, true} {
		assert.Equal(t, 200, e.post(t, headers("X-Api-Key", "k"), body, chunked).status)
		e.next.mu.Lock()
		got := e.next.bodies[len(e.next.bodies)-1]
		e.next.mu.Unlock()
		assert.Equal(t, body, got, "chunked %v", chunked)
	}
}

func TestVerifyPanicsOnBadConfiguration(t *testing.T) {
	v := signature.Must(signature.APIKey("X-Api-Key", "k"))
	assert.Panics(t, func() { signature.Verify(nil) })
	assert.Panics(t, func() { signature.Verify(v, signature.WithMaxBodyBytes(0)) })
	assert.Panics(t, func() { signature.Verify(v, nil) })
	assert.Panics(t, func() { signature.Verify(v)(nil) })
	for _, kv := range []attribute.KeyValue{attribute.String("", "x"), attribute.String("scheme", "x"), attribute.String("reason", "x")} {
		assert.Panics(t, func() { signature.Verify(v, signature.WithMetricAttributes(kv)) }, string(kv.Key))
	}
	assert.Panics(t, func() {
		signature.Verify(v, signature.WithMetricAttributes(attribute.String("intake", "/a")),
			signature.WithMetricAttributes(attribute.String("intake", "/b")))
	}, "one key twice")
}

// unreadable is a body that fails midway, like a client that goes away.
type unreadable struct{}

func (unreadable) Read([]byte) (int, error) { return 0, errors.New("connection reset") }
func (unreadable) Close() error             { return nil }

func TestUnreadableBody(t *testing.T) {
	var got error
	h := signature.Verify(signature.Must(signature.APIKey("X-Api-Key", "k")),
		signature.WithOnReject(func(_ *http.Request, err error) { got = err }))(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("next handler called")
	}))
	for _, cl := range []int64{-1, 10} {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Body, r.ContentLength = unreadable{}, cl
		r.Header.Set("X-Api-Key", "k")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		assert.Equal(t, http.StatusBadRequest, w.Code)
		assert.ErrorIs(t, got, signature.ErrUnreadable)
		assert.Equal(t, signature.ReasonUnreadable, signature.Reason(got))
	}
}

func TestVerifyRequest(t *testing.T) {
	v := signature.Must(signature.GitHub(githubSecret))
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(githubPayload))
	r.Header.Set("X-Hub-Signature-256", githubSignature)
	id, err := signature.VerifyRequest(v, r, 0)
	require.NoError(t, err)
	assert.Equal(t, signature.SchemeGitHub, id.Scheme)
	again, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	assert.Equal(t, githubPayload, string(again), "the body can be read again")
	b, ok := signature.BodyBytes(r)
	require.True(t, ok)
	assert.Equal(t, githubPayload, string(b))

	// A second verification reuses the buffered body.
	_, err = signature.VerifyRequest(v, r, 0)
	require.NoError(t, err)

	r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(githubPayload))
	r.Header.Set("X-Hub-Signature-256", githubSignature)
	_, err = signature.VerifyRequest(v, r, 5)
	assert.ErrorIs(t, err, signature.ErrTooLarge)
	// A limit of 0 is DefaultMaxBodyBytes, held while reading a body of no stated length.
	r = httptest.NewRequest(http.MethodPost, "/", io.MultiReader(bytes.NewReader(make([]byte, signature.DefaultMaxBodyBytes+1))))
	r.ContentLength = -1
	r.Header.Set("X-Hub-Signature-256", githubSignature)
	_, err = signature.VerifyRequest(v, r, 0)
	assert.ErrorIs(t, err, signature.ErrTooLarge)
	_, err = signature.VerifyRequest(v, r, -1)
	assert.Error(t, err)
	_, err = signature.VerifyRequest(nil, r, 0)
	assert.Error(t, err)
}

// A request built as a client's, over a reader of no known size, has ContentLength 0 and a body:
// both VerifyRequest and Verify read it to the end instead of taking it for empty.
func TestUnknownLengthBodyIsRead(t *testing.T) {
	for _, v := range []signature.Verifier{
		signature.Must(signature.APIKey("X-Api-Key", "k")),
		signature.Must(signature.GitHub(githubSecret)),
	} {
		newRequest := func() *http.Request {
			r, err := http.NewRequest(http.MethodPost, "http://x/", io.MultiReader(strings.NewReader(githubPayload)))
			require.NoError(t, err)
			require.Zero(t, r.ContentLength)
			r.Header.Set("X-Api-Key", "k")
			r.Header.Set("X-Hub-Signature-256", githubSignature)
			return r
		}
		r := newRequest()
		_, err := signature.VerifyRequest(v, r, 0)
		require.NoError(t, err)
		got, err := io.ReadAll(r.Body)
		require.NoError(t, err)
		assert.Equal(t, githubPayload, string(got))

		var seen []byte
		w := httptest.NewRecorder()
		signature.Verify(v)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen, _ = io.ReadAll(r.Body)
		})).ServeHTTP(w, newRequest())
		require.Equal(t, http.StatusOK, w.Code)
		assert.Equal(t, githubPayload, string(seen))

		r = newRequest()
		_, err = signature.VerifyRequest(v, r, 5)
		assert.ErrorIs(t, err, signature.ErrTooLarge, "the limit holds without a length")
	}
}

func TestNestedVerifyReusesBody(t *testing.T) {
	body := []byte(githubPayload)
	var seen []byte
	inner := signature.Verify(signature.Must(signature.GitHub(githubSecret)))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = signature.BodyBytes(r)
	}))
	var outerBody []byte
	outer := signature.Verify(signature.Must(signature.APIKey("X-Api-Key", "k")))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		outerBody, _ = signature.BodyBytes(r)
		inner.ServeHTTP(w, r)
	}))
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	r.Header.Set("X-Api-Key", "k")
	r.Header.Set("X-Hub-Signature-256", githubSignature)
	w := httptest.NewRecorder()
	outer.ServeHTTP(w, r)
	require.Equal(t, 200, w.Code)
	require.Equal(t, body, seen)
	assert.Same(t, &outerBody[0], &seen[0], "the inner layer takes the outer layer's bytes without copying")
}

func TestBody(t *testing.T) {
	b := signature.NewBody([]byte("hello world"))
	p := make([]byte, 5)
	n, err := b.Read(p)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(p[:n]))
	assert.Equal(t, 6, b.Len())
	var sb strings.Builder
	m, err := io.Copy(&sb, b)
	require.NoError(t, err)
	assert.Equal(t, int64(6), m)
	assert.Equal(t, " world", sb.String())
	n, err = b.Read(p)
	assert.Equal(t, 0, n)
	assert.Equal(t, io.EOF, err)
	assert.Equal(t, "hello world", string(b.Bytes()), "Bytes returns the whole body after reads")
	assert.NoError(t, b.Close())
	_, ok := signature.BodyBytes(httptest.NewRequest(http.MethodPost, "/", strings.NewReader("x")))
	assert.False(t, ok)
	_ = strconv.Itoa
}

// A body that arrives too slowly for the server's ReadTimeout is answered 503 with Retry-After
// and Connection: close, so that the sender retries; a body that cannot be read for another
// reason stays 400.
func TestSlowBodyIsRetryable(t *testing.T) {
	v := signature.Must(signature.GitHub(githubSecret))
	var reason string
	srv := httptest.NewUnstartedServer(signature.Verify(v, signature.WithOnReject(func(_ *http.Request, err error) {
		reason = signature.Reason(err)
	}))(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("passed on") })))
	// The worst case: the write deadline passes together with the read one.
	srv.Config.ReadTimeout = 200 * time.Millisecond
	srv.Config.WriteTimeout = 200 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(20*time.Second)))
	_, err = io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: "+githubSignature+"\r\nContent-Length: 100\r\n\r\n{\"a\":")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	assert.True(t, resp.Close, "Connection: close")
	assert.JSONEq(t, `{"error":"request body did not arrive in time, retry later"}`, string(body))
	assert.Equal(t, signature.ReasonUnreadable, reason)

	// A body that breaks for another reason is still 400.
	e := newEndpoint(t, v)
	r := httptest.NewRequest(http.MethodPost, "/", unreadable{})
	r.Header.Set("X-Hub-Signature-256", githubSignature)
	w := httptest.NewRecorder()
	signature.Verify(v)(e.next).ServeHTTP(w, r)
	assert.Equal(t, http.StatusBadRequest, w.Code)
}
