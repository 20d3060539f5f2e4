package signature_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fanbridge/fanbridge/signature"
)

// benchBody is a 2.7 KB Genesys event: the transcription sample, padded with JSON whitespace.
func benchBody(b *testing.B) []byte {
	body := readSample(b, "v2.conversations.transcription.json")
	if len(body) < 2700 {
		body = append(body, bytes.Repeat([]byte(" "), 2700-len(body))...)
	}
	return body[:2700]
}

// rewindBody lets one request be served b.N times.
type rewindBody struct{ *bytes.Reader }

func (rewindBody) Close() error { return nil }

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark measures the middleware.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// tutorialHMAC is the verification the tutorials write: read the body with io.ReadAll, build an
// HMAC per request, hex-encode it and compare the strings.
func tutorialHMAC(header, secret string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		expected := hex.EncodeToString(mac.Sum(nil))
		if !hmac.Equal([]byte(r.Header.Get(header)), []byte(expected)) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// tutorialStandardWebhooks follows the reference Go library of the Standard Webhooks project: the
// secret is decoded once; per request the signed content is formatted with fmt.Sprintf, an HMAC is
// built, base64-encoded, and compared with each entry of the split header.
func tutorialStandardWebhooks(secret string, now func() time.Time, next http.Handler) http.Handler {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		panic(err)
	}
	verify := func(body []byte, h http.Header) error {
		id, sigs, tsHeader := h.Get("webhook-id"), h.Get("webhook-signature"), h.Get("webhook-timestamp")
		if id == "" || sigs == "" || tsHeader == "" {
			return errors.New("missing headers")
		}
		n, err := strconv.ParseInt(tsHeader, 10, 64)
		if err != nil {
			return err
		}
		ts := time.Unix(n, 0)
		if now().Sub(ts) > 5*time.Minute || ts.Sub(now()) > 5*time.Minute {
			return errors.New("timestamp")
		}
		toSign := fmt.Sprintf("%s.%d.%s", id, ts.Unix(), body)
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(toSign))
		expected := []byte(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
		for _, s := range strings.Split(sigs, " ") {
			parts := strings.Split(s, ",")
			if len(parts) < 2 || parts[0] != "v1" {
				continue
			}
			if hmac.Equal([]byte(parts[1]), expected) {
				return nil
			}
		}
		return errors.New("no match")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		if err := verify(body, r.Header); err != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// benchRequest is one request served again and again: its body is rewound before each use.
type benchRequest struct {
	req  *http.Request
	rd   *bytes.Reader
	body []byte
	w    *discardWriter
}

func newBenchRequest(header http.Header, body []byte) *benchRequest {
	rd := bytes.NewReader(body)
	req := httptest.NewRequest(http.MethodPost, "/events", nil)
	req.Header = header
	req.ContentLength = int64(len(body))
	return &benchRequest{req: req, rd: rd, body: body, w: &discardWriter{h: http.Header{}}}
}

func (br *benchRequest) serve(h http.Handler) {
	br.rd.Reset(br.body)
	br.req.Body = rewindBody{br.rd}
	h.ServeHTTP(br.w, br.req)
}

// pair measures tutorial-style code and fanbridge on the same request. The sub-benchmarks
// "tutorial" and "fanbridge" give each one's time and allocations; "interleaved" alternates the
// two in small chunks inside one loop, so that both see the same load on a shared machine, and
// reports their times and the ratio tutorial/fanbridge as "x-faster".
func pair(b *testing.B, header http.Header, body []byte, tutorial, ours func(next http.Handler) http.Handler) {
	var accepted int
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { accepted++ })
	tut, our := tutorial(next), ours(next)
	run := func(b *testing.B, h http.Handler) {
		br := newBenchRequest(header, body)
		accepted = 0
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			br.serve(h)
		}
		b.StopTimer()
		if accepted != b.N {
			b.Fatalf("accepted %d of %d requests", accepted, b.N)
		}
	}
	b.Run("tutorial", func(b *testing.B) { run(b, tut) })
	b.Run("fanbridge", func(b *testing.B) { run(b, our) })
	b.Run("interleaved", func(b *testing.B) {
		br := newBenchRequest(header, body)
		accepted = 0
		const chunk = 32
		var tTut, tOur time.Duration
		b.ResetTimer()
		for done := 0; done < b.N; done += chunk {
			n := min(chunk, b.N-done)
			t0 := time.Now()
			for j := 0; j < n; j++ {
				br.serve(tut)
			}
			t1 := time.Now()
			for j := 0; j < n; j++ {
				br.serve(our)
			}
			tTut += t1.Sub(t0)
			tOur += time.Since(t1)
		}
		b.StopTimer()
		if accepted != 2*b.N {
			b.Fatalf("accepted %d of %d requests", accepted, 2*b.N)
		}
		b.ReportMetric(float64(tTut.Nanoseconds())/float64(b.N), "tutorial-ns/op")
		b.ReportMetric(float64(tOur.Nanoseconds())/float64(b.N), "fanbridge-ns/op")
		b.ReportMetric(float64(tTut)/float64(tOur), "x-faster")
	})
}

func BenchmarkVerifyHMAC(b *testing.B) {
	body := benchBody(b)
	const secret = "tutorial-secret-value"
	scheme := signature.HMACScheme{Header: "X-Genesys-Event-Signature", Encoding: signature.Hex}
	sig, err := signature.SignHMAC(scheme, secret, body)
	if err != nil {
		b.Fatal(err)
	}
	header := http.Header{"X-Genesys-Event-Signature": {sig}}
	pair(b, header, body,
		func(next http.Handler) http.Handler { return tutorialHMAC(scheme.Header, secret, next) },
		signature.Verify(signature.Must(signature.HMAC(scheme, secret))))
}

func BenchmarkVerifyStandardWebhooks(b *testing.B) {
	body := benchBody(b)
	header := swHeader(b, testMessage, testNow, body, secretA)
	pair(b, header, body,
		func(next http.Handler) http.Handler { return tutorialStandardWebhooks(secretA, fixedClock, next) },
		signature.Verify(signature.Must(signature.StandardWebhooks([]string{secretA}, signature.WithClock(fixedClock)))))
}

// tutorialAPIKey is the API key check the tutorials write: read the body, compare the header with
// ==, hand the body on.
func tutorialAPIKey(header, key string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		if r.Header.Get(header) != key {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// BenchmarkVerifyAPIKey is the Amazon EventBridge API destination case: an API key header and a
// 2.7 KB body. "wrong key" measures a refused request, whose body Verify does not read.
func BenchmarkVerifyAPIKey(b *testing.B) {
	body := benchBody(b)
	const key = "eventbridge-connection-key"
	ours := signature.Verify(signature.Must(signature.APIKey("X-Api-Key", key)))
	pair(b, http.Header{"X-Api-Key": {key}}, body,
		func(next http.Handler) http.Handler { return tutorialAPIKey("X-Api-Key", key, next) }, ours)
	b.Run("wrong key", func(b *testing.B) {
		h := ours(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { b.Fatal("accepted a wrong key") }))
		br := newBenchRequest(http.Header{"X-Api-Key": {"wrong"}}, body)
		b.ReportAllocs()
		for b.Loop() {
			br.w.h = http.Header{}
			br.serve(h)
		}
	})
}

// BenchmarkVerifier measures the verifiers alone, without HTTP or body reading.
func BenchmarkVerifier(b *testing.B) {
	body := benchBody(b)
	ctx := context.Background()
	gh := signature.Must(signature.GitHub("gh-secret"))
	ghSig, _ := signature.SignGitHub("gh-secret", body)
	pub := signature.Must(signature.StandardWebhooks([]string{publicC}, signature.WithClock(fixedClock)))
	for _, tc := range []struct {
		name string
		v    signature.Verifier
		h    http.Header
	}{
		{"apikey", signature.Must(signature.APIKey("X-Api-Key", "k1", "k2")), http.Header{"X-Api-Key": {"k2"}}},
		{"basic", signature.Must(signature.Basic(map[string]string{"eventbridge": "secret:pass"})), http.Header{"Authorization": {basicAuth("eventbridge:secret:pass")}}},
		{"github", gh, http.Header{"X-Hub-Signature-256": {ghSig}}},
		{"standard-webhooks-v1", signature.Must(signature.StandardWebhooks([]string{secretA}, signature.WithClock(fixedClock))), swHeader(b, testMessage, testNow, body, secretA)},
		{"standard-webhooks-v1a", pub, swHeader(b, testMessage, testNow, body, signingC)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := tc.v.Verify(ctx, tc.h, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
