package signature

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Key prefixes of the Standard Webhooks specification.
const (
	// StandardWebhooksSecretPrefix marks a symmetric (v1, HMAC-SHA256) secret: "whsec_" + base64.
	StandardWebhooksSecretPrefix = "whsec_"
	// StandardWebhooksPublicKeyPrefix marks an ed25519 public key (v1a, verifying): "whpk_" + base64.
	StandardWebhooksPublicKeyPrefix = "whpk_"
	// StandardWebhooksSigningKeyPrefix marks an ed25519 secret key (v1a, signing): "whsk_" + base64
	// of the 32-byte seed.
	StandardWebhooksSigningKeyPrefix = "whsk_"
)

const (
	// DefaultTolerance is how far a Standard Webhooks timestamp may be from the clock, either way.
	DefaultTolerance = 5 * time.Minute
	// minSecretBytes is the specification's minimum for a symmetric secret.
	minSecretBytes = 24
	// maxMessageID bounds webhook-id: it is signed, logged by reference and kept in replay caches.
	maxMessageID = 256
	// maxSignatures bounds the entries of webhook-signature that are parsed.
	maxSignatures = 16
	// maxV1aEntries bounds the v1a entries that are checked: each costs an ed25519 verification per
	// public key, hashing the whole signed content, and only a sender holding more ed25519 keys than
	// this at once would need more (a rotation has two).
	maxV1aEntries = 3
	// maxTimestampDigits keeps webhook-timestamp far from integer overflow (year 33658).
	maxTimestampDigits = 12
)

// Header names, in canonical form.
const (
	hdrWebhookID        = "Webhook-Id"
	hdrWebhookTimestamp = "Webhook-Timestamp"
	hdrWebhookSignature = "Webhook-Signature"
	hdrSvixID           = "Svix-Id"
	hdrSvixTimestamp    = "Svix-Timestamp"
	hdrSvixSignature    = "Svix-Signature"
)

// WebhookOption configures StandardWebhooks.
type WebhookOption interface{ apply(*webhookConfig) }

type webhookConfig struct {
	tolerance time.Duration
	now       func() time.Time
	cache     ReplayCache
	svix      bool
}

type webhookOptionFunc func(*webhookConfig)

func (f webhookOptionFunc) apply(c *webhookConfig) { f(c) }

// maxTolerance is the longest tolerance StandardWebhooks takes: a year.
const maxTolerance = 365 * 24 * time.Hour

// WithTolerance sets how far webhook-timestamp may lie from the clock, in the past (stale) and in
// the future alike; it must be positive and at most a year. It also sets how long a replay cache
// keeps an id: until the first instant the timestamp is stale, one nanosecond after timestamp
// plus tolerance. The default is DefaultTolerance (5 minutes).
func WithTolerance(d time.Duration) WebhookOption {
	return webhookOptionFunc(func(c *webhookConfig) { c.tolerance = d })
}

// WithClock sets the clock timestamps are checked against; tests pass a fixed one. The default is
// time.Now.
func WithClock(now func() time.Time) WebhookOption {
	return webhookOptionFunc(func(c *webhookConfig) { c.now = now })
}

// WithReplayCache rejects a message whose webhook-id was already accepted (ErrReplayed) while its
// timestamp is within the tolerance. Ids are claimed only after the signature verified, so forged
// requests cannot fill the cache, and the middleware releases a claim when the handler answers
// outside 2xx, so that the sender's retry is not refused. The default is no replay cache: use the
// id for idempotency downstream (fanout deduplicates on the event ID, which eventbridge's Handler
// derives from the id for bodies that carry none).
func WithReplayCache(c ReplayCache) WebhookOption {
	return webhookOptionFunc(func(cfg *webhookConfig) { cfg.cache = c })
}

// WithSvixHeaders sets whether svix-id, svix-timestamp and svix-signature are read when none of the
// webhook- headers is present (Svix sends its branded names unless white-labelled; the scheme is the
// same). The three headers are always taken from the same family. The default is true.
func WithSvixHeaders(on bool) WebhookOption {
	return webhookOptionFunc(func(c *webhookConfig) { c.svix = on })
}

// StandardWebhooks returns a Verifier for the Standard Webhooks specification (and Svix, which it
// comes from): headers webhook-id, webhook-timestamp and webhook-signature; the signed content is
// "<id>.<timestamp>.<body>"; webhook-signature holds space-separated "<version>,<base64>" entries,
// and the request is accepted when any v1 or v1a entry matches any key.
//
// Each key is one of:
//   - "whsec_<base64>": a symmetric secret of at least 24 bytes, for v1 (HMAC-SHA256 keyed with the
//     decoded bytes);
//   - "whpk_<base64>": a 32-byte ed25519 public key, for v1a.
//
// The prefix is required, as the specification serializes keys. Some Svix libraries also take a
// secret as bare base64, but a bare value cannot say what it is: a public key given without its
// whpk_ prefix would become an HMAC secret, and everyone who knows the public key could then sign
// v1 messages. A signing key ("whsk_") is refused too: a receiver needs only the public key (see
// StandardWebhooksPublicKey). Several keys may be given for rotation; Identity.Key is the index of
// the one that matched, Identity.MessageID the webhook-id and Identity.Timestamp the signed time.
//
// The timestamp must be within the tolerance of the clock in both directions (ErrStale, ErrFuture).
// A webhook-id longer than 256 bytes or containing "." is ErrMalformed (the specification forbids
// dots, which would make the signed content ambiguous); so is a header with more than 16 entries.
// Entries of unknown versions are ignored, for forward compatibility.
//
// Only the first three well-formed v1a entries are checked, and only when no v1 entry matched: each
// against every public key, in the order of keys, until one verifies. A request thus costs at most
// one HMAC-SHA256 per secret and three ed25519 verifications per public key, whatever it carries,
// and each of these hashes the whole signed content, so the cost grows with the body (up to the
// middleware's limit). A sender rotating ed25519 keys sends one v1a entry per key it holds, two
// during a rotation; one that lists more than three loses those after the third.
//
// StandardWebhooks fails when keys is empty, a key has none of the prefixes or cannot be decoded,
// a secret is too short, or an option is invalid. The error names the key by its index, never by
// its value.
func StandardWebhooks(keys []string, opts ...WebhookOption) (Verifier, error) {
	cfg := webhookConfig{tolerance: DefaultTolerance, now: time.Now, svix: true}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("signature: StandardWebhooks: nil option")
		}
		o.apply(&cfg)
	}
	switch {
	case cfg.tolerance <= 0:
		return nil, fmt.Errorf("signature: StandardWebhooks: tolerance %v must be positive", cfg.tolerance)
	case cfg.tolerance > maxTolerance:
		// Past this, timestamp plus tolerance overflows time.Time's arithmetic for real
		// timestamps, and a tolerance of centuries is no check anyway.
		return nil, fmt.Errorf("signature: StandardWebhooks: tolerance %v is longer than %v", cfg.tolerance, maxTolerance)
	case cfg.now == nil:
		return nil, errors.New("signature: StandardWebhooks: clock is nil")
	case len(keys) == 0:
		return nil, errors.New("signature: StandardWebhooks needs at least one key")
	}
	v := &webhookVerifier{cfg: cfg}
	seen := make(map[string]int, len(keys))
	for i, k := range keys {
		if j, dup := seen[k]; dup {
			return nil, fmt.Errorf("signature: StandardWebhooks key %d repeats key %d", i, j)
		}
		seen[k] = i
		switch {
		case strings.HasPrefix(k, StandardWebhooksPublicKeyPrefix):
			pub, err := decodeKey(k[len(StandardWebhooksPublicKeyPrefix):], ed25519.PublicKeySize)
			if err != nil {
				return nil, fmt.Errorf("signature: StandardWebhooks key %d (whpk_): %w", i, err)
			}
			v.public = append(v.public, publicKey{index: i, key: ed25519.PublicKey(pub)})
		case strings.HasPrefix(k, StandardWebhooksSigningKeyPrefix):
			return nil, fmt.Errorf("signature: StandardWebhooks key %d is a signing key (whsk_); give the receiver its public key (whpk_)", i)
		case strings.HasPrefix(k, StandardWebhooksSecretPrefix):
			secret, err := decodeSecret(k)
			if err != nil {
				return nil, fmt.Errorf("signature: StandardWebhooks key %d: %w", i, err)
			}
			v.secrets = append(v.secrets, secretKey{index: i, mac: newMACPool(sha256.New, secret)})
		default:
			return nil, fmt.Errorf("signature: StandardWebhooks key %d: %w", i, errNoKeyPrefix)
		}
	}
	return v, nil
}

// errNoKeyPrefix refuses a key without its prefix: bare base64 could be a public key as well as a
// secret, and a public key taken for a secret would let anyone sign.
var errNoKeyPrefix = errors.New("key has no prefix: write a symmetric secret as whsec_<base64> " +
	"and an ed25519 public key as whpk_<base64>")

// decodeSecret decodes a symmetric secret: whsec_ and base64.
func decodeSecret(k string) ([]byte, error) {
	rest, ok := strings.CutPrefix(k, StandardWebhooksSecretPrefix)
	if !ok {
		return nil, errors.New("secret has no whsec_ prefix")
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, errors.New("secret is not whsec_ followed by base64")
	}
	if len(b) < minSecretBytes {
		return nil, fmt.Errorf("secret has %d bytes; the specification requires at least %d", len(b), minSecretBytes)
	}
	return b, nil
}

func decodeKey(s string, size int) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("key is not base64")
	}
	if len(b) != size {
		return nil, fmt.Errorf("key has %d bytes, want %d", len(b), size)
	}
	return b, nil
}

type secretKey struct {
	index int
	mac   *macPool
}

type publicKey struct {
	index int
	key   ed25519.PublicKey
}

type webhookVerifier struct {
	cfg      webhookConfig
	secrets  []secretKey
	public   []publicKey
	inFlight inFlight // claims whose requests the middleware is handling, when the cache has none
}

// webhookHeaders are the three raw header values of one request.
type webhookHeaders struct {
	id, timestamp, signature string
}

// readWebhookHeaders picks the header family (webhook- first, then svix-) and returns its values.
func readWebhookHeaders(h http.Header, svix bool) (webhookHeaders, error) {
	names := [3]string{hdrWebhookID, hdrWebhookTimestamp, hdrWebhookSignature}
	if svix && h[hdrWebhookID] == nil && h[hdrWebhookTimestamp] == nil && h[hdrWebhookSignature] == nil {
		names = [3]string{hdrSvixID, hdrSvixTimestamp, hdrSvixSignature}
	}
	var w webhookHeaders
	var err error
	if w.id, err = singleValue(h, names[0]); err != nil {
		return w, err
	}
	if w.timestamp, err = singleValue(h, names[1]); err != nil {
		return w, err
	}
	if w.signature, err = singleValue(h, names[2]); err != nil {
		return w, err
	}
	return w, nil
}

// checkMessageID validates webhook-id.
func checkMessageID(id string) error {
	if len(id) > maxMessageID {
		return fmt.Errorf("%w: webhook-id longer than %d bytes", ErrMalformed, maxMessageID)
	}
	if strings.IndexByte(id, '.') >= 0 {
		return fmt.Errorf("%w: webhook-id contains a dot", ErrMalformed)
	}
	return nil
}

// parseTimestamp parses webhook-timestamp: decimal Unix seconds, digits only (no sign, no space,
// no fraction).
func parseTimestamp(s string) (int64, error) {
	if s == "" || len(s) > maxTimestampDigits {
		return 0, fmt.Errorf("%w: webhook-timestamp is not Unix seconds", ErrMalformed)
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: webhook-timestamp is not Unix seconds", ErrMalformed)
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// signatureList holds the decoded entries of webhook-signature that this package can check.
type signatureList struct {
	v1   [maxSignatures][sha256.Size]byte
	nv1  int
	v1a  [maxV1aEntries][ed25519.SignatureSize]byte
	nv1a int
}

// parseSignatures decodes webhook-signature. Entries of other versions are skipped; entries of a
// known version that do not decode to the right length are skipped too, since a rotation may put
// anything next to a good signature. Well-formed v1a entries after the first maxV1aEntries are
// skipped, so that a forged header cannot make the verifier run more ed25519 checks. It is
// ErrMalformed when nothing usable remains or the header has too many entries.
func parseSignatures(s string, out *signatureList) error {
	entries := 0
	for s != "" {
		var entry string
		if i := strings.IndexByte(s, ' '); i >= 0 {
			entry, s = s[:i], s[i+1:]
		} else {
			entry, s = s, ""
		}
		if entry == "" {
			continue
		}
		entries++
		if entries > maxSignatures {
			return fmt.Errorf("%w: webhook-signature has more than %d entries", ErrMalformed, maxSignatures)
		}
		version, sig, ok := strings.Cut(entry, ",")
		if !ok {
			continue
		}
		switch version {
		case "v1":
			if _, err := decodeBase64(out.v1[out.nv1][:], sig, false, sha256.Size); err == nil {
				out.nv1++
			}
		case "v1a":
			if out.nv1a == maxV1aEntries {
				continue
			}
			if _, err := decodeBase64(out.v1a[out.nv1a][:], sig, false, ed25519.SignatureSize); err == nil {
				out.nv1a++
			}
		}
	}
	if out.nv1 == 0 && out.nv1a == 0 {
		return fmt.Errorf("%w: webhook-signature has no valid v1 or v1a entry", ErrMalformed)
	}
	return nil
}

var dot = []byte{'.'}

func (v *webhookVerifier) Verify(ctx context.Context, h http.Header, body []byte) (Identity, error) {
	return v.verify(ctx, h, body, false)
}

func (v *webhookVerifier) verifyTracked(ctx context.Context, h http.Header, body []byte) (Identity, error) {
	return v.verify(ctx, h, body, true)
}

// verify is Verify; with track, a claim stays in flight until the Identity is settled, and a copy
// of its request meanwhile is unavailable rather than replayed.
func (v *webhookVerifier) verify(ctx context.Context, h http.Header, body []byte, track bool) (Identity, error) {
	var w webhookHeaders
	var sigs signatureList
	now := v.cfg.now()
	ts, err := v.checkHeaders(h, now, &w, &sigs)
	if err != nil {
		return Identity{}, err
	}
	idx := v.match(&w, body, &sigs)
	if idx < 0 {
		return Identity{}, fmt.Errorf("%w: no webhook-signature entry matches a key", ErrMismatch)
	}
	id := Identity{Scheme: SchemeStandardWebhooks, Key: idx, MessageID: w.id, Timestamp: ts}
	if c := v.cfg.cache; c != nil {
		// The pair is what a captured request repeats: a sender's retry signs the same id with a
		// new timestamp, and must verify (deduplication by event ID answers it), while a replay
		// cannot change the timestamp without breaking the signature.
		key := w.id + "." + w.timestamp
		pending := &v.inFlight
		if p, ok := c.(interface{ PendingClaims() *PendingClaims }); ok {
			if shared := p.PendingClaims(); shared != nil {
				pending = shared
			}
		}
		if track && !pending.add(key) {
			return Identity{}, fmt.Errorf("%w: a request with this webhook-id and webhook-timestamp is being handled; retry once it is answered", ErrUnavailable)
		}
		// Kept until the first instant the timestamp is stale: at ts+tolerance it is still accepted.
		claimed, err := c.Claim(ctx, key, now, ts.Add(v.cfg.tolerance).Add(time.Nanosecond))
		if err == nil && !claimed {
			err = fmt.Errorf("%w: webhook-id and webhook-timestamp seen before", ErrReplayed)
		} else if err != nil {
			err = fmt.Errorf("%w: replay cache: %w", ErrUnavailable, err)
		}
		if err != nil {
			if track {
				pending.remove(key)
			}
			return Identity{}, err
		}
		id.release = func(ctx context.Context) error { return c.Release(ctx, key) }
		if track {
			id.settle = func() { pending.remove(key) }
		}
	}
	return id, nil
}

// checkHeaders reads and checks the headers into w and sigs: everything Verify checks before it
// needs the body, the timestamp against now included. It returns the timestamp.
func (v *webhookVerifier) checkHeaders(h http.Header, now time.Time, w *webhookHeaders, sigs *signatureList) (time.Time, error) {
	var err error
	if *w, err = readWebhookHeaders(h, v.cfg.svix); err != nil {
		return time.Time{}, err
	}
	if err := checkMessageID(w.id); err != nil {
		return time.Time{}, err
	}
	unix, err := parseTimestamp(w.timestamp)
	if err != nil {
		return time.Time{}, err
	}
	if err := parseSignatures(w.signature, sigs); err != nil {
		return time.Time{}, err
	}
	ts := time.Unix(unix, 0)
	if now.Sub(ts) > v.cfg.tolerance {
		return time.Time{}, fmt.Errorf("%w: webhook-timestamp is %v old", ErrStale, now.Sub(ts).Truncate(time.Second))
	}
	if ts.Sub(now) > v.cfg.tolerance {
		return time.Time{}, fmt.Errorf("%w: webhook-timestamp is %v ahead", ErrFuture, ts.Sub(now).Truncate(time.Second))
	}
	return ts, nil
}

// precheck implements prechecker.
func (v *webhookVerifier) precheck(_ context.Context, h http.Header) error {
	var w webhookHeaders
	var sigs signatureList
	_, err := v.checkHeaders(h, v.cfg.now(), &w, &sigs)
	return err
}

// match returns the index of the key that produced one of sigs, or -1. Every symmetric key is
// computed and compared against every v1 entry, with no early exit. Only when none matched are the
// v1a entries (at most maxV1aEntries) checked against each public key in turn, until one verifies.
func (v *webhookVerifier) match(w *webhookHeaders, body []byte, sigs *signatureList) int {
	idx := -1
	if sigs.nv1 > 0 {
		for _, k := range v.secrets {
			countCompare()
			st := k.mac.get()
			st.h.Write(bytesOf(w.id))
			st.h.Write(dot)
			st.h.Write(bytesOf(w.timestamp))
			st.h.Write(dot)
			st.h.Write(body)
			sum := st.h.Sum(st.sum[:0])
			for i := 0; i < sigs.nv1; i++ {
				idx = subtle.ConstantTimeSelect(boolInt(hmac.Equal(sum, sigs.v1[i][:])), k.index, idx)
			}
			k.mac.put(st)
		}
	}
	if sigs.nv1a > 0 && len(v.public) > 0 && idx < 0 {
		// ed25519 has no streaming interface: the signed content is built once.
		msg := signedContent(w.id, w.timestamp, body)
		for _, k := range v.public {
			countCompare()
			for i := 0; i < sigs.nv1a; i++ {
				countEd25519()
				if ed25519.Verify(k.key, msg, sigs.v1a[i][:]) {
					return k.index
				}
			}
		}
	}
	return idx
}

// onEd25519, when set (by tests only), is called once per ed25519 verification. It lets a test
// count the checks a request costs, each of which hashes the whole signed content.
var onEd25519 func()

func countEd25519() {
	if onEd25519 != nil {
		onEd25519()
	}
}

func signedContent(id, timestamp string, body []byte) []byte {
	msg := make([]byte, 0, len(id)+len(timestamp)+2+len(body))
	msg = append(msg, id...)
	msg = append(msg, '.')
	msg = append(msg, timestamp...)
	msg = append(msg, '.')
	return append(msg, body...)
}

// SignStandardWebhooks returns one webhook-signature entry for body, sent as message id at time ts:
// "v1,<base64>" for a symmetric secret ("whsec_") and "v1a,<base64>" for a signing key ("whsk_").
// To sign with several keys, join the entries with a space. It fails when the key has neither
// prefix or cannot be decoded, or id is empty, too long or contains a dot.
func SignStandardWebhooks(key, id string, ts time.Time, body []byte) (string, error) {
	if id == "" {
		return "", errors.New("signature: Standard Webhooks message id is empty")
	}
	if err := checkMessageID(id); err != nil {
		return "", err
	}
	timestamp := strconv.FormatInt(ts.Unix(), 10)
	if strings.HasPrefix(key, StandardWebhooksSigningKeyPrefix) {
		priv, err := signingKey(key)
		if err != nil {
			return "", err
		}
		sig := ed25519.Sign(priv, signedContent(id, timestamp, body))
		return "v1a," + base64.StdEncoding.EncodeToString(sig), nil
	}
	if strings.HasPrefix(key, StandardWebhooksPublicKeyPrefix) {
		return "", errors.New("signature: a public key (whpk_) cannot sign; use the signing key (whsk_)")
	}
	if !strings.HasPrefix(key, StandardWebhooksSecretPrefix) {
		return "", errors.New("signature: Standard Webhooks key has no prefix: write a symmetric secret as whsec_<base64> and a signing key as whsk_<base64>")
	}
	secret, err := decodeSecret(key)
	if err != nil {
		return "", fmt.Errorf("signature: %w", err)
	}
	m := hmac.New(sha256.New, secret)
	m.Write(signedContent(id, timestamp, body))
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil)), nil
}

// signingKey decodes a whsk_ key: the 32-byte ed25519 seed, or the 64-byte seed and public key.
func signingKey(key string) (ed25519.PrivateKey, error) {
	b, err := base64.StdEncoding.DecodeString(key[len(StandardWebhooksSigningKeyPrefix):])
	if err != nil {
		return nil, errors.New("signature: signing key is not whsk_ followed by base64")
	}
	switch len(b) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(b), nil
	case ed25519.PrivateKeySize:
		priv := ed25519.NewKeyFromSeed(b[:ed25519.SeedSize])
		if subtle.ConstantTimeCompare(priv, b) != 1 {
			return nil, errors.New("signature: signing key's public half does not match its seed")
		}
		return priv, nil
	}
	return nil, fmt.Errorf("signature: signing key has %d bytes, want %d", len(b), ed25519.SeedSize)
}

// SignStandardWebhooksRequest sets webhook-id, webhook-timestamp and webhook-signature on r for
// body, signed with each of keys (see SignStandardWebhooks). body must be exactly what r sends.
func SignStandardWebhooksRequest(r *http.Request, id string, ts time.Time, body []byte, keys ...string) error {
	if len(keys) == 0 {
		return errors.New("signature: no Standard Webhooks key to sign with")
	}
	entries := make([]string, len(keys))
	for i, k := range keys {
		e, err := SignStandardWebhooks(k, id, ts, body)
		if err != nil {
			return err
		}
		entries[i] = e
	}
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	r.Header.Set(hdrWebhookID, id)
	r.Header.Set(hdrWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
	r.Header.Set(hdrWebhookSignature, strings.Join(entries, " "))
	return nil
}

// NewStandardWebhooksSecret returns a new random symmetric secret, "whsec_" and 32 bytes in base64.
func NewStandardWebhooksSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return StandardWebhooksSecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// NewStandardWebhooksKeyPair returns a new ed25519 key pair for v1a: the public key ("whpk_") for
// receivers and the signing key ("whsk_", the seed) for the sender.
func NewStandardWebhooksKeyPair() (public, signing string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	return StandardWebhooksPublicKeyPrefix + base64.StdEncoding.EncodeToString(pub),
		StandardWebhooksSigningKeyPrefix + base64.StdEncoding.EncodeToString(priv.Seed()), nil
}

// StandardWebhooksPublicKey returns the public key ("whpk_") of a signing key ("whsk_").
func StandardWebhooksPublicKey(signing string) (string, error) {
	if !strings.HasPrefix(signing, StandardWebhooksSigningKeyPrefix) {
		return "", errors.New("signature: not a signing key (whsk_)")
	}
	priv, err := signingKey(signing)
	if err != nil {
		return "", err
	}
	return StandardWebhooksPublicKeyPrefix + base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)), nil
}
