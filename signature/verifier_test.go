package signature_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/fanbridge/fanbridge/internal/testwait"
	"github.com/fanbridge/fanbridge/signature"
)

func TestConstructorsRejectBadConfiguration(t *testing.T) {
	short := "whsec_" + "c2hvcnQ=" // "short": under the 24 bytes the specification requires
	for name, build := range map[string]func() (signature.Verifier, error){
		"apikey no keys":      func() (signature.Verifier, error) { return signature.APIKey("X-Api-Key") },
		"apikey empty key":    func() (signature.Verifier, error) { return signature.APIKey("X-Api-Key", "a", "") },
		"apikey repeated key": func() (signature.Verifier, error) { return signature.APIKey("X-Api-Key", "a", "a") },
		"apikey spaced key":   func() (signature.Verifier, error) { return signature.APIKey("X-Api-Key", "a ") },
		"apikey empty header": func() (signature.Verifier, error) { return signature.APIKey("", "a") },
		"apikey bad header":   func() (signature.Verifier, error) { return signature.APIKey("X Api", "a") },
		"apikey in Host":      func() (signature.Verifier, error) { return signature.APIKey("host", "a") },
		"hmac in Transfer-Encoding": func() (signature.Verifier, error) {
			return signature.HMAC(signature.HMACScheme{Header: "Transfer-Encoding", Encoding: signature.Hex}, "s")
		},
		"basic no users":          func() (signature.Verifier, error) { return signature.Basic(nil) },
		"basic colon in user":     func() (signature.Verifier, error) { return signature.Basic(map[string]string{"a:b": "c"}) },
		"basic empty user":        func() (signature.Verifier, error) { return signature.Basic(map[string]string{"": "c"}) },
		"basic empty password":    func() (signature.Verifier, error) { return signature.Basic(map[string]string{"a": ""}) },
		"basic control in user":   func() (signature.Verifier, error) { return signature.Basic(map[string]string{"a\n": "c"}) },
		"bearer no tokens":        func() (signature.Verifier, error) { return signature.Bearer() },
		"bearer empty token":      func() (signature.Verifier, error) { return signature.Bearer("") },
		"bearer control in token": func() (signature.Verifier, error) { return signature.Bearer("a\x01b") },
		"bearer token too long":   func() (signature.Verifier, error) { return signature.Bearer(strings.Repeat("t", 4097)) },
		"apikey control in key":   func() (signature.Verifier, error) { return signature.APIKey("X-Api-Key", "a\nb") },
		"apikey DEL in key":       func() (signature.Verifier, error) { return signature.APIKey("X-Api-Key", "a\x7fb") },
		"basic credentials too long": func() (signature.Verifier, error) {
			// "u:" and 3,070 bytes are 3,072 bytes, 4,096 once in base64; one more is too many.
			return signature.Basic(map[string]string{"u": strings.Repeat("p", 3071)})
		},
		"bearerfunc nil":       func() (signature.Verifier, error) { return signature.BearerFunc(nil) },
		"hmac no secrets":      func() (signature.Verifier, error) { return signature.GitHub() },
		"hmac empty secret":    func() (signature.Verifier, error) { return signature.GitHub("") },
		"hmac repeated secret": func() (signature.Verifier, error) { return signature.GitHub("a", "a") },
		"hmac no header": func() (signature.Verifier, error) {
			return signature.HMAC(signature.HMACScheme{Encoding: signature.Hex}, "s")
		},
		"hmac no encoding": func() (signature.Verifier, error) { return signature.HMAC(signature.HMACScheme{Header: "X-Sig"}, "s") },
		"hmac bad hash": func() (signature.Verifier, error) {
			return signature.HMAC(signature.HMACScheme{Header: "X-Sig", Encoding: signature.Hex, Hash: 9}, "s")
		},
		"hmac prefix with space": func() (signature.Verifier, error) {
			return signature.HMAC(signature.HMACScheme{Header: "X-Sig", Encoding: signature.Hex, Prefix: "a b"}, "s")
		},
		"sw no keys":          func() (signature.Verifier, error) { return signature.StandardWebhooks(nil) },
		"sw short secret":     func() (signature.Verifier, error) { return signature.StandardWebhooks([]string{short}) },
		"sw not base64":       func() (signature.Verifier, error) { return signature.StandardWebhooks([]string{"whsec_***"}) },
		"sw signing key":      func() (signature.Verifier, error) { return signature.StandardWebhooks([]string{signingC}) },
		"sw short public key": func() (signature.Verifier, error) { return signature.StandardWebhooks([]string{"whpk_c2hvcnQ="}) },
		"sw repeated key":     func() (signature.Verifier, error) { return signature.StandardWebhooks([]string{secretA, secretA}) },
		"sw 23-byte secret": func() (signature.Verifier, error) {
			// One byte short of the minimum; the published vector's secret has exactly 24.
			return signature.StandardWebhooks([]string{"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 23))})
		},
		"sw zero tolerance": func() (signature.Verifier, error) {
			return signature.StandardWebhooks([]string{secretA}, signature.WithTolerance(0))
		},
		"sw nil clock": func() (signature.Verifier, error) {
			return signature.StandardWebhooks([]string{secretA}, signature.WithClock(nil))
		},
		"sw nil option": func() (signature.Verifier, error) { return signature.StandardWebhooks([]string{secretA}, nil) },
		"any empty":     func() (signature.Verifier, error) { return signature.Any() },
		"any nil":       func() (signature.Verifier, error) { return signature.Any(nil) },
	} {
		t.Run(name, func(t *testing.T) {
			v, err := build()
			assert.Error(t, err)
			assert.Nil(t, v)
		})
	}
	assert.Panics(t, func() { signature.Must(signature.Bearer()) })
	_, err := signature.NewMemoryReplayCache(0)
	assert.Error(t, err)
}

// TestLongestCredentials: a credential is refused at construction exactly when no request could
// present it, so every verifier that builds accepts its own credentials, and the error names the
// credential without showing it.
func TestLongestCredentials(t *testing.T) {
	ctx := context.Background()
	pass := strings.Repeat("p", 3070) // "u:" + 3,070 bytes = 4,096 bytes of base64
	basic, err := signature.Basic(map[string]string{"u": pass})
	require.NoError(t, err)
	id, err := basic.Verify(ctx, headers("Authorization", basicAuth("u:"+pass)), nil)
	require.NoError(t, err)
	assert.Equal(t, "u", id.User)

	token := strings.Repeat("t", 4096)
	bearer, err := signature.Bearer("short", token)
	require.NoError(t, err)
	id, err = bearer.Verify(ctx, headers("Authorization", "Bearer "+token), nil)
	require.NoError(t, err)
	assert.Equal(t, 1, id.Key)

	key := "tab\tinside"
	apiKey, err := signature.APIKey("X-Api-Key", key)
	require.NoError(t, err)
	_, err = apiKey.Verify(ctx, headers("X-Api-Key", key), nil)
	require.NoError(t, err)

	for _, build := range []func() error{
		func() error { _, err := signature.Basic(map[string]string{"u": pass + "SECRETMARK"}); return err },
		func() error { _, err := signature.Bearer("short", token+"SECRETMARK"); return err },
		func() error { _, err := signature.APIKey("X-Api-Key", "SECRETMARK\n"); return err },
	} {
		err := build()
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "SECRETMARK")
		assert.NotContains(t, err.Error(), "ppppp")
	}
}

// TestBasicUserNamesInErrors: a construction error names the user, but never what follows a
// colon in the name (often "user:password" given as the name), and never more than 64 bytes.
func TestBasicUserNamesInErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		users map[string]string
		shown string
	}{
		"colon":           {map[string]string{"eventbridge:SECRETMARK": "p"}, `"eventbridge"…`},
		"long name":       {map[string]string{strings.Repeat("n", 100) + "\n": "p"}, `"` + strings.Repeat("n", 64) + `"…`},
		"empty password":  {map[string]string{"ops": ""}, `"ops"`},
		"long with colon": {map[string]string{strings.Repeat("n", 10) + ":" + strings.Repeat("SECRETMARK", 10): "p"}, `"nnnnnnnnnn"…`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := signature.Basic(tc.users)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.shown)
			assert.NotContains(t, err.Error(), "SECRETMARK")
			assert.NotContains(t, err.Error(), strings.Repeat("n", 65))
		})
	}
}

func TestSignersRejectBadInput(t *testing.T) {
	_, err := signature.SignGitHub("", nil)
	assert.Error(t, err)
	_, err = signature.SignHMAC(signature.HMACScheme{Header: "X"}, "s", nil)
	assert.Error(t, err)
	for name, key := range map[string]string{"public key": publicC, "garbage": "whsk_***", "short seed": "whsk_c2hvcnQ=", "short secret": "whsec_c2hvcnQ="} {
		_, err = signature.SignStandardWebhooks(key, "msg", testNow, nil)
		assert.Error(t, err, name)
	}
	_, err = signature.SignStandardWebhooks(secretA, "", testNow, nil)
	assert.Error(t, err)
	_, err = signature.SignStandardWebhooks(secretA, "a.b", testNow, nil)
	assert.Error(t, err)
	assert.Error(t, signature.SignStandardWebhooksRequest(httptest.NewRequest("POST", "/", nil), "m", testNow, nil))
	_, err = signature.StandardWebhooksPublicKey(secretA)
	assert.Error(t, err)
}

func TestKeyGeneration(t *testing.T) {
	sec, err := signature.NewStandardWebhooksSecret()
	require.NoError(t, err)
	pub, sk, err := signature.NewStandardWebhooksKeyPair()
	require.NoError(t, err)
	derived, err := signature.StandardWebhooksPublicKey(sk)
	require.NoError(t, err)
	assert.Equal(t, pub, derived)

	// The secret second, so that Identity.Key shows which key a v1 signature matched.
	v, err := signature.StandardWebhooks([]string{pub, sec}, signature.WithClock(fixedClock))
	require.NoError(t, err)
	body := []byte("payload")
	for i, key := range []string{sk, sec} {
		id, err := v.Verify(context.Background(), swHeader(t, "msg", testNow, body, key), body)
		require.NoError(t, err)
		assert.Equal(t, i, id.Key)
	}
	// Both signatures in one header, as a sender rotating keys sends them.
	_, err = v.Verify(context.Background(), swHeader(t, "msg", testNow, body, secretB, sk), body)
	require.NoError(t, err)
}

func TestSvixHeadersCanBeTurnedOff(t *testing.T) {
	body := []byte("x")
	h := swHeader(t, "msg", testNow, body, secretA)
	for _, k := range []string{"Id", "Timestamp", "Signature"} {
		h.Set("Svix-"+k, h.Get("Webhook-"+k))
		h.Del("Webhook-" + k)
	}
	on := signature.Must(signature.StandardWebhooks([]string{secretA}, signature.WithClock(fixedClock)))
	off := signature.Must(signature.StandardWebhooks([]string{secretA}, signature.WithClock(fixedClock), signature.WithSvixHeaders(false)))
	_, err := on.Verify(context.Background(), h, body)
	assert.NoError(t, err)
	_, err = off.Verify(context.Background(), h, body)
	assert.ErrorIs(t, err, signature.ErrMissing)
}

func TestToleranceAndClock(t *testing.T) {
	now := testNow
	v := signature.Must(signature.StandardWebhooks([]string{secretA}, signature.WithTolerance(30*time.Second),
		signature.WithClock(func() time.Time { return now })))
	body := []byte("x")
	h := swHeader(t, "msg", testNow, body, secretA)
	for _, tc := range []struct {
		offset time.Duration
		want   error
	}{
		{0, nil}, {30 * time.Second, nil}, {-30 * time.Second, nil},
		{31 * time.Second, signature.ErrStale}, {-31 * time.Second, signature.ErrFuture},
		{time.Hour, signature.ErrStale}, {-time.Hour, signature.ErrFuture},
	} {
		now = testNow.Add(tc.offset)
		_, err := v.Verify(context.Background(), h, body)
		if tc.want == nil {
			assert.NoError(t, err, tc.offset)
		} else {
			assert.ErrorIs(t, err, tc.want, tc.offset)
		}
	}
}

func TestAnyErrors(t *testing.T) {
	ctx := context.Background()
	gh := signature.Must(signature.GitHub("s"))
	key := signature.Must(signature.APIKey("X-Api-Key", "k"))
	down := signature.VerifierFunc(func(context.Context, http.Header, []byte) (signature.Identity, error) {
		return signature.Identity{}, fmt.Errorf("store: %w", signature.ErrUnavailable)
	})
	any := signature.Must(signature.Any(gh, key))

	_, err := any.Verify(ctx, headers(), nil)
	assert.ErrorIs(t, err, signature.ErrMissing, "all missing")
	assert.Equal(t, signature.ReasonMissing, signature.Reason(err))

	_, err = any.Verify(ctx, headers("X-Api-Key", "wrong"), nil)
	assert.ErrorIs(t, err, signature.ErrMismatch)
	assert.NotErrorIs(t, err, signature.ErrMissing, "the verifier that found nothing does not count")

	_, err = any.Verify(ctx, headers("X-Api-Key", "wrong", "X-Hub-Signature-256", "junk"), nil)
	assert.ErrorIs(t, err, signature.ErrMismatch)
	assert.ErrorIs(t, err, signature.ErrMalformed)
	assert.Equal(t, signature.ReasonMismatch, signature.Reason(err))

	_, err = signature.Must(signature.Any(gh, down)).Verify(ctx, headers("X-Hub-Signature-256", "junk"), nil)
	assert.Equal(t, signature.ReasonUnavailable, signature.Reason(err), "unavailable outranks a rejection")

	id, err := any.Verify(ctx, headers("X-Api-Key", "k", "X-Hub-Signature-256", "junk"), nil)
	require.NoError(t, err, "one success is enough")
	assert.Equal(t, signature.SchemeAPIKey, id.Scheme)

	c, ok := signature.Must(signature.Any(signature.Must(signature.Basic(map[string]string{"u": "p"})), signature.Must(signature.Bearer("t")))).(signature.Challenger)
	require.True(t, ok)
	assert.Len(t, c.Challenge(), 2)
}

func TestReason(t *testing.T) {
	assert.Equal(t, "", signature.Reason(nil))
	assert.Equal(t, signature.ReasonOther, signature.Reason(errors.New("x")))
	assert.Equal(t, signature.ReasonStale, signature.Reason(fmt.Errorf("a: %w", signature.ErrStale)))
	assert.Equal(t, signature.ReasonReplayed, signature.Reason(signature.ErrReplayed))
}

// TestEverySecretIsCompared proves that verification compares the presented credential with every
// configured secret, matched or not, first or last: there is no early exit for timing to reveal.
func TestEverySecretIsCompared(t *testing.T) {
	var n int
	restore := signature.SetCompareHook(func() { n++ })
	defer restore()
	ctx := context.Background()
	body := []byte("body")
	users := map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"}
	// Any stops at a success only: a failure is compared with both passwords.
	rotation := signature.Must(signature.Any(signature.Must(signature.Basic(map[string]string{"a": "1"})),
		signature.Must(signature.Basic(map[string]string{"a": "2"}))))

	for _, tc := range []struct {
		name string
		v    signature.Verifier
		h    http.Header
		want int
	}{
		{"apikey first", signature.Must(signature.APIKey("K", "k1", "k2", "k3")), headers("K", "k1"), 3},
		{"apikey last", signature.Must(signature.APIKey("K", "k1", "k2", "k3")), headers("K", "k3"), 3},
		{"apikey none", signature.Must(signature.APIKey("K", "k1", "k2", "k3")), headers("K", "k4"), 3},
		{"bearer first", signature.Must(signature.Bearer("t1", "t2")), headers("Authorization", "Bearer t1"), 2},
		{"basic known user", signature.Must(signature.Basic(users)), headers("Authorization", basicAuth("a:1")), 4},
		{"basic unknown user", signature.Must(signature.Basic(users)), headers("Authorization", basicAuth("z:1")), 4},
		{"basic rotation none", rotation, headers("Authorization", basicAuth("a:3")), 2},
		{"hmac first", signature.Must(signature.GitHub("s1", "s2", "s3")), headers("X-Hub-Signature-256", hub(t, signature.GitHubScheme, "s1", body)), 3},
		{"hmac none", signature.Must(signature.GitHub("s1", "s2", "s3")), headers("X-Hub-Signature-256", hub(t, signature.GitHubScheme, "s4", body)), 3},
		{"sw first", signature.Must(signature.StandardWebhooks([]string{secretA, secretB}, signature.WithClock(fixedClock))), swHeader(t, "m", testNow, body, secretA), 2},
		{"sw none", signature.Must(signature.StandardWebhooks([]string{secretA, secretB}, signature.WithClock(fixedClock))), swHeader(t, "m", testNow, body, "whsec_"+strings.Repeat("A", 32)), 2},
	} {
		n = 0
		_, _ = tc.v.Verify(ctx, tc.h, body)
		assert.Equal(t, tc.want, n, tc.name)
	}
}

// ed25519Key returns the i-th of a set of fixed ed25519 keys: its public key (whpk_) and its
// signing key (whsk_).
func ed25519Key(i int) (public, signing string) {
	seed := make([]byte, ed25519.SeedSize)
	copy(seed, fmt.Sprintf("test ed25519 seed %d", i))
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	return "whpk_" + base64.StdEncoding.EncodeToString(pub), "whsk_" + base64.StdEncoding.EncodeToString(seed)
}

// TestV1aChecksAreBounded counts the ed25519 verifications that Standard Webhooks requests cost.
// Each one hashes the whole signed content, so a forged header full of v1a entries must not
// multiply them: at most the first three v1a entries are checked, each against each public key,
// while a sender that signs with every key it holds still verifies.
func TestV1aChecksAreBounded(t *testing.T) {
	var n int
	restore := signature.SetEd25519Hook(func() { n++ })
	defer restore()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body := bytes.Repeat([]byte("x"), 64<<10)

	// The receiver holds a secret and three public keys (indexes 1 to 3); keys 3 and 4 are the
	// sender's only.
	var pub, sign [5]string
	for i := range pub {
		pub[i], sign[i] = ed25519Key(i)
	}
	v := signature.Must(signature.StandardWebhooks([]string{secretA, pub[0], pub[1], pub[2]}, signature.WithClock(fixedClock)))
	forged := func(count int) string {
		entries := make([]string, count)
		for i := range entries {
			sig := make([]byte, ed25519.SignatureSize)
			sig[0] = byte(i) // every entry differs; S stays canonical, so each is hashed in full
			entries[i] = "v1a," + base64.StdEncoding.EncodeToString(sig)
		}
		return strings.Join(entries, " ")
	}
	signed := func(keys ...string) string {
		return swHeader(t, testMessage, testNow, body, keys...).Get("Webhook-Signature")
	}
	forgedV1 := "v1," + base64.StdEncoding.EncodeToString(make([]byte, sha256.Size))

	for _, tc := range []struct {
		name   string
		sig    string
		key    int // index of the key that verifies, or -1
		checks int
	}{
		{"16 forged v1a entries", forged(16), -1, 9},
		{"forged v1 entries beside forged v1a entries", strings.Repeat(forgedV1+" ", 12) + forged(4), -1, 9},
		{"one forged v1a entry", forged(1), -1, 3},
		{"signed with the first public key", signed(sign[0]), 1, 1},
		{"signed with the last public key", signed(sign[2]), 3, 3},
		{"rotation: old key and new key, both known", signed(sign[0], sign[1]), 1, 1},
		{"rotation: new key first, then the old one", signed(sign[1], sign[0]), 1, 2},
		{"three keys, only the third known", signed(sign[3], sign[4], sign[2]), 3, 9},
		{"a good entry after three forged ones is not checked", forged(3) + " " + signed(sign[0]), -1, 9},
		{"v1 verifies without ed25519", signed(secretA) + " " + forged(15), 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, ctx.Err())
			n = 0
			h := swHeader(t, testMessage, testNow, body, secretB)
			h.Set("Webhook-Signature", tc.sig)
			id, err := v.Verify(ctx, h, body)
			if tc.key < 0 {
				assert.ErrorIs(t, err, signature.ErrMismatch)
			} else if assert.NoError(t, err) {
				assert.Equal(t, tc.key, id.Key)
			}
			assert.Equal(t, tc.checks, n, "ed25519 verifications")
		})
	}
}

func TestReplayCacheThroughMiddleware(t *testing.T) {
	cache, err := signature.NewMemoryReplayCache(100)
	require.NoError(t, err)
	now := testNow
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	v := signature.Must(signature.StandardWebhooks([]string{secretA}, signature.WithClock(clock), signature.WithReplayCache(cache)))
	e := newEndpoint(t, v)
	body := []byte(`{"n":1}`)
	h := swHeader(t, "msg_replay", testNow, body, secretA)

	assert.Equal(t, 200, e.post(t, h, body, false).status)
	assert.Equal(t, 401, e.post(t, h, body, false).status)
	assert.ErrorIs(t, e.takeErr(), signature.ErrReplayed)
	assert.Equal(t, 1, e.next.count())
	// The sender's retry (of a message whose 200 it never saw) has the same id, but a new
	// timestamp and signature: it verifies, and the dispatcher's deduplication answers it.
	retried := swHeader(t, "msg_replay", testNow.Add(time.Second), body, secretA)
	assert.Equal(t, 200, e.post(t, retried, body, false).status)
	assert.Equal(t, 2, e.next.count())
	// Replaying the retry is refused like replaying the original.
	assert.Equal(t, 401, e.post(t, retried, body, false).status)
	assert.ErrorIs(t, e.takeErr(), signature.ErrReplayed)
	assert.Equal(t, 2, e.next.count())

	// A forged request with a fresh id does not reach the cache.
	assert.Equal(t, 401, e.post(t, swHeader(t, "msg_forged", testNow, body, secretB), body, false).status)
	assert.Equal(t, 2, cache.Len())

	// Once timestamp + tolerance has passed, the id is forgotten (and the old request is stale).
	mu.Lock()
	now = testNow.Add(5*time.Minute + time.Second)
	mu.Unlock()
	assert.Equal(t, 401, e.post(t, h, body, false).status)
	assert.ErrorIs(t, e.takeErr(), signature.ErrStale)
	assert.Equal(t, 200, e.post(t, swHeader(t, "msg_replay", now, body, secretA), body, false).status)
}

func TestReplayClaimReleasedWhenHandlerFails(t *testing.T) {
	cache, err := signature.NewMemoryReplayCache(100)
	require.NoError(t, err)
	v := signature.Must(signature.StandardWebhooks([]string{secretA}, signature.WithClock(fixedClock), signature.WithReplayCache(cache)))
	e := newEndpoint(t, v)
	body := []byte(`{"n":2}`)
	h := swHeader(t, "msg_retry", testNow, body, secretA)

	e.next.status = http.StatusServiceUnavailable
	assert.Equal(t, 503, e.post(t, h, body, false).status)
	assert.Zero(t, cache.Len(), "a message the handler did not accept is released")
	e.next.status = 0
	assert.Equal(t, 200, e.post(t, h, body, false).status, "so the sender's retry is accepted")
	assert.Equal(t, 1, cache.Len())
	assert.Equal(t, 401, e.post(t, h, body, false).status)

	// A panicking handler releases the claim too.
	panicking := signature.Verify(v)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	for k, vs := range swHeader(t, "msg_panic", testNow, body, secretA) {
		r.Header[k] = vs
	}
	assert.Panics(t, func() { panicking.ServeHTTP(httptest.NewRecorder(), r) })
	assert.Equal(t, 1, cache.Len())

	// A handler that returns without writing has answered 200: its claim is kept, so the same
	// request cannot be replayed.
	silent := signature.Verify(v)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	quiet := swHeader(t, "msg_silent", testNow, body, secretA)
	for i, want := range []int{200, 401} {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		for k, vs := range quiet {
			r.Header[k] = vs
		}
		rec := httptest.NewRecorder()
		silent.ServeHTTP(rec, r)
		assert.Equal(t, want, rec.Code, "request %d", i)
	}
	assert.Equal(t, 2, cache.Len())

	// Any 2xx accepts the message and keeps the claim; any other answer, a redirect too, releases it.
	for _, tc := range []struct {
		status int
		kept   bool
	}{{http.StatusAccepted, true}, {http.StatusNoContent, true}, {http.StatusTemporaryRedirect, false}} {
		e.next.status = tc.status
		h := swHeader(t, fmt.Sprint("msg_status_", tc.status), testNow, body, secretA)
		require.Equal(t, tc.status, e.post(t, h, body, false).status)
		again := e.post(t, h, body, false).status
		if tc.kept {
			assert.Equal(t, 401, again, "replay after %d", tc.status)
		} else {
			assert.Equal(t, tc.status, again, "retry after %d", tc.status)
		}
	}
}

type failingCache struct{}

func (failingCache) Claim(context.Context, string, time.Time, time.Time) (bool, error) {
	return false, errors.New("redis: connection refused")
}
func (failingCache) Release(context.Context, string) error { return nil }

func TestReplayCacheFailureIsUnavailable(t *testing.T) {
	v := signature.Must(signature.StandardWebhooks([]string{secretA}, signature.WithClock(fixedClock), signature.WithReplayCache(failingCache{})))
	e := newEndpoint(t, v)
	got := e.post(t, swHeader(t, "m", testNow, []byte("b"), secretA), []byte("b"), false)
	assert.Equal(t, 503, got.status)
	assert.Equal(t, "1", got.header.Get("Retry-After"))
	assert.ErrorIs(t, e.takeErr(), signature.ErrUnavailable)
	assert.Zero(t, e.next.count())
}

// claimer returns a claim on c at now, until exp, both in seconds after testNow.
func claimer(t *testing.T, c *signature.MemoryReplayCache) func(id string, now, exp int) bool {
	at := func(s int) time.Time { return testNow.Add(time.Duration(s) * time.Second) }
	return func(id string, now, exp int) bool {
		t.Helper()
		ok, err := c.Claim(context.Background(), id, at(now), at(exp))
		require.NoError(t, err)
		return ok
	}
}

func TestMemoryReplayCache(t *testing.T) {
	ctx := context.Background()
	c, err := signature.NewMemoryReplayCache(3)
	require.NoError(t, err)
	claim := claimer(t, c)
	assert.True(t, claim("a", 0, 10))
	assert.False(t, claim("a", 5, 20), "held until its expiry")
	assert.True(t, claim("b", 0, 20))
	assert.True(t, claim("c", 0, 30))
	assert.True(t, claim("d", 0, 40), "full: the earliest expiry (a) is evicted")
	assert.Equal(t, 3, c.Len())
	assert.Equal(t, uint64(1), c.Evicted())
	assert.True(t, claim("a", 1, 10))
	assert.Equal(t, uint64(2), c.Evicted(), "b went next")
	assert.False(t, claim("d", 1, 50))

	assert.True(t, claim("e", 35, 60), "at 35, a and c have expired and are dropped without eviction")
	assert.Equal(t, uint64(2), c.Evicted())
	assert.Equal(t, 2, c.Len())

	require.NoError(t, c.Release(ctx, "d"))
	assert.True(t, claim("d", 36, 70), "released ids can be claimed again")

	// Claim and release in a loop must not grow the cache without bound.
	for i := 0; i < 1000; i++ {
		assert.True(t, claim("x", 40, 100))
		require.NoError(t, c.Release(ctx, "x"))
	}
	assert.LessOrEqual(t, c.Len(), 3)
}

// Extend shifts every held id's expiry: ids stay refused for the longer time, expire in the same
// order, and a full cache still evicts the one that expires first.
func TestMemoryReplayCacheExtend(t *testing.T) {
	ctx := context.Background()
	c, err := signature.NewMemoryReplayCache(3)
	require.NoError(t, err)
	claim := claimer(t, c)
	assert.True(t, claim("a", 0, 10))
	assert.True(t, claim("b", 0, 20))
	require.NoError(t, c.Release(ctx, "b"))
	assert.True(t, claim("b", 1, 15), "claimed again after a release: a stale entry stays behind")
	c.Extend(0)
	c.Extend(-time.Second)
	c.Extend(30 * time.Second)
	assert.False(t, claim("a", 35, 100), "a now expires at 40")
	assert.False(t, claim("b", 44, 100), "b now expires at 45")
	assert.True(t, claim("a", 41, 60), "a's extended expiry passed")
	assert.True(t, claim("c", 41, 70))
	assert.True(t, claim("d", 42, 80), "full: b, the earliest expiry, is evicted")
	assert.Equal(t, uint64(1), c.Evicted())
	assert.True(t, claim("b", 42, 90))
}

// A released id leaves its expiry behind in the cache's order; when that expiry passes, only it
// goes, never the live id that expires after it. Otherwise, after a message answered outside 2xx
// (released) and another accepted, a captured copy of the accepted one could be replayed inside
// its tolerance, without the cache ever being full.
func TestMemoryReplayCacheReleaseKeepsOthers(t *testing.T) {
	ctx := context.Background()
	c, err := signature.NewMemoryReplayCache(100)
	require.NoError(t, err)
	claim := claimer(t, c)
	require.True(t, claim("a", 0, 10))
	require.NoError(t, c.Release(ctx, "a"))
	require.True(t, claim("b", 0, 600))
	require.True(t, claim("c", 11, 611), "after a's expiry")
	assert.False(t, claim("b", 11, 600), "b replayed inside its tolerance")
	assert.Zero(t, c.Evicted())

	// The same through the verifier: msg_a answered 503 (released), msg_b accepted, msg_c after
	// msg_a's expiry, then msg_b again.
	cache, err := signature.NewMemoryReplayCache(100)
	require.NoError(t, err)
	var mu sync.Mutex
	now := testNow
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEndpoint(t, signature.Must(signature.StandardWebhooks([]string{secretA}, signature.WithClock(clock), signature.WithReplayCache(cache))))
	body := []byte(`{"n":3}`)
	e.next.status = http.StatusServiceUnavailable
	require.Equal(t, 503, e.post(t, swHeader(t, "msg_a", testNow, body, secretA), body, false).status)
	e.next.status = 0
	mu.Lock()
	now = testNow.Add(time.Second)
	mu.Unlock()
	hb := swHeader(t, "msg_b", now, body, secretA)
	require.Equal(t, 200, e.post(t, hb, body, false).status)
	mu.Lock()
	now = testNow.Add(5*time.Minute + 500*time.Millisecond)
	mu.Unlock()
	require.Equal(t, 200, e.post(t, swHeader(t, "msg_c", now, body, secretA), body, false).status)
	assert.Equal(t, 401, e.post(t, hb, body, false).status, "msg_b replayed")
	assert.ErrorIs(t, e.takeErr(), signature.ErrReplayed)
}

// MemoryReplayCache against a model, over random claims and releases at moving times in a cache
// too large to evict: a claim wins exactly when its id is not held, or its hold has expired.
func TestMemoryReplayCacheModel(t *testing.T) {
	ctx := context.Background()
	for seed := range 200 {
		rng := mrand.New(mrand.NewPCG(uint64(seed), 0))
		c, err := signature.NewMemoryReplayCache(1000)
		require.NoError(t, err)
		held := map[string]time.Time{}
		now := testNow
		for step := range 300 {
			now = now.Add(time.Duration(rng.IntN(3000)) * time.Millisecond)
			id := fmt.Sprint("m", rng.IntN(12))
			if rng.IntN(4) == 0 {
				require.NoError(t, c.Release(ctx, id))
				delete(held, id)
				continue
			}
			exp := now.Add(time.Duration(1+rng.IntN(20)) * time.Second)
			ok, err := c.Claim(ctx, id, now, exp)
			require.NoError(t, err)
			h, isHeld := held[id]
			want := !isHeld || !h.After(now)
			require.Equal(t, want, ok, "seed %d step %d: claim of %s at %v (held until %v: %v)", seed, step, id, now.Sub(testNow), h.Sub(testNow), isHeld)
			if ok {
				held[id] = exp
			}
		}
		require.Zero(t, c.Evicted(), "seed %d", seed)
	}
}

func TestMemoryReplayCacheConcurrentClaims(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := signature.NewMemoryReplayCache(10_000)
	require.NoError(t, err)
	var wg sync.WaitGroup
	wins := make([]int, 100)
	var mu sync.Mutex
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100 && ctx.Err() == nil; i++ {
				ok, err := c.Claim(ctx, fmt.Sprint("id", i), testNow, testNow.Add(time.Minute))
				assert.NoError(t, err)
				if ok {
					mu.Lock()
					wins[i]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for i, w := range wins {
		assert.Equal(t, 1, w, "id%d is claimed exactly once", i)
	}
}

func TestBearerFuncContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	v := signature.Must(signature.BearerFunc(func(ctx context.Context, _ string) error {
		cancel()
		return ctx.Err()
	}))
	_, err := v.Verify(ctx, headers("Authorization", "Bearer abc"), nil)
	assert.ErrorIs(t, err, signature.ErrUnavailable, "a cancelled validation is not a rejection")
}

func TestMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	v := signature.Must(signature.APIKey("X-Api-Key", "k"))
	e := newEndpoint(t, v, signature.WithMeterProvider(mp))
	e.post(t, headers("X-Api-Key", "k"), []byte("x"), false)
	e.post(t, headers("X-Api-Key", "k"), []byte("x"), false)
	e.post(t, headers("X-Api-Key", "bad"), []byte("x"), false)
	e.post(t, headers(), []byte("x"), false)
	e.post(t, headers(), bytes.Repeat([]byte("x"), signature.DefaultMaxBodyBytes+1), false)

	assert.Equal(t, map[string]int64{
		"fanbridge.signature.verified,scheme=api-key":   2,
		"fanbridge.signature.rejected,reason=mismatch":  1,
		"fanbridge.signature.rejected,reason=missing":   1,
		"fanbridge.signature.rejected,reason=too_large": 1,
	}, counts(t, reader))
}

// A custom verifier that names its scheme from request data gets at most 64 values of the scheme
// attribute; the rest are counted as "other", so the metric's series stay bounded.
func TestMetricSchemesAreBounded(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	v := signature.VerifierFunc(func(_ context.Context, h http.Header, _ []byte) (signature.Identity, error) {
		return signature.Identity{Scheme: h.Get("X-Scheme"), Key: -1}, nil
	})
	e := newEndpoint(t, v, signature.WithMeterProvider(mp))
	for i := range 100 {
		e.post(t, headers("X-Scheme", fmt.Sprintf("s%d", i)), []byte("x"), false)
	}
	got := counts(t, reader)
	assert.Len(t, got, 65, "64 schemes and other")
	assert.Equal(t, int64(36), got["fanbridge.signature.verified,scheme=other"])
	var total int64
	for _, n := range got {
		total += n
	}
	assert.Equal(t, int64(100), total, "every verified request is counted")
}

// counts collects the counters of reader, by name and attributes ("name,key=value,...").
func counts(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			require.True(t, ok, m.Name)
			for _, dp := range sum.DataPoints {
				key := m.Name
				for _, kv := range dp.Attributes.ToSlice() {
					key += "," + string(kv.Key) + "=" + kv.Value.Emit()
				}
				got[key] += dp.Value
			}
		}
	}
	return got
}

// Two middlewares on one MeterProvider, told apart by WithMetricAttributes, count apart: every
// count carries the attribute beside the middleware's own.
func TestMetricAttributes(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	v := signature.Must(signature.APIKey("X-Api-Key", "k"))
	a := newEndpoint(t, v, signature.WithMeterProvider(mp), signature.WithMetricAttributes(attribute.String("intake", "/a")))
	b := newEndpoint(t, v, signature.WithMeterProvider(mp), signature.WithMetricAttributes(attribute.String("intake", "/b")))
	a.post(t, headers("X-Api-Key", "k"), []byte("x"), false)
	a.post(t, headers("X-Api-Key", "bad"), []byte("x"), false)
	b.post(t, headers("X-Api-Key", "k"), []byte("x"), false)
	b.post(t, headers("X-Api-Key", "k"), []byte("x"), false)

	assert.Equal(t, map[string]int64{
		"fanbridge.signature.verified,intake=/a,scheme=api-key":  1,
		"fanbridge.signature.rejected,intake=/a,reason=mismatch": 1,
		"fanbridge.signature.verified,intake=/b,scheme=api-key":  2,
	}, counts(t, reader))
}

// TestBasicPasswordRotation rotates a Basic password under the same user name, as an Amazon
// EventBridge Connection does, with Any of a Basic holding the old password and one holding the
// new: both verify during the switch, and every failure is answered and counted exactly as by a
// single Basic.
func TestBasicPasswordRotation(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	old := signature.Must(signature.Basic(map[string]string{"eventbridge": "old-password"}))
	next := signature.Must(signature.Basic(map[string]string{"eventbridge": "new-password"}))
	rotating := newEndpoint(t, signature.Must(signature.Any(old, next)), signature.WithMeterProvider(mp))
	single := newEndpoint(t, next)
	body := []byte(`{"n":1}`)

	for _, pass := range []string{"old-password", "new-password"} {
		got := rotating.post(t, headers("Authorization", basicAuth("eventbridge:"+pass)), body, false)
		assert.Equal(t, http.StatusOK, got.status, pass)
	}
	rotating.next.mu.Lock()
	ids := rotating.next.ids
	rotating.next.mu.Unlock()
	want := signature.Identity{Scheme: signature.SchemeBasic, Key: -1, User: "eventbridge"}
	assert.Equal(t, []signature.Identity{want, want}, ids)

	for name, h := range map[string]http.Header{
		"wrong password": headers("Authorization", basicAuth("eventbridge:older-password")),
		"unknown user":   headers("Authorization", basicAuth("mallory:new-password")),
		"no colon":       headers("Authorization", basicAuth("eventbridge")),
		"missing":        headers(),
	} {
		got := rotating.post(t, h, body, false)
		alone := single.post(t, h, body, false)
		got.header.Del("Date")
		alone.header.Del("Date")
		assert.Equal(t, alone, got, name)
		assert.Equal(t, signature.Reason(single.takeErr()), signature.Reason(rotating.takeErr()), name)
	}
	assert.Equal(t, 2, rotating.next.count())
	assert.Equal(t, map[string]int64{
		"fanbridge.signature.verified,scheme=basic":     2,
		"fanbridge.signature.rejected,reason=mismatch":  2,
		"fanbridge.signature.rejected,reason=malformed": 1,
		"fanbridge.signature.rejected,reason=missing":   1,
	}, counts(t, reader))
}

// TestLogsNeverCarrySecrets logs every kind of outcome at the most verbose level and checks that
// no secret, signature, token, password, header value or body byte appears, in the log or in the
// errors.
func TestLogsNeverCarrySecrets(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	body := []byte(`{"body-secret":"BODYMARK"}`)
	basicPass := "PASSWORDMARK:x"
	v := signature.Must(signature.Any(
		signature.Must(signature.Basic(map[string]string{"ops": basicPass})),
		signature.Must(signature.Bearer("TOKENMARK")),
		signature.Must(signature.GitHub("GHSECRETMARK")),
		signature.Must(signature.StandardWebhooks([]string{secretA}, signature.WithClock(fixedClock))),
		signature.Must(signature.APIKey("X-Api-Key", "APIKEYMARK")),
	))
	e := newEndpoint(t, v, signature.WithLogger(logger))
	ghSig := hub(t, signature.GitHubScheme, "GHSECRETMARK", body)
	sw := swHeader(t, "msg_log", testNow, body, secretA)
	swBadTime := swHeader(t, "msg_log_time", testNow, body, secretA)
	swBadTime.Set("Webhook-Timestamp", "17TIMEMARK")
	var errs []string
	for _, h := range []http.Header{
		headers("Authorization", basicAuth("ops:"+basicPass)),
		headers("Authorization", basicAuth("ops:WRONGPASSMARK")),
		headers("Authorization", "Bearer TOKENMARK"),
		headers("Authorization", "Bearer WRONGTOKENMARK"),
		headers("X-Hub-Signature-256", ghSig),
		headers("X-Hub-Signature-256", ghSig+"00"),
		sw,
		swBadTime,
		headers("X-Api-Key", "APIKEYMARK"),
		headers("X-Api-Key", "WRONGKEYMARK"),
		headers(),
	} {
		e.post(t, h, body, false)
		if err := e.takeErr(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	require.Contains(t, out, `"reason":"mismatch"`)
	require.Contains(t, out, `"reason":"malformed"`)
	require.Contains(t, out, `"user":"ops"`)
	require.Contains(t, out, `"scheme":"api-key"`)
	for _, secret := range []string{"BODYMARK", "PASSWORDMARK", "WRONGPASSMARK", "TOKENMARK", "GHSECRETMARK",
		"APIKEYMARK", "WRONGKEYMARK", "TIMEMARK",
		ghSig[7:20], sw.Get("Webhook-Signature")[3:15], secretA[6:16], strings.TrimPrefix(basicAuth("ops:"+basicPass), "Basic ")[:10]} {
		assert.NotContains(t, out, secret)
		assert.NotContains(t, strings.Join(errs, "\n"), secret)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestIdentityContext(t *testing.T) {
	_, ok := signature.IdentityFrom(context.Background())
	assert.False(t, ok)
	ctx := signature.WithIdentity(context.Background(), signature.Identity{Scheme: "x", Key: 2})
	id, ok := signature.IdentityFrom(ctx)
	require.True(t, ok)
	assert.Equal(t, 2, id.Key)
	assert.NoError(t, id.Release(ctx), "nothing to release")
}

// TestBase64WithoutPaddingOfPaddedLength is the regression for a fuzzer find: a base64 value as
// long as the padded encoding but with data where the padding goes claims one byte more than the
// MAC and must be refused, not decoded past its buffer.
func TestBase64WithoutPaddingOfPaddedLength(t *testing.T) {
	ctx := context.Background()
	s512 := signature.HMACScheme{Header: "X-Sig", Encoding: signature.Base64, Hash: signature.SHA512}
	v := signature.Must(signature.HMAC(s512, "s"))
	_, err := v.Verify(ctx, headers("X-Sig", strings.Repeat("0", 88)), nil)
	assert.ErrorIs(t, err, signature.ErrMalformed)
	_, err = signature.Must(signature.OpenMessaging("s")).Verify(ctx, headers("X-Hub-Signature-256", "sha256="+strings.Repeat("0", 44)), nil)
	assert.ErrorIs(t, err, signature.ErrMalformed)
	sw := signature.Must(signature.StandardWebhooks([]string{secretA}, signature.WithClock(fixedClock)))
	_, err = sw.Verify(ctx, headers("Webhook-Id", "m", "Webhook-Timestamp", "1700000000",
		"Webhook-Signature", "v1,"+strings.Repeat("0", 44)+" v1a,"+strings.Repeat("0", 88)), nil)
	assert.ErrorIs(t, err, signature.ErrMalformed)
}

// TestFlushThroughReplayTracking checks that a handler behind a replay cache can still flush, and
// that a flushed answer counts as accepted.
func TestFlushThroughReplayTracking(t *testing.T) {
	cache, err := signature.NewMemoryReplayCache(10)
	require.NoError(t, err)
	v := signature.Must(signature.StandardWebhooks([]string{secretA}, signature.WithClock(fixedClock), signature.WithReplayCache(cache)))
	var flushed bool
	h := signature.Verify(v)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := w.(http.Flusher)
		if ok {
			f.Flush()
			flushed = true
		}
	}))
	body := []byte("x")
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	for k, vs := range swHeader(t, "msg_flush", testNow, body, secretA) {
		r.Header[k] = vs
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	assert.True(t, flushed)
	assert.True(t, w.Flushed)
	assert.Equal(t, 1, cache.Len(), "the flushed answer was a 200: the id stays claimed")
}

// TestStandardWebhooksKeysNeedTheirPrefix: a key without its whsec_ or whpk_ prefix is refused. A
// bare ed25519 public key used to be taken for an HMAC secret, and anyone who knows a public key
// (it is public) could then sign v1 messages that verified. The error says what to write, by the
// key's index, and never shows the key.
func TestStandardWebhooksKeysNeedTheirPrefix(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	bare := base64.StdEncoding.EncodeToString(pub)
	for name, keys := range map[string][]string{
		"bare public key":               {bare},
		"bare public key after another": {secretA, bare},
		"bare secret":                   {strings.TrimPrefix(secretA, "whsec_")},
		"bare long secret":              {base64.StdEncoding.EncodeToString(make([]byte, 64))},
		"prefix in other case":          {"WHSEC_" + strings.TrimPrefix(secretA, "whsec_")},
	} {
		t.Run(name, func(t *testing.T) {
			v, err := signature.StandardWebhooks(keys)
			require.Error(t, err)
			assert.Nil(t, v)
			assert.Contains(t, err.Error(), fmt.Sprintf("key %d", len(keys)-1))
			assert.Contains(t, err.Error(), "whsec_<base64>")
			assert.Contains(t, err.Error(), "whpk_<base64>")
			last := keys[len(keys)-1]
			assert.NotContains(t, err.Error(), last[len(last)/2:], "the key is not shown")

			_, err = signature.SignStandardWebhooks(last, "msg_1", testNow, nil)
			require.Error(t, err)
			assert.NotContains(t, err.Error(), last[len(last)/2:], "the key is not shown")
		})
	}

	// The attack itself: a v1 signature made with the public key as HMAC key does not verify
	// under that public key, given as it must be.
	v, err := signature.StandardWebhooks([]string{"whpk_" + bare}, signature.WithClock(fixedClock))
	require.NoError(t, err)
	body := []byte(`{"x":1}`)
	m := hmac.New(sha256.New, pub)
	fmt.Fprintf(m, "msg_1.%d.%s", testNow.Unix(), body)
	forged := headers("Webhook-Id", "msg_1", "Webhook-Timestamp", strconv.FormatInt(testNow.Unix(), 10),
		"Webhook-Signature", "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	_, err = v.Verify(context.Background(), forged, body)
	assert.ErrorIs(t, err, signature.ErrMismatch)
}

// TestReplayAtTheToleranceBoundary: a message is still accepted at exactly timestamp plus
// tolerance, so its id must still be claimed then: the same request must not verify twice.
func TestReplayAtTheToleranceBoundary(t *testing.T) {
	now := testNow
	cache, err := signature.NewMemoryReplayCache(100)
	require.NoError(t, err)
	v := signature.Must(signature.StandardWebhooks([]string{secretA}, signature.WithTolerance(30*time.Second),
		signature.WithReplayCache(cache), signature.WithClock(func() time.Time { return now })))
	body := []byte("x")
	h := swHeader(t, "msg", testNow, body, secretA)
	_, err = v.Verify(context.Background(), h, body)
	require.NoError(t, err)
	now = testNow.Add(30 * time.Second)
	_, err = v.Verify(context.Background(), h, body)
	assert.ErrorIs(t, err, signature.ErrReplayed, "the same message verified twice at timestamp plus tolerance")
	now = now.Add(time.Nanosecond)
	_, err = v.Verify(context.Background(), h, body)
	assert.ErrorIs(t, err, signature.ErrStale)
}

// A flood of rejected requests logs at most RejectLogBurst Warn lines a second; the others go to
// Debug, and the next Warn line counts them.
func TestRejectionLogsAreLimited(t *testing.T) {
	now := testNow
	var clockMu sync.Mutex
	restore := signature.SetLogClock(func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now })
	defer restore()
	type line struct {
		Level      string
		Suppressed int64
	}
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		t.Run(level.String(), func(t *testing.T) {
			var buf bytes.Buffer
			var mu sync.Mutex
			logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, &slog.HandlerOptions{Level: level}))
			e := newEndpoint(t, signature.Must(signature.Bearer("token-0123456789")), signature.WithLogger(logger))
			read := func() []line {
				mu.Lock()
				defer mu.Unlock()
				var out []line
				for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
					var v line
					require.NoError(t, json.Unmarshal([]byte(l), &v), l)
					out = append(out, v)
				}
				buf.Reset()
				return out
			}
			for range 3 * signature.RejectLogBurst {
				e.post(t, headers("Authorization", "Bearer wrong"), nil, false)
			}
			var warns, debugs int
			for _, l := range read() {
				switch l.Level {
				case "WARN":
					warns++
				case "DEBUG":
					debugs++
				}
			}
			assert.Equal(t, signature.RejectLogBurst, warns)
			if level == slog.LevelDebug {
				assert.Equal(t, 2*signature.RejectLogBurst, debugs, "the rest at Debug")
			} else {
				assert.Zero(t, debugs)
			}
			clockMu.Lock()
			now = now.Add(time.Second)
			clockMu.Unlock()
			e.post(t, headers("Authorization", "Bearer wrong"), nil, false)
			assert.Equal(t, []line{{Level: "WARN", Suppressed: 2 * signature.RejectLogBurst}}, read())
		})
	}
}

// RejectLogBurst bounds the lines, not their size: the path a rejected sender chose is cut to 256
// bytes in the log line, at a character's start, with its length noted.
func TestRejectionLogsCutLongPaths(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	h := signature.Verify(signature.Must(signature.Bearer("token-0123456789")), signature.WithLogger(logger))(
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("the next handler was called") }))
	for _, path := range []string{"/hooks/" + strings.Repeat("a", 64<<10), "/hooks/" + strings.Repeat("é", 200), "/short"} {
		buf.Reset()
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}"))
		req.URL.Path = path
		req.Header.Set("Authorization", "Bearer wrong")
		h.ServeHTTP(httptest.NewRecorder(), req)
		var line struct{ Path string }
		require.NoError(t, json.Unmarshal(buf.Bytes(), &line))
		if len(path) <= 256 {
			assert.Equal(t, path, line.Path)
			continue
		}
		kept, note, ok := strings.Cut(line.Path, "… ")
		require.True(t, ok, line.Path)
		assert.True(t, strings.HasPrefix(path, kept))
		assert.LessOrEqual(t, len(kept), 256)
		assert.Greater(t, len(kept), 250)
		assert.Equal(t, fmt.Sprintf("(%d bytes)", len(path)), note)
		assert.True(t, utf8.ValidString(line.Path))
		assert.Less(t, buf.Len(), 1024, "the whole line")
	}
}

// A tolerance too long for time arithmetic (math.MaxInt64, Go's usual "no limit") is refused:
// timestamp plus tolerance would overflow, and a replay cache would keep nothing. A year is
// taken, and its replays are refused.
func TestStandardWebhooksToleranceBounds(t *testing.T) {
	_, err := signature.StandardWebhooks([]string{secretA}, signature.WithTolerance(math.MaxInt64))
	require.Error(t, err)
	cache, err := signature.NewMemoryReplayCache(100)
	require.NoError(t, err)
	v, err := signature.StandardWebhooks([]string{secretA}, signature.WithTolerance(365*24*time.Hour),
		signature.WithClock(fixedClock), signature.WithReplayCache(cache))
	require.NoError(t, err)
	body := []byte(`{"a":1}`)
	h := swHeader(t, testMessage, testNow, body, secretA)
	_, err = v.Verify(context.Background(), h, body)
	require.NoError(t, err)
	_, err = v.Verify(context.Background(), h, body)
	require.ErrorIs(t, err, signature.ErrReplayed)
}

// A credential of only whitespace (a variable set to a blank line) is called blank, not padded.
func TestBlankCredentialIsCalledBlank(t *testing.T) {
	_, err := signature.APIKey("X-Api-Key", "a", "  \t")
	assert.EqualError(t, err, "signature: API key 1 is blank (only whitespace)")
	_, err = signature.Bearer(" ")
	assert.EqualError(t, err, "signature: bearer token 0 is blank (only whitespace)")
	_, err = signature.APIKey("X-Api-Key", " a")
	assert.ErrorContains(t, err, "has leading or trailing whitespace")
}

// heldEndpoint serves Verify(v) over a handler that holds each request, reporting it on entered,
// until answer gives it a status.
func heldEndpoint(ctx context.Context, v signature.Verifier) (srv *httptest.Server, entered chan struct{}, answer chan int) {
	entered, answer = make(chan struct{}, 1), make(chan int)
	srv = httptest.NewServer(signature.Verify(v)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case code := <-answer:
			w.WriteHeader(code)
		case <-ctx.Done():
		}
	})))
	return srv, entered, answer
}

// postSigned posts body with the headers h to url and returns the answer's status, or 0 and the
// error; it may run on any goroutine.
func postSigned(ctx context.Context, url string, h http.Header, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// A copy of a request that arrives while the first is still being handled (a sender's client that
// timed out and resent it, byte for byte) is answered 503 with Retry-After, not 401: the first
// may still fail and release its claim, and a 401, which senders do not retry, would then lose the
// event. Once the first is answered, a copy verifies when it failed and is a replay when it was
// accepted; behind Any too.
func TestCopyOfARequestInFlightIsRetried(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cache, err := signature.NewMemoryReplayCache(100)
	require.NoError(t, err)
	sw := signature.Must(signature.StandardWebhooks([]string{secretA}, signature.WithClock(fixedClock), signature.WithReplayCache(cache)))
	for name, v := range map[string]signature.Verifier{
		"standard webhooks": sw,
		"any":               signature.Must(signature.Any(signature.Must(signature.APIKey("X-Api-Key", "k")), sw)),
	} {
		t.Run(name, func(t *testing.T) {
			srv, entered, answer := heldEndpoint(ctx, v)
			defer srv.Close()
			body := []byte(`{"n":3}`)
			h := swHeader(t, "msg_inflight_"+strings.ReplaceAll(name, " ", "_"), testNow, body, secretA)
			send := func() int {
				code, err := postSigned(ctx, srv.URL, h, body)
				require.NoError(t, err)
				return code
			}
			first := make(chan int, 1)
			go func() { code, _ := postSigned(ctx, srv.URL, h, body); first <- code }()
			testwait.RecvCtx(t, ctx, entered)

			req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, bytes.NewReader(body))
			require.NoError(t, err)
			for k, vs := range h {
				req.Header[k] = vs
			}
			copied, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			_ = copied.Body.Close()
			assert.Equal(t, http.StatusServiceUnavailable, copied.StatusCode, "a copy while the first is handled")
			assert.Equal(t, "1", copied.Header.Get("Retry-After"))
			assert.Empty(t, entered, "the copy went no further")

			answer <- http.StatusServiceUnavailable // the first fails
			assert.Equal(t, http.StatusServiceUnavailable, testwait.RecvCtx(t, ctx, first))
			go func() { code, _ := postSigned(ctx, srv.URL, h, body); first <- code }() // the copy's retry verifies
			testwait.RecvCtx(t, ctx, entered)
			answer <- http.StatusOK
			assert.Equal(t, http.StatusOK, testwait.RecvCtx(t, ctx, first))
			assert.Equal(t, http.StatusUnauthorized, send(), "a copy of an accepted request is a replay")
		})
	}
}

// A verifier built anew over the same MemoryReplayCache (a reloaded configuration) sees the claims
// its predecessor is still handling: a copy that reaches the new one meanwhile is retried, not
// refused.
func TestCopyInFlightSeenByAVerifierOverTheSameCache(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cache, err := signature.NewMemoryReplayCache(100)
	require.NoError(t, err)
	build := func() signature.Verifier {
		return signature.Must(signature.StandardWebhooks([]string{secretA}, signature.WithClock(fixedClock), signature.WithReplayCache(cache)))
	}
	held, entered, answer := heldEndpoint(ctx, build())
	defer held.Close()
	rebuilt := httptest.NewServer(signature.Verify(build())(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	defer rebuilt.Close()
	body := []byte(`{"n":4}`)
	h := swHeader(t, "msg_rebuilt", testNow, body, secretA)
	send := func(url string) int {
		code, err := postSigned(ctx, url, h, body)
		require.NoError(t, err)
		return code
	}
	first := make(chan int, 1)
	go func() { code, _ := postSigned(ctx, held.URL, h, body); first <- code }()
	testwait.RecvCtx(t, ctx, entered)
	assert.Equal(t, http.StatusServiceUnavailable, send(rebuilt.URL))
	answer <- http.StatusBadGateway
	assert.Equal(t, http.StatusBadGateway, testwait.RecvCtx(t, ctx, first))
	assert.Equal(t, http.StatusOK, send(rebuilt.URL), "the retry verifies once the first failed")
	assert.Equal(t, http.StatusUnauthorized, send(held.URL), "and is a replay once accepted")
}
