package signature_test

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/fanbridge/fanbridge/signature"
)

// post sends body to url with one header and returns the status, for the examples.
func examplePost(url, body string, header ...string) int {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// An Amazon EventBridge API destination whose Connection uses API key authorization sends the key
// in the header it names. Verify checks it and hands the body on intact.
func Example() {
	v, err := signature.APIKey("X-Api-Key", "current-key", "previous-key")
	if err != nil {
		panic(err)
	}
	events := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := signature.BodyBytes(r) // the verified bytes, without another copy
		id, _ := signature.IdentityFrom(r.Context())
		fmt.Printf("handler got %s from key %d\n", body, id.Key)
	})
	srv := httptest.NewServer(signature.Verify(v)(events))
	defer srv.Close()

	fmt.Println(examplePost(srv.URL, `{"id":"1"}`, "X-Api-Key", "previous-key"))
	fmt.Println(examplePost(srv.URL, `{"id":"2"}`, "X-Api-Key", "wrong"))
	fmt.Println(examplePost(srv.URL, `{"id":"3"}`))
	// Output:
	// handler got {"id":"1"} from key 1
	// 200
	// 401
	// 401
}

func ExampleVerify() {
	v, err := signature.StandardWebhooks([]string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		signature.WithClock(func() time.Time { return time.Unix(1614265330, 0) }))
	if err != nil {
		panic(err)
	}
	mw := signature.Verify(v,
		signature.WithMaxBodyBytes(64<<10),
		signature.WithOnReject(func(r *http.Request, err error) { fmt.Println("rejected:", signature.Reason(err)) }))
	srv := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id, _ := signature.IdentityFrom(r.Context())
		fmt.Printf("accepted %s: %s\n", id.MessageID, body)
	})))
	defer srv.Close()

	body := `{"test": 2432232314}`
	fmt.Println(examplePost(srv.URL, body,
		"webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		"webhook-timestamp", "1614265330",
		"webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="))
	fmt.Println(examplePost(srv.URL, body,
		"webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		"webhook-timestamp", "1614264000",
		"webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="))
	// Output:
	// accepted msg_p5jXN8AQM9LWM0D4loKWxJek: {"test": 2432232314}
	// 200
	// rejected: stale
	// 401
}

// VerifyRequest serves frameworks that answer the sender themselves.
func ExampleVerifyRequest() {
	v := signature.Must(signature.GitHub("It's a Secret to Everybody"))
	r := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader("Hello, World!"))
	r.Header.Set("X-Hub-Signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")

	id, err := signature.VerifyRequest(v, r, 0)
	fmt.Println(id.Scheme, err)
	body, _ := io.ReadAll(r.Body) // still readable
	fmt.Println(string(body))
	// Output:
	// github <nil>
	// Hello, World!
}

func ExampleAPIKey() {
	v, err := signature.APIKey("X-Api-Key", "new-key", "old-key")
	if err != nil {
		panic(err)
	}
	h := http.Header{}
	h.Set("X-Api-Key", "old-key")
	id, err := v.Verify(context.Background(), h, nil)
	fmt.Println(id.Scheme, id.Key, err)

	h.Set("X-Api-Key", "guess")
	_, err = v.Verify(context.Background(), h, nil)
	fmt.Println(errors.Is(err, signature.ErrMismatch))
	// Output:
	// api-key 1 <nil>
	// true
}

func ExampleBasic() {
	v, err := signature.Basic(map[string]string{"eventbridge": "pass:with:colons"})
	if err != nil {
		panic(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.SetBasicAuth("eventbridge", "pass:with:colons")
	id, err := v.Verify(context.Background(), r.Header, nil)
	fmt.Println(id.User, err)
	// Output:
	// eventbridge <nil>
}

func ExampleBearer() {
	v, err := signature.Bearer("static-token")
	if err != nil {
		panic(err)
	}
	h := http.Header{"Authorization": {"Bearer static-token"}}
	id, err := v.Verify(context.Background(), h, nil)
	fmt.Println(id.Scheme, err)
	// Output:
	// bearer <nil>
}

// BearerFunc suits tokens issued by an authorization server, as with the OAuth client-credentials
// authorization of an EventBridge API destination Connection.
func ExampleBearerFunc() {
	v, err := signature.BearerFunc(func(ctx context.Context, token string) error {
		if token == "issued-token" { // introspect, or check a JWT, here
			return nil
		}
		return errors.New("unknown token")
	})
	if err != nil {
		panic(err)
	}
	_, err = v.Verify(context.Background(), http.Header{"Authorization": {"Bearer issued-token"}}, nil)
	fmt.Println(err)
	_, err = v.Verify(context.Background(), http.Header{"Authorization": {"Bearer forged"}}, nil)
	fmt.Println(signature.Reason(err))
	// Output:
	// <nil>
	// mismatch
}

// Genesys Cloud does not send X-Genesys-Event-Signature, but a signing proxy in front may; the
// generic HMAC verifier covers it.
func ExampleHMAC() {
	scheme := signature.HMACScheme{Header: "X-Genesys-Event-Signature", Encoding: signature.Hex}
	v, err := signature.HMAC(scheme, "new-secret", "old-secret")
	if err != nil {
		panic(err)
	}
	body := []byte(`{"id":"1"}`)
	sig, _ := signature.SignHMAC(scheme, "old-secret", body)
	id, err := v.Verify(context.Background(), http.Header{"X-Genesys-Event-Signature": {sig}}, body)
	fmt.Println(id.Scheme, id.Key, err)
	// Output:
	// hmac 1 <nil>
}

// The example of GitHub's guide "Validating webhook deliveries".
func ExampleGitHub() {
	v, err := signature.GitHub("It's a Secret to Everybody")
	if err != nil {
		panic(err)
	}
	h := http.Header{"X-Hub-Signature-256": {"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}}
	_, err = v.Verify(context.Background(), h, []byte("Hello, World!"))
	fmt.Println(err)
	// Output:
	// <nil>
}

func ExampleOpenMessaging() {
	v, err := signature.OpenMessaging("open-messaging-secret")
	if err != nil {
		panic(err)
	}
	body := []byte(`{"channel":{"platform":"Open"},"type":"Text","text":"hello"}`)
	h := http.Header{"X-Hub-Signature-256": {"sha256=dD8FtayXX5ESb2ModF5qhVizbB+Q2qKaNGiPHgUBtb8="}}
	_, err = v.Verify(context.Background(), h, body)
	fmt.Println(err)
	// Output:
	// <nil>
}

func ExampleStandardWebhooks() {
	cache, err := signature.NewMemoryReplayCache(100_000)
	if err != nil {
		panic(err)
	}
	v, err := signature.StandardWebhooks(
		[]string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
		signature.WithTolerance(5*time.Minute),
		signature.WithReplayCache(cache),
		signature.WithClock(func() time.Time { return time.Unix(1614265330, 0) }),
	)
	if err != nil {
		panic(err)
	}
	h := http.Header{}
	h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	body := []byte(`{"test": 2432232314}`)

	id, err := v.Verify(context.Background(), h, body)
	fmt.Println(id.MessageID, id.Timestamp.UTC().Format(time.RFC3339), err)
	_, err = v.Verify(context.Background(), h, body)
	fmt.Println(errors.Is(err, signature.ErrReplayed))
	// Output:
	// msg_p5jXN8AQM9LWM0D4loKWxJek 2021-02-25T15:02:10Z <nil>
	// true
}

// One path receiving from several senders.
func ExampleAny() {
	v, err := signature.Any(
		signature.Must(signature.APIKey("X-Api-Key", "eventbridge-key")),
		signature.Must(signature.GitHub("It's a Secret to Everybody")),
	)
	if err != nil {
		panic(err)
	}
	h := http.Header{"X-Hub-Signature-256": {"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}}
	id, err := v.Verify(context.Background(), h, []byte("Hello, World!"))
	fmt.Println(id.Scheme, err)
	_, err = v.Verify(context.Background(), http.Header{}, nil)
	fmt.Println(signature.Reason(err))
	// Output:
	// github <nil>
	// missing
}

func ExampleMust() {
	v := signature.Must(signature.Bearer("token"))
	fmt.Printf("%T\n", v != nil)
	// Output:
	// bool
}

func ExampleNewMemoryReplayCache() {
	cache, err := signature.NewMemoryReplayCache(2)
	if err != nil {
		panic(err)
	}
	now := time.Unix(1700000000, 0)
	ok1, _ := cache.Claim(context.Background(), "msg_1", now, now.Add(5*time.Minute))
	ok2, _ := cache.Claim(context.Background(), "msg_1", now.Add(time.Minute), now.Add(6*time.Minute))
	ok3, _ := cache.Claim(context.Background(), "msg_1", now.Add(5*time.Minute), now.Add(10*time.Minute))
	fmt.Println(ok1, ok2, ok3)
	// Output:
	// true false true
}

func ExampleNewBody() {
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Body = signature.NewBody([]byte(`{"id":"1"}`))
	b, ok := signature.BodyBytes(r)
	fmt.Println(string(b), ok)
	// Output:
	// {"id":"1"} true
}

func ExampleIdentityFrom() {
	ctx := signature.WithIdentity(context.Background(), signature.Identity{Scheme: signature.SchemeBasic, Key: -1, User: "eventbridge"})
	id, ok := signature.IdentityFrom(ctx)
	fmt.Println(id.User, ok)
	// Output:
	// eventbridge true
}

func ExampleReason() {
	err := fmt.Errorf("checking: %w", signature.ErrFuture)
	fmt.Println(signature.Reason(err))
	// Output:
	// future
}

func ExampleSignHMAC() {
	scheme := signature.HMACScheme{Header: "X-Signature", Encoding: signature.Base64URL, Prefix: "v1=", Hash: signature.SHA512}
	sig, err := signature.SignHMAC(scheme, "secret", []byte("body"))
	fmt.Println(sig[:3], len(sig), err)
	// Output:
	// v1= 91 <nil>
}

func ExampleSignHMACRequest() {
	body := []byte(`{"id":"1"}`)
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
	scheme := signature.HMACScheme{Header: "X-Genesys-Event-Signature", Encoding: signature.Hex}
	if err := signature.SignHMACRequest(r, scheme, "secret", body); err != nil {
		panic(err)
	}
	fmt.Println(r.Header.Get("X-Genesys-Event-Signature"))
	// Output:
	// 6146142a2ce0159e84c0767881e4ec80bc397da62526e7d19f70795eb79460c0
}

func ExampleSignGitHub() {
	sig, err := signature.SignGitHub("It's a Secret to Everybody", []byte("Hello, World!"))
	fmt.Println(sig, err)
	// Output:
	// sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17 <nil>
}

func ExampleSignOpenMessaging() {
	sig, err := signature.SignOpenMessaging("It's a Secret to Everybody", []byte("Hello, World!"))
	fmt.Println(sig, err)
	// Output:
	// sha256=dXEH6g6yUJ/CESIczphLijdXC211hsIsRvQ3nIsEPhc= <nil>
}

// The signing test of the Standard Webhooks reference libraries.
func ExampleSignStandardWebhooks() {
	sig, err := signature.SignStandardWebhooks("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	fmt.Println(sig, err)
	// Output:
	// v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= <nil>
}

// The asymmetric (v1a, ed25519) signing test of the Standard Webhooks reference libraries.
func ExampleSignStandardWebhooks_asymmetric() {
	sig, err := signature.SignStandardWebhooks("whsk_VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=",
		"msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	fmt.Println(sig, err)
	// Output:
	// v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag== <nil>
}

func ExampleSignStandardWebhooksRequest() {
	body := []byte(`{"test": 2432232314}`)
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body)))
	err := signature.SignStandardWebhooksRequest(r, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), body,
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	fmt.Println(err)
	fmt.Println(r.Header.Get("webhook-id"))
	fmt.Println(r.Header.Get("webhook-timestamp"))
	fmt.Println(r.Header.Get("webhook-signature"))
	// Output:
	// <nil>
	// msg_p5jXN8AQM9LWM0D4loKWxJek
	// 1614265330
	// v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}

func ExampleNewStandardWebhooksSecret() {
	secret, err := signature.NewStandardWebhooksSecret()
	fmt.Println(secret[:6], len(secret), err)
	// Output:
	// whsec_ 50 <nil>
}

func ExampleNewStandardWebhooksKeyPair() {
	public, signing, err := signature.NewStandardWebhooksKeyPair()
	if err != nil {
		panic(err)
	}
	v := signature.Must(signature.StandardWebhooks([]string{public}))
	body := []byte(`{"id":"1"}`)
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	_ = signature.SignStandardWebhooksRequest(r, "msg_1", time.Now(), body, signing)
	_, err = v.Verify(context.Background(), r.Header, body)
	fmt.Println(public[:5], signing[:5], err)
	// Output:
	// whpk_ whsk_ <nil>
}

func ExampleStandardWebhooksPublicKey() {
	pub, err := signature.StandardWebhooksPublicKey("whsk_VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=")
	fmt.Println(pub[:5], len(pub), err)
	// Output:
	// whpk_ 49 <nil>
}

// tenantKeys is a verifier of one's own that decides from the headers alone: each tenant has its
// own key. Implementing HeaderVerifier lets Verify refuse a wrong key before reading the body.
type tenantKeys map[string]string

func (t tenantKeys) VerifyHeader(_ context.Context, h http.Header) (signature.Identity, error) {
	tenant, key := h.Get("X-Tenant"), h.Get("X-Api-Key")
	if tenant == "" || key == "" {
		return signature.Identity{}, signature.ErrMissing
	}
	// Digests have one length, so the comparison takes the same time however long the key.
	got, want := sha256.Sum256([]byte(key)), sha256.Sum256([]byte(t[tenant]))
	if _, known := t[tenant]; !known || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return signature.Identity{}, fmt.Errorf("%w: wrong tenant or key", signature.ErrMismatch)
	}
	return signature.Identity{Scheme: "tenant-key", Key: -1, User: tenant}, nil
}

func (t tenantKeys) Verify(ctx context.Context, h http.Header, _ []byte) (signature.Identity, error) {
	return t.VerifyHeader(ctx, h)
}

func ExampleHeaderVerifier() {
	events := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := signature.IdentityFrom(r.Context())
		body, _ := signature.BodyBytes(r)
		fmt.Printf("%s sent %s\n", id.User, body)
	})
	srv := httptest.NewServer(signature.Verify(tenantKeys{"acme": "acme-key"})(events))
	defer srv.Close()

	fmt.Println(examplePost(srv.URL, `{"id":"1"}`, "X-Tenant", "acme", "X-Api-Key", "acme-key"))
	fmt.Println(examplePost(srv.URL, `{"id":"2"}`, "X-Tenant", "acme", "X-Api-Key", "guess"))
	// Output:
	// acme sent {"id":"1"}
	// 200
	// 401
}
