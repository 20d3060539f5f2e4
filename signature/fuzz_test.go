package signature_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/fanbridge/fanbridge/signature"
)

// checkRejection fails the fuzz run when a rejection does not wrap one of the package's sentinels:
// every failure must map to a documented answer.
func checkRejection(t *testing.T, err error) {
	t.Helper()
	if r := signature.Reason(err); r == signature.ReasonOther {
		t.Fatalf("error wraps no sentinel: %v", err)
	}
	if errors.Is(err, signature.ErrUnavailable) {
		t.Fatalf("a parse failure must not ask the sender to retry: %v", err)
	}
}

// FuzzStandardWebhooksSignature feeds arbitrary webhook-signature values. A request may only be
// accepted when the value carries the true v1 or v1a signature.
func FuzzStandardWebhooksSignature(f *testing.F) {
	body := []byte(`{"type":"contact.created","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":"1f81eb52"}}`)
	id, ts := testMessage, strconv.FormatInt(testNow.Unix(), 10)
	goodV1, err := signature.SignStandardWebhooks(secretA, id, testNow, body)
	if err != nil {
		f.Fatal(err)
	}
	goodV1a, err := signature.SignStandardWebhooks(signingC, id, testNow, body)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(goodV1)
	f.Add(goodV1a)
	f.Add(goodV1 + " " + goodV1a)
	// The header of the specification's example.
	f.Add("v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4= v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==")
	f.Add(specSignature)
	f.Add("v1,")
	f.Add("v1a,")
	f.Add(",,, v1,, ,v1")
	f.Add("v2," + goodV1[3:])
	f.Add(strings.Repeat("v1,AAAA ", 20))
	f.Add(strings.TrimRight(goodV1, "="))

	v := signature.Must(signature.StandardWebhooks([]string{secretA, publicC}, signature.WithClock(fixedClock)))
	f.Fuzz(func(t *testing.T, sig string) {
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", ts)
		h["Webhook-Signature"] = []string{sig}
		_, err := v.Verify(context.Background(), h, body)
		if err != nil {
			checkRejection(t, err)
			return
		}
		if !strings.Contains(sig, strings.TrimRight(goodV1[3:], "=")) && !strings.Contains(sig, strings.TrimRight(goodV1a[4:], "=")) {
			t.Fatalf("accepted a header without the true signature: %q", sig)
		}
	})
}

// FuzzStandardWebhooksTimestamp feeds arbitrary webhook-timestamp values, each correctly signed as
// sent. Only decimal Unix seconds within the tolerance may be accepted.
func FuzzStandardWebhooksTimestamp(f *testing.F) {
	body := []byte(`{"n":1}`)
	now := testNow.Unix()
	for _, s := range []string{strconv.FormatInt(now, 10), strconv.FormatInt(now-300, 10), strconv.FormatInt(now+301, 10),
		"1674087231", "", "-1", "+1700000000", "1700000000.5", "1e9", " 1700000000", "0001700000000",
		"99999999999999999999", "1700000000000", "0x6553f100", "١٧٠٠٠٠٠٠٠٠"} {
		f.Add(s)
	}
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secretA, "whsec_"))
	v := signature.Must(signature.StandardWebhooks([]string{secretA}, signature.WithClock(fixedClock)))
	f.Fuzz(func(t *testing.T, ts string) {
		mac := hmac.New(sha256.New, key)
		fmt.Fprintf(mac, "%s.%s.%s", testMessage, ts, body)
		h := http.Header{}
		h.Set("webhook-id", testMessage)
		h["Webhook-Timestamp"] = []string{ts}
		h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
		id, err := v.Verify(context.Background(), h, body)

		digits := ts != "" && strings.Trim(ts, "0123456789") == "" && len(ts) <= 12
		n, perr := strconv.ParseInt(ts, 10, 64)
		want := digits && perr == nil && n >= now-300 && n <= now+300
		if err != nil {
			checkRejection(t, err)
			if want {
				t.Fatalf("rejected valid timestamp %q: %v", ts, err)
			}
			return
		}
		if !want {
			t.Fatalf("accepted timestamp %q", ts)
		}
		if id.Timestamp.Unix() != n {
			t.Fatalf("identity timestamp %v, want %d", id.Timestamp, n)
		}
	})
}

// FuzzBasicCredentials checks the Basic round trip for any user and password: the right password
// is accepted (colons and all), anything else is not.
func FuzzBasicCredentials(f *testing.F) {
	f.Add("eventbridge", "p:a:s:s")
	f.Add("user", "pass")
	f.Add("Aladdin", "open sesame")
	f.Add("a", ":")
	f.Add("ü", "ÿ\x00")
	f.Fuzz(func(t *testing.T, user, pass string) {
		v, err := signature.Basic(map[string]string{user: pass})
		tooLong := base64.StdEncoding.EncodedLen(len(user)+1+len(pass)) > 4096 // the most Verify reads
		if user == "" || pass == "" || tooLong || strings.ContainsRune(user, ':') || strings.ContainsFunc(user, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			if err == nil {
				t.Fatalf("accepted bad configuration user=%q", user)
			}
			// The error names the user, never the password: another password of the same length
			// (the only property of it the checks look at) gives the same error, so nothing of
			// the password's content is in it. Comparing errors, rather than searching one for
			// the password, keeps words of the message ("password" holds "pass") from counting.
			other := strings.Repeat("\x00", len(pass))
			if other == pass {
				other = strings.Repeat("\x01", len(pass))
			}
			_, otherErr := signature.Basic(map[string]string{user: other})
			if otherErr == nil || otherErr.Error() != err.Error() {
				t.Fatalf("error %q depends on the password's content (another gives %v)", err, otherErr)
			}
			return
		}
		if err != nil {
			t.Fatalf("refused user %q: %v", user, err)
		}
		h := http.Header{}
		h.Set("Authorization", basicAuth(user+":"+pass))
		id, err := v.Verify(context.Background(), h, nil)
		if err != nil || id.User != user {
			t.Fatalf("rejected the right password: %v", err)
		}
		h.Set("Authorization", basicAuth(user+":"+pass+"x"))
		if _, err := v.Verify(context.Background(), h, nil); !errors.Is(err, signature.ErrMismatch) {
			t.Fatalf("wrong password: %v", err)
		}
	})
}

// FuzzAuthorizationHeader feeds arbitrary Authorization values to Basic and Bearer verifiers.
func FuzzAuthorizationHeader(f *testing.F) {
	basic := signature.Must(signature.Basic(map[string]string{"eventbridge": "p:a:s:s"}))
	bearer := signature.Must(signature.Bearer("tok.en-1"))
	good := basicAuth("eventbridge:p:a:s:s")
	for _, s := range []string{good, "Bearer tok.en-1", "Basic", "Basic ", "Basic ===", "basic " + good[6:], "Basic  " + good[6:],
		"Bearer", "Bearer  tok.en-1", "Digest x", "Basic ZXZlbnRicmlkZ2U", strings.TrimRight(good, "=")} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, auth string) {
		h := http.Header{}
		h["Authorization"] = []string{auth}
		if _, err := basic.Verify(context.Background(), h, nil); err != nil {
			checkRejection(t, err)
		} else {
			scheme, cred, _ := strings.Cut(auth, " ")
			cred = strings.TrimLeft(cred, " ")
			dec, derr := base64.StdEncoding.DecodeString(cred)
			if derr != nil {
				dec, derr = base64.RawStdEncoding.DecodeString(cred)
			}
			if !strings.EqualFold(scheme, "basic") || derr != nil || string(dec) != "eventbridge:p:a:s:s" {
				t.Fatalf("Basic accepted %q", auth)
			}
		}
		if _, err := bearer.Verify(context.Background(), h, nil); err != nil {
			checkRejection(t, err)
		} else {
			scheme, tok, _ := strings.Cut(auth, " ")
			if !strings.EqualFold(scheme, "bearer") || strings.TrimLeft(tok, " ") != "tok.en-1" {
				t.Fatalf("Bearer accepted %q", auth)
			}
		}
	})
}

// FuzzHMACHeader feeds arbitrary X-Hub-Signature-256 values to the GitHub (hex) and Open Messaging
// (base64) verifiers. Only the true MAC in the right encoding may be accepted.
func FuzzHMACHeader(f *testing.F) {
	body := readSample(f, "v2.detail.events.conversation.customer.end.json")
	mac := hmac.New(sha256.New, []byte(githubSecret))
	mac.Write(body)
	sum := mac.Sum(nil)
	hexSig, b64Sig := hex.EncodeToString(sum), base64.StdEncoding.EncodeToString(sum)
	for _, s := range []string{"sha256=" + hexSig, "sha256=" + b64Sig, githubSignature, "sha256=", "sha256", "sha1=" + hexSig,
		"sha256=" + strings.ToUpper(hexSig), "sha256=" + strings.TrimRight(b64Sig, "="), hexSig, "sha256=" + hexSig + "00"} {
		f.Add(s)
	}
	gh := signature.Must(signature.GitHub(githubSecret))
	om := signature.Must(signature.OpenMessaging(githubSecret))
	f.Fuzz(func(t *testing.T, val string) {
		h := http.Header{}
		h["X-Hub-Signature-256"] = []string{val}
		if _, err := gh.Verify(context.Background(), h, body); err != nil {
			checkRejection(t, err)
		} else if !strings.EqualFold(val, "sha256="+hexSig) || !strings.HasPrefix(val, "sha256=") {
			t.Fatalf("GitHub accepted %q", val)
		}
		if _, err := om.Verify(context.Background(), h, body); err != nil {
			checkRejection(t, err)
		} else if val != "sha256="+b64Sig && val != "sha256="+strings.TrimRight(b64Sig, "=") {
			t.Fatalf("Open Messaging accepted %q", val)
		}
	})
}
