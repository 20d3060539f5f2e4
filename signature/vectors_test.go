package signature_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/signature"
)

// The functions below implement the schemes straight from their specifications, with nothing from
// the package under test, so that the package's signers and verifiers are checked against an
// independent reading.

// specV1 is the Standard Webhooks symmetric signature: base64(HMAC-SHA256(base64decode(secret
// without "whsec_"), "{id}.{timestamp}.{payload}")), as "v1,<sig>".
func specV1(t testing.TB, secret, id string, ts int64, payload []byte) string {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	require.NoError(t, err)
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.%s", id, ts, payload)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// specV1a is the Standard Webhooks asymmetric signature with an ed25519 seed in base64.
func specV1a(t testing.TB, seedB64, id string, ts int64, payload []byte) string {
	seed, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(seedB64, "whsk_"))
	require.NoError(t, err)
	msg := []byte(fmt.Sprintf("%s.%d.%s", id, ts, payload))
	return "v1a," + base64.StdEncoding.EncodeToString(ed25519.Sign(ed25519.NewKeyFromSeed(seed), msg))
}

// specHub is the X-Hub-Signature-256 value: "sha256=" + hex (GitHub) or base64 (Genesys Open
// Messaging) of HMAC-SHA256(secret, body).
func specHub(secret string, body []byte, b64 bool) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	if b64 {
		return "sha256=" + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func headers(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestPublishedVectors(t *testing.T) {
	ctx := context.Background()
	t.Run("standard webhooks v1 sign", func(t *testing.T) {
		got, err := signature.SignStandardWebhooks(specSecret, specMsgID, time.Unix(specTimestamp, 0), []byte(specPayload))
		require.NoError(t, err)
		assert.Equal(t, specSignature, got)
		assert.Equal(t, specSignature, specV1(t, specSecret, specMsgID, specTimestamp, []byte(specPayload)), "independent implementation")
	})
	t.Run("standard webhooks v1 verify", func(t *testing.T) {
		v, err := signature.StandardWebhooks([]string{specSecret},
			signature.WithClock(func() time.Time { return time.Unix(specTimestamp+30, 0) }))
		require.NoError(t, err)
		id, err := v.Verify(ctx, headers("webhook-id", specMsgID, "webhook-timestamp", strconv.Itoa(specTimestamp),
			"webhook-signature", specSignature), []byte(specPayload))
		require.NoError(t, err)
		assert.Equal(t, signature.Identity{Scheme: signature.SchemeStandardWebhooks, Key: 0, MessageID: specMsgID,
			Timestamp: time.Unix(specTimestamp, 0)}, id)
	})
	t.Run("standard webhooks secret without prefix is refused", func(t *testing.T) {
		// The reference libraries accept it; here a bare value is ambiguous (see
		// TestStandardWebhooksKeysNeedTheirPrefix).
		bare := strings.TrimPrefix(specSecret, "whsec_")
		_, err := signature.StandardWebhooks([]string{bare})
		require.Error(t, err)
		assert.NotContains(t, err.Error(), bare)
		_, err = signature.SignStandardWebhooks(bare, specMsgID, time.Unix(specTimestamp, 0), []byte(specPayload))
		require.Error(t, err)
		assert.NotContains(t, err.Error(), bare)
	})
	t.Run("standard webhooks v1a sign and verify", func(t *testing.T) {
		signing := "whsk_" + specSigningSeed
		got, err := signature.SignStandardWebhooks(signing, specMsgID, time.Unix(specTimestamp, 0), []byte(specPayload))
		require.NoError(t, err)
		assert.Equal(t, specV1aSignature, got)
		assert.Equal(t, specV1aSignature, specV1a(t, signing, specMsgID, specTimestamp, []byte(specPayload)), "independent implementation")

		pub, err := signature.StandardWebhooksPublicKey(signing)
		require.NoError(t, err)
		v, err := signature.StandardWebhooks([]string{pub},
			signature.WithClock(func() time.Time { return time.Unix(specTimestamp, 0) }))
		require.NoError(t, err)
		_, err = v.Verify(ctx, headers("webhook-id", specMsgID, "webhook-timestamp", strconv.Itoa(specTimestamp),
			"webhook-signature", specV1aSignature), []byte(specPayload))
		require.NoError(t, err)
	})
	t.Run("github sign", func(t *testing.T) {
		got, err := signature.SignGitHub(githubSecret, []byte(githubPayload))
		require.NoError(t, err)
		assert.Equal(t, githubSignature, got)
		assert.Equal(t, githubSignature, specHub(githubSecret, []byte(githubPayload), false))
	})
	t.Run("github verify", func(t *testing.T) {
		v, err := signature.GitHub(githubSecret)
		require.NoError(t, err)
		id, err := v.Verify(ctx, headers("X-Hub-Signature-256", githubSignature), []byte(githubPayload))
		require.NoError(t, err)
		assert.Equal(t, signature.SchemeGitHub, id.Scheme)
		_, err = v.Verify(ctx, headers("X-Hub-Signature-256", githubSignature), []byte(githubPayload+" "))
		assert.ErrorIs(t, err, signature.ErrMismatch)
	})
}

// TestSignersAgreeWithSpec signs random messages with the package's helpers and with the
// independent implementations, and verifies each with the package's verifiers.
func TestSignersAgreeWithSpec(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	hubSecret := "open-messaging-secret"
	gh, err := signature.GitHub(hubSecret)
	require.NoError(t, err)
	om, err := signature.OpenMessaging(hubSecret)
	require.NoError(t, err)
	sw, err := signature.StandardWebhooks([]string{secretA, publicC}, signature.WithClock(fixedClock))
	require.NoError(t, err)

	for i := 0; i < 200; i++ {
		body := make([]byte, rng.IntN(3000))
		for j := range body {
			body[j] = byte(rng.UintN(256))
		}
		id := fmt.Sprintf("msg_%d_%x", i, rng.Uint64())
		ts := testNow.Unix() - int64(rng.IntN(600)) + 300

		want := specHub(hubSecret, body, false)
		got, err := signature.SignGitHub(hubSecret, body)
		require.NoError(t, err)
		require.Equal(t, want, got)
		_, err = gh.Verify(ctx, headers("X-Hub-Signature-256", want), body)
		require.NoError(t, err)

		want = specHub(hubSecret, body, true)
		got, err = signature.SignOpenMessaging(hubSecret, body)
		require.NoError(t, err)
		require.Equal(t, want, got)
		_, err = om.Verify(ctx, headers("X-Hub-Signature-256", want), body)
		require.NoError(t, err)

		want = specV1(t, secretA, id, ts, body)
		got, err = signature.SignStandardWebhooks(secretA, id, time.Unix(ts, 0), body)
		require.NoError(t, err)
		require.Equal(t, want, got)
		_, err = sw.Verify(ctx, headers("webhook-id", id, "webhook-timestamp", strconv.FormatInt(ts, 10), "webhook-signature", want), body)
		require.NoError(t, err)

		want = specV1a(t, signingC, id, ts, body)
		got, err = signature.SignStandardWebhooks(signingC, id, time.Unix(ts, 0), body)
		require.NoError(t, err)
		require.Equal(t, want, got)
		sid, err := sw.Verify(ctx, headers("webhook-id", id, "webhook-timestamp", strconv.FormatInt(ts, 10), "webhook-signature", want), body)
		require.NoError(t, err)
		require.Equal(t, 1, sid.Key, "the public key is the second key given")
	}
}

func TestSignHMACHashesAndEncodings(t *testing.T) {
	body := readSample(t, "v2.detail.events.conversation.customer.end.json")
	for _, tc := range []struct {
		hash    signature.Hash
		newHash func() hash.Hash
	}{{signature.SHA256, sha256.New}, {signature.SHA1, sha1.New}, {signature.SHA512, sha512.New}} {
		for _, enc := range []signature.Encoding{signature.Hex, signature.Base64, signature.Base64URL} {
			t.Run(fmt.Sprintf("%d/%s", tc.hash, enc), func(t *testing.T) {
				s := signature.HMACScheme{Header: "X-Signature", Encoding: enc, Prefix: "v=", Hash: tc.hash}
				mac := hmac.New(tc.newHash, []byte("k"))
				mac.Write(body)
				sum := mac.Sum(nil)
				want := map[signature.Encoding]string{
					signature.Hex:       hex.EncodeToString(sum),
					signature.Base64:    base64.StdEncoding.EncodeToString(sum),
					signature.Base64URL: base64.URLEncoding.EncodeToString(sum),
				}[enc]
				got, err := signature.SignHMAC(s, "k", body)
				require.NoError(t, err)
				assert.Equal(t, "v="+want, got)

				v, err := signature.HMAC(s, "other", "k")
				require.NoError(t, err)
				id, err := v.Verify(context.Background(), headers("X-Signature", got), body)
				require.NoError(t, err)
				assert.Equal(t, signature.Identity{Scheme: signature.SchemeHMAC, Key: 1}, id)
			})
		}
	}
}
