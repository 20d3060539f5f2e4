package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/filter"
	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/notifications"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/signature"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// This file turns configuration values into the library's values. Validate calls the same
// functions, so a configuration that validates also builds.

// KeyError is a problem with one key below the value that reported it.
type KeyError struct {
	Key string
	Err error
}

func (e *KeyError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *KeyError) Unwrap() error { return e.Err }

func keyErr(key string, err error) error {
	var ke *KeyError
	if errors.As(err, &ke) {
		return &KeyError{Key: key + "." + ke.Key, Err: ke.Err}
	}
	return &KeyError{Key: key, Err: err}
}

// Build returns the verifier v describes.
func (v *Verifier) Build() (signature.Verifier, error) { return v.build("", nil) }

// ReplayCaches provides the replay cache of a standard_webhooks verifier: key names the verifier
// (its intake path, its place among the path's standard_webhooks verifiers, and its
// replay_cache), size is its replay_cache and tolerance its tolerance. A service keeps its caches
// across reloads this way, so that a reload does not forget the messages already accepted.
type ReplayCaches func(key string, size int, tolerance time.Duration) (signature.ReplayCache, error)

// replayKey names the nth standard_webhooks verifier of an intake path for ReplayCaches. Its keys
// and its tolerance are not part of the name: a reload that rotates the keys, adding a new one
// beside the old, must still refuse a message accepted under the old key (a raised tolerance is
// the ReplayCaches' to apply to the ids held), and verifiers of other kinds may come and go
// around it. Only a new size gives a new cache.
func replayKey(path string, nth int, sw *StandardWebhooksVerifier) string {
	return fmt.Sprintf("%s\x00%d\x00%d", path, nth, sw.ReplayCache)
}

func (v *Verifier) build(key string, caches ReplayCaches) (signature.Verifier, error) {
	switch {
	case v.APIKey != nil:
		return signature.APIKey(v.APIKey.Header, v.APIKey.Keys...)
	case v.Basic != nil:
		return signature.Basic(v.Basic.Users)
	case v.Bearer != nil:
		return signature.Bearer(v.Bearer.Tokens...)
	case v.HMAC != nil:
		s, err := v.HMAC.Scheme()
		if err != nil {
			return nil, err
		}
		return signature.HMAC(s, v.HMAC.Secrets...)
	case v.GitHub != nil:
		return signature.GitHub(v.GitHub.Secrets...)
	case v.OpenMessaging != nil:
		return signature.OpenMessaging(v.OpenMessaging.Secrets...)
	case v.StandardWebhooks != nil:
		sw := v.StandardWebhooks
		var opts []signature.WebhookOption
		if sw.Tolerance > 0 {
			opts = append(opts, signature.WithTolerance(sw.Tolerance.D()))
		}
		if sw.SvixHeaders != nil {
			opts = append(opts, signature.WithSvixHeaders(*sw.SvixHeaders))
		}
		if sw.ReplayCache < 0 {
			return nil, fmt.Errorf("replay_cache must be 0 (off) or the number of ids to remember, got %d", sw.ReplayCache)
		}
		if sw.ReplayCache > 0 {
			var c signature.ReplayCache
			var err error
			if caches != nil {
				tolerance := signature.DefaultTolerance
				if sw.Tolerance > 0 {
					tolerance = sw.Tolerance.D()
				}
				c, err = caches(key, sw.ReplayCache, tolerance)
			} else {
				c, err = signature.NewMemoryReplayCache(sw.ReplayCache)
			}
			if err != nil {
				return nil, err
			}
			opts = append(opts, signature.WithReplayCache(c))
		}
		return signature.StandardWebhooks(sw.Keys, opts...)
	}
	return nil, errors.New("no verifier kind given")
}

// Kind names the verifier's kind as its key in the file.
func (v *Verifier) Kind() string {
	var kinds []string
	if v.APIKey != nil {
		kinds = append(kinds, "api_key")
	}
	if v.Basic != nil {
		kinds = append(kinds, "basic")
	}
	if v.Bearer != nil {
		kinds = append(kinds, "bearer")
	}
	if v.HMAC != nil {
		kinds = append(kinds, "hmac")
	}
	if v.GitHub != nil {
		kinds = append(kinds, "github")
	}
	if v.OpenMessaging != nil {
		kinds = append(kinds, "open_messaging")
	}
	if v.StandardWebhooks != nil {
		kinds = append(kinds, "standard_webhooks")
	}
	return strings.Join(kinds, ",")
}

// Scheme returns the HMAC scheme described by h.
func (h *HMACVerifier) Scheme() (signature.HMACScheme, error) {
	s := signature.HMACScheme{Name: "hmac", Header: h.Header, Prefix: h.Prefix}
	switch strings.ToLower(h.Encoding) {
	case "hex":
		s.Encoding = signature.Hex
	case "base64":
		s.Encoding = signature.Base64
	case "base64url":
		s.Encoding = signature.Base64URL
	default:
		return s, fmt.Errorf("encoding must be hex, base64 or base64url, got %q", h.Encoding)
	}
	switch strings.ToLower(h.Hash) {
	case "", "sha256":
		s.Hash = signature.SHA256
	case "sha1":
		s.Hash = signature.SHA1
	case "sha512":
		s.Hash = signature.SHA512
	default:
		return s, fmt.Errorf("hash must be sha256, sha1 or sha512, got %q", h.Hash)
	}
	return s, nil
}

// Verifier returns the intake's verifier: its verifiers joined with signature.Any, or nil for an
// insecure_no_auth path.
func (in *Intake) Verifier() (signature.Verifier, error) { return in.VerifierWith(nil) }

// VerifierWith is Verifier, taking the replay caches of standard_webhooks verifiers from caches
// (new ones when nil).
func (in *Intake) VerifierWith(caches ReplayCaches) (signature.Verifier, error) {
	if len(in.Verifiers) == 0 {
		return nil, nil
	}
	vs := make([]signature.Verifier, 0, len(in.Verifiers))
	nth := 0
	for i := range in.Verifiers {
		var key string
		if sw := in.Verifiers[i].StandardWebhooks; sw != nil {
			key = replayKey(in.Path, nth, sw)
			nth++
		}
		v, err := in.Verifiers[i].build(key, caches)
		if err != nil {
			return nil, fmt.Errorf("verifiers[%d].%s: %w", i, in.Verifiers[i].Kind(), err)
		}
		vs = append(vs, v)
	}
	if len(vs) == 1 {
		return vs[0], nil
	}
	return signature.Any(vs...)
}

// HandlerOptions returns the eventbridge.Handler options of the intake (without telemetry).
func (in *Intake) HandlerOptions() []eventbridge.Option {
	opts := []eventbridge.Option{
		eventbridge.WithMaxBodySize(int64(in.MaxBody)),
		eventbridge.WithDispatchTimeout(in.DispatchTimeout.D()),
	}
	if len(in.AllowedSources) > 0 {
		opts = append(opts, eventbridge.WithAllowedSources(in.AllowedSources...))
	}
	if len(in.AllowedAccounts) > 0 {
		opts = append(opts, eventbridge.WithAllowedAccounts(in.AllowedAccounts...))
	}
	if in.IgnoredStatus != 0 {
		opts = append(opts, eventbridge.WithIgnoredStatus(in.IgnoredStatus))
	}
	if in.RetryAfter > 0 {
		opts = append(opts, eventbridge.WithRetryAfter(in.RetryAfter.D()))
	}
	if len(in.Formats) > 0 {
		fs := make([]eventbridge.Format, len(in.Formats))
		for i, f := range in.Formats {
			fs[i] = eventbridge.Format(f)
		}
		opts = append(opts, eventbridge.WithFormats(fs...))
	}
	if in.CloudEventsBinary {
		opts = append(opts, eventbridge.WithCloudEventsBinaryMode())
	}
	return opts
}

// Build returns the fanout route r describes, its CEL expression compiled under limits (as
// Validate leaves them; a limit left at 0 is the library's default) and with extra, options the
// configuration does not hold (a logger).
func (r *Route) Build(limits CELLimits, extra ...filter.ExprOption) (fanout.Route, error) {
	out := fanout.Route{Name: r.Name, Sinks: r.Sinks}
	switch {
	case r.Pattern != nil:
		// A parsed *filter.Pattern as the Filter is matched with the other pattern routes, as a
		// Pattern would be, without fanout parsing the source a second time.
		p, err := filter.ParsePattern(r.Pattern.JSON)
		if err != nil {
			return out, fmt.Errorf("pattern: %w", err)
		}
		out.Filter = p
	case r.CEL != "":
		opts, err := limits.options()
		if err != nil {
			return out, fmt.Errorf("cel: %w", err)
		}
		x, err := filter.Expr(r.CEL, append(opts, extra...)...)
		if err != nil {
			return out, fmt.Errorf("cel: %w", err)
		}
		out.Filter = x
	case r.All:
		out.Filter = fanout.All
	default:
		return out, errors.New("one of pattern, cel or all is required")
	}
	return out, nil
}

// options returns the filter options of l.
func (l CELLimits) options() ([]filter.ExprOption, error) {
	var opts []filter.ExprOption
	switch {
	case l.CostLimit < 0:
		// A conversion to the library's uint64 would make it a limit no evaluation reaches.
		return nil, fmt.Errorf("the cost limit must be positive, not %d", l.CostLimit)
	case l.CostLimit > 0:
		opts = append(opts, filter.WithCostLimit(uint64(l.CostLimit)))
	}
	if l.TimeLimit != 0 {
		// The library refuses a negative one.
		opts = append(opts, filter.WithTimeLimit(l.TimeLimit.D()))
	}
	return opts, nil
}

// Policy returns the retry policy.
func (p RetryPolicy) Policy() retry.Policy {
	return retry.Policy{
		InitialInterval: p.InitialInterval.D(),
		Multiplier:      p.Multiplier,
		MaxInterval:     p.MaxInterval.D(),
		MaxAttempts:     p.MaxAttempts,
		MaxAge:          p.MaxAge.D(),
		AttemptTimeout:  p.AttemptTimeout.D(),
	}
}

// Config loads the TLS files and returns the client TLS configuration.
func (t *TLS) Config() (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // only when asked by name
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, keyErr("ca_file", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, keyErr("ca_file", fmt.Errorf("%s holds no PEM certificate", t.CAFile))
		}
		c.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, keyErr("key_file", errors.New("cert_file and key_file go together"))
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			// The error of LoadX509KeyPair names the problem and either file, never key bytes:
			// it is about the pair, and so the TLS settings as a whole.
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// ClientConfig returns the kafkasink client configuration (TLS files loaded).
func (k *KafkaClient) ClientConfig() (kafkasink.ClientConfig, error) {
	cc := kafkasink.ClientConfig{
		Brokers:         k.Brokers,
		ClientID:        k.ClientID,
		Linger:          k.Linger.D(),
		DeliveryTimeout: k.DeliveryTimeout.D(),
	}
	if k.TLS != nil {
		t, err := k.TLS.Config()
		if err != nil {
			return cc, keyErr("tls", err)
		}
		cc.TLS = t
	}
	if k.SASL != nil {
		mech := map[string]string{
			"plain":         kafkasink.SASLPlain,
			"scram-sha-256": kafkasink.SASLScramSHA256,
			"scram-sha-512": kafkasink.SASLScramSHA512,
		}[strings.ToLower(k.SASL.Mechanism)]
		if mech == "" {
			return cc, keyErr("sasl.mechanism", fmt.Errorf("want plain, scram-sha-256 or scram-sha-512, got %q", k.SASL.Mechanism))
		}
		cc.SASL = &kafkasink.SASL{Mechanism: mech, Username: k.SASL.Username, Password: k.SASL.Password}
	}
	return cc, nil
}

// KeyFunc returns the record key function named by key (id, conversation, user, none).
func KeyFunc(key string) (kafkasink.KeyFunc, error) {
	switch key {
	case "", "id":
		return kafkasink.KeyByID, nil
	case "conversation":
		return kafkasink.ConversationKey, nil
	case "user":
		return kafkasink.UserKey, nil
	case "none":
		return kafkasink.NoKey, nil
	}
	return nil, fmt.Errorf("want %s, got %q", keyChoices, key)
}

// keyChoices are the names KeyFunc knows.
const keyChoices = "id, conversation, user or none"

// Options returns the kafkasink options of k (topics, key, value).
func (k *KafkaSink) Options() ([]kafkasink.Option, error) {
	var opts []kafkasink.Option
	switch {
	case k.Topic != "":
		opts = append(opts, kafkasink.WithTopic(k.Topic))
	case k.TopicByType != nil:
		opts = append(opts, kafkasink.WithTopicByType(k.TopicByType, k.FallbackTopic))
	case k.TopicTemplate != "":
		opts = append(opts, kafkasink.WithTopicTemplate(k.TopicTemplate))
	}
	kf, err := KeyFunc(k.Key)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	opts = append(opts, kafkasink.WithKey(kf))
	switch k.Value {
	case "", "data":
	case "raw":
		opts = append(opts, kafkasink.WithEnvelopeValue())
	default:
		return nil, fmt.Errorf("value: want data or raw, got %q", k.Value)
	}
	return opts, nil
}

// Client returns the Genesys Cloud client n describes, with extra, options the configuration
// does not hold (a logger). It makes no request; close it when done.
func (n *Notifications) Client(extra ...genesys.Option) (*genesys.Client, error) {
	r, err := genesys.ParseRegion(n.Region)
	if err != nil {
		return nil, keyErr("region", err)
	}
	var opts []genesys.Option
	if n.APIURL != "" {
		opts = append(opts, genesys.WithBaseURL(n.APIURL))
	}
	if n.TokenURL != "" {
		opts = append(opts, genesys.WithTokenURL(n.TokenURL))
	}
	return genesys.NewClient(r, n.ClientID, n.ClientSecret, append(opts, extra...)...)
}

// SourceOptions returns the notifications.Source options of n (without logger, meters or drain
// timeout, which are the service's).
func (n *Notifications) SourceOptions() []notifications.Option {
	var opts []notifications.Option
	if n.MaxChannels > 0 {
		opts = append(opts, notifications.WithMaxChannels(n.MaxChannels))
	}
	if n.HeartbeatTimeout > 0 {
		opts = append(opts, notifications.WithHeartbeatTimeout(n.HeartbeatTimeout.D()))
	}
	return opts
}
