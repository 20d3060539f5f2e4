package eventbridge_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/signature"
)

// The benchmarks put the Handler next to "tutorial" code, the way webhook receivers are usually
// written: io.ReadAll, json.Unmarshal into map[string]any, type assertions, json.Marshal of the
// body, and json.NewEncoder for the answer. Pairs run interleaved in one benchmark so that the
// ratio they report is measured under the same machine load.

var benchSamples = []string{
	"v2.conversations.transcription.json",          // 2.3 KB
	"v2.audits.entitytype.OAuthClient.delete.json", // 1.8 KB
	"v2.detail.events.conversation.customer.end.json",
}

var noop = eventbridge.DispatcherFunc(func(context.Context, *fanbridge.Event) error { return nil })

func tutorialHandler(d eventbridge.Dispatcher) http.Handler { return tutorialSignedHandler(d, nil) }

// tutorialSignedHandler checks a hex HMAC-SHA256 of the body in X-Genesys-Event-Signature when
// secret is set, with hmac.New per request, as the tutorials do.
func tutorialSignedHandler(d eventbridge.Dispatcher, secret []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		if secret != nil {
			mac := hmac.New(sha256.New, secret)
			mac.Write(body)
			expected := hex.EncodeToString(mac.Sum(nil))
			if !hmac.Equal([]byte(expected), []byte(r.Header.Get("X-Genesys-Event-Signature"))) {
				http.Error(w, "invalid signature", http.StatusUnauthorized)
				return
			}
		}
		var envelope map[string]any
		if err := json.Unmarshal(body, &envelope); err != nil {
			http.Error(w, "invalid JSON", http.StatusBadRequest)
			return
		}
		id, _ := envelope["id"].(string)
		detailType, _ := envelope["detail-type"].(string)
		source, _ := envelope["source"].(string)
		account, _ := envelope["account"].(string)
		region, _ := envelope["region"].(string)
		when, _ := envelope["time"].(string)
		detail, _ := envelope["detail"].(map[string]any)
		topic, _ := detail["topicName"].(string)
		meta, _ := detail["metadata"].(map[string]any)
		correlation, _ := meta["CorrelationId"].(string)
		t, _ := time.Parse(time.RFC3339, when)
		data, err := json.Marshal(detail["eventBody"])
		if err != nil || id == "" || detailType == "" {
			http.Error(w, "invalid event", http.StatusBadRequest)
			return
		}
		e := &fanbridge.Event{ID: id, Type: detailType, Topic: topic, Source: source, Time: t, Data: data, Raw: body,
			Metadata: map[string]string{"account": account, "region": region, "correlation-id": correlation}}
		if err := d.Dispatch(r.Context(), e); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "delivered", "id": id})
	})
}

// discardWriter is the smallest ResponseWriter: it keeps the status and drops the body.
type discardWriter struct {
	header http.Header
	code   int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// replayBody serves the same bytes to every request, as a plain reader (it has no Bytes method, so
// the Handler reads it like any network body).
type replayBody struct{ r bytes.Reader }

func (b *replayBody) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *replayBody) Close() error               { return nil }

// requestLoop returns a function that serves one request with body to h and checks the answer.
func requestLoop(tb testing.TB, h http.Handler, body []byte, prepare func(*http.Request)) func() {
	req := httptest.NewRequest(http.MethodPost, "/events", nil)
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = int64(len(body))
	rb := &replayBody{}
	w := &discardWriter{header: make(http.Header)}
	return func() {
		rb.r.Reset(body)
		req.Body = rb
		if prepare != nil {
			prepare(req)
		}
		clear(w.header)
		w.code = 0
		h.ServeHTTP(w, req)
		if w.code != 0 && w.code != http.StatusOK {
			tb.Fatalf("status %d", w.code)
		}
	}
}

// pair runs ours and theirs interleaved, b.N times each, and reports both costs and the ratios.
func pair(b *testing.B, ours, theirs func()) {
	oursAllocs := testing.AllocsPerRun(200, ours)
	theirsAllocs := testing.AllocsPerRun(200, theirs)
	b.ReportAllocs()
	b.ResetTimer()
	var oursTime, theirsTime time.Duration
	const chunk = 32
	for done := 0; done < b.N; done += chunk {
		n := min(chunk, b.N-done)
		start := time.Now()
		for range n {
			ours()
		}
		mid := time.Now()
		for range n {
			theirs()
		}
		oursTime += mid.Sub(start)
		theirsTime += time.Since(mid)
	}
	b.ReportMetric(float64(oursTime.Nanoseconds())/float64(b.N), "ns/fanbridge")
	b.ReportMetric(float64(theirsTime.Nanoseconds())/float64(b.N), "ns/tutorial")
	b.ReportMetric(float64(theirsTime)/float64(oursTime), "x-faster")
	b.ReportMetric(oursAllocs, "allocs/fanbridge")
	b.ReportMetric(theirsAllocs, "allocs/tutorial")
	b.ReportMetric(oursAllocs/theirsAllocs, "alloc-ratio")
}

func BenchmarkHandler(b *testing.B) {
	for _, name := range benchSamples {
		body := readSample(b, name)
		h, err := eventbridge.NewHandler(noop)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/fanbridge", func(b *testing.B) {
			serve := requestLoop(b, h, body, nil)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				serve()
			}
		})
		b.Run(name+"/tutorial", func(b *testing.B) {
			serve := requestLoop(b, tutorialHandler(noop), body, nil)
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				serve()
			}
		})
	}
}

// BenchmarkHandlerVsTutorial reports x-faster (tutorial time / Handler time) and alloc-ratio
// (Handler allocations / tutorial allocations) for decode + dispatch to a no-op Dispatcher.
func BenchmarkHandlerVsTutorial(b *testing.B) {
	for _, name := range benchSamples {
		body := readSample(b, name)
		h, err := eventbridge.NewHandler(noop)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			pair(b, requestLoop(b, h, body, nil), requestLoop(b, tutorialHandler(noop), body, nil))
		})
	}
}

// BenchmarkHandlerLargeVsTutorial is BenchmarkHandlerVsTutorial for events above the 16 KiB that
// are read straight into one slice: a conversation with many participants, and one near the
// EventBridge limit of 256 KiB.
func BenchmarkHandlerLargeVsTutorial(b *testing.B) {
	h, err := eventbridge.NewHandler(noop)
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{40 << 10, 250 << 10} {
		body := []byte(`{"version":"0","id":"7bf73129-1428-4cd3-a780-95db273d1602","detail-type":"v2.users.{id}.activity",` +
			`"source":"aws.partner/genesys.com/cloud/cf6cb7d5-d0ea-45b5-b0cf-73ad5f5b8721/DA-VOICE-SB","account":"765425735388",` +
			`"time":"2026-03-19T22:04:48Z","region":"us-east-2","resources":[],` +
			`"detail":{"topicName":"v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.activity","eventBody":{"notes":"` +
			strings.Repeat("x", size) + `"}}}`)
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			pair(b, requestLoop(b, h, body, nil), requestLoop(b, tutorialHandler(noop), body, nil))
		})
	}
}

// BenchmarkVerifyHandlerVsTutorial puts signature.Verify (HMAC-SHA256, hex) in front of the
// Handler and compares it with tutorial code that computes hmac.New per request before
// unmarshalling.
func BenchmarkVerifyHandlerVsTutorial(b *testing.B) {
	const secret = "s3cr3t-shared-with-the-signing-proxy"
	scheme := signature.HMACScheme{Header: "X-Genesys-Event-Signature", Encoding: signature.Hex}
	v, err := signature.HMAC(scheme, secret)
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range benchSamples {
		body := readSample(b, name)
		sig, err := signature.SignHMAC(scheme, secret, body)
		if err != nil {
			b.Fatal(err)
		}
		signed := func(r *http.Request) { r.Header["X-Genesys-Event-Signature"] = []string{sig} }
		h, err := eventbridge.NewHandler(noop)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			pair(b, requestLoop(b, signature.Verify(v)(h), body, signed),
				requestLoop(b, tutorialSignedHandler(noop, []byte(secret)), body, signed))
		})
	}
}

// BenchmarkHTTPVsTutorial runs both over real HTTP on loopback (client and server in this
// process, keep-alive), where the network stack's share of the cost is included in both.
func BenchmarkHTTPVsTutorial(b *testing.B) {
	body := readSample(b, benchSamples[0])
	h, err := eventbridge.NewHandler(noop)
	if err != nil {
		b.Fatal(err)
	}
	ours := httptest.NewServer(h)
	defer ours.Close()
	theirs := httptest.NewServer(tutorialHandler(noop))
	defer theirs.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	send := func(url string) func() {
		return func() {
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	}
	pair(b, send(ours.URL), send(theirs.URL))
}

// BenchmarkDecode compares Decode alone with json.Unmarshal into map[string]any.
func BenchmarkDecode(b *testing.B) {
	for _, name := range benchSamples {
		body := readSample(b, name)
		b.Run(name, func(b *testing.B) {
			pair(b, func() {
				if _, err := eventbridge.Decode(body, "application/json"); err != nil {
					b.Fatal(err)
				}
			}, func() {
				var m map[string]any
				if err := json.Unmarshal(body, &m); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

func BenchmarkDecodeNotification(b *testing.B) {
	body := readSample(b, "websocket.v2.users.activity.REPAIRED.json")
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := eventbridge.DecodeNotification(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTopicTemplate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if eventbridge.TopicTemplate("v2.audits.entitytype.UserPresence.entityid.278522be-1683-4877-8257-4164a177be89") == "" {
			b.Fatal("no template")
		}
	}
}
