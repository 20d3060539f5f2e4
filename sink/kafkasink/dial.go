package kafkasink

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SASL mechanisms Dial supports.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// SASL holds SASL credentials. The password never appears in errors or logs: printed with any fmt
// verb, logged with slog or encoded as JSON, a SASL shows its mechanism and username and
// "[redacted]" in place of the password.
type SASL struct {
	// Mechanism is SASLPlain, SASLScramSHA256 or SASLScramSHA512.
	Mechanism string
	Username  string
	Password  string
}

// redacted stands in for a password wherever a SASL is printed or logged.
const redacted = "[redacted]"

// shownPassword is what a printed SASL shows of its password: whether one is set, never what.
func (a SASL) shownPassword() string {
	if a.Password == "" {
		return ""
	}
	return redacted
}

// String returns the credentials as %+v would print them, with the password redacted.
func (a SASL) String() string {
	return fmt.Sprintf("{Mechanism:%s Username:%s Password:%s}", a.Mechanism, a.Username, a.shownPassword())
}

// GoString returns the credentials as %#v would print them, with the password redacted.
func (a SASL) GoString() string {
	return fmt.Sprintf("kafkasink.SASL{Mechanism:%q, Username:%q, Password:%q}", a.Mechanism, a.Username, a.shownPassword())
}

// Format prints the credentials with the password redacted whatever the verb: GoString for %#v,
// String for every other verb, so that not even %x or %d reaches the password field.
func (a SASL) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, a.GoString())
		return
	}
	_, _ = io.WriteString(f, a.String())
}

// LogValue logs the mechanism and username, and the password redacted.
func (a SASL) LogValue() slog.Value {
	return slog.GroupValue(slog.String("mechanism", a.Mechanism), slog.String("username", a.Username),
		slog.String("password", a.shownPassword()))
}

// MarshalJSON encodes the credentials with the password redacted, so that a struct holding them
// can be logged by slog.JSONHandler (which marshals structs as they are) or dumped as JSON.
func (a SASL) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct{ Mechanism, Username, Password string }{a.Mechanism, a.Username, a.shownPassword()})
}

// ClientConfig describes the Kafka client Dial builds. Only Brokers is required.
type ClientConfig struct {
	// Brokers are the seed brokers, "host:port". Required.
	Brokers []string
	// ClientID names the client to the brokers (their logs and quotas). The default is "fanbridge".
	ClientID string
	// TLS, when set, encrypts connections with this configuration. The default is plaintext.
	TLS *tls.Config
	// SASL, when set, authenticates with these credentials. Use it with TLS: PLAIN sends the
	// password as it is. The default is no authentication.
	SASL *SASL
	// Linger is how long the client waits for more records before it sends a partition's batch.
	// Sends wait for acknowledgements, so records also batch up on their own while a produce request
	// is in flight. The default is 0: send at once.
	Linger time.Duration
	// DeliveryTimeout is how long the client keeps trying to deliver one record, including records
	// whose Send already gave up waiting, and, with a margin, how long Send waits for one, whatever
	// its context. The client cannot hold to it for a record whose produce request went out and was
	// never answered (a broker that crashed meanwhile): not knowing whether the broker stored it, it
	// keeps such a record, and those behind it on its partition, until a broker answers. Send
	// stops waiting for it at the latest DeliveryTimeout + Linger + min(DeliveryTimeout, 5 s) after
	// it began, with a retryable error wrapping ErrNoAcknowledgement, and the record may still be
	// delivered later (see the package's Delivery semantics). The default is one minute.
	DeliveryTimeout time.Duration
	// Opts are further client options, applied after everything above, so they can override it
	// (kgo.ProducerBatchCompression, kgo.MaxBufferedRecords, even kgo.RequiredAcks, though fewer
	// acks than all also need WithAllowWeakAcks, and kgo.DisableIdempotentWrite, without which
	// franz-go refuses them).
	Opts []kgo.Opt
}

// LogValue logs the configuration with the SASL password redacted: a handler that encodes structs
// itself (slog.JSONHandler marshals them) would otherwise write the password as it is.
func (cfg ClientConfig) LogValue() slog.Value {
	attrs := []slog.Attr{slog.Any("brokers", cfg.Brokers), slog.String("client_id", cfg.ClientID),
		slog.Bool("tls", cfg.TLS != nil)}
	if cfg.SASL != nil {
		attrs = append(attrs, slog.Any("sasl", *cfg.SASL))
	}
	attrs = append(attrs, slog.Duration("linger", cfg.Linger), slog.Duration("delivery_timeout", cfg.DeliveryTimeout),
		slog.Int("opts", len(cfg.Opts)))
	return slog.GroupValue(attrs...)
}

const (
	defaultClientID        = "fanbridge"
	defaultDeliveryTimeout = time.Minute
)

// Dial builds a franz-go client from cfg and returns a Sink producing through it; the sink owns the
// client and closes it in Close. The client waits for every in-sync replica to acknowledge a record
// (acks=all) and produces idempotently, so its own retries never duplicate a record. Dial does not
// connect: the first Send (or Ping) does.
func Dial(cfg ClientConfig, opts ...Option) (*Sink, error) {
	kopts, err := cfg.clientOptions()
	if err != nil {
		return nil, err
	}
	client, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	s, err := newSink(client, true, opts)
	if err != nil {
		client.Close()
		return nil, err
	}
	return s, nil
}

func (cfg ClientConfig) clientOptions() ([]kgo.Opt, error) {
	if len(cfg.Brokers) == 0 {
		return nil, fmt.Errorf("%w: no brokers", ErrInvalidConfig)
	}
	for _, b := range cfg.Brokers {
		if b == "" {
			return nil, fmt.Errorf("%w: empty broker address", ErrInvalidConfig)
		}
	}
	if cfg.Linger < 0 {
		return nil, fmt.Errorf("%w: linger %s is negative", ErrInvalidConfig, cfg.Linger)
	}
	if cfg.DeliveryTimeout < 0 {
		return nil, fmt.Errorf("%w: delivery timeout %s is negative", ErrInvalidConfig, cfg.DeliveryTimeout)
	}
	clientID := cfg.ClientID
	if clientID == "" {
		clientID = defaultClientID
	}
	delivery := cfg.DeliveryTimeout
	if delivery == 0 {
		delivery = defaultDeliveryTimeout
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(clientID),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(cfg.Linger),
		kgo.RecordDeliveryTimeout(delivery),
	}
	if cfg.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(cfg.TLS.Clone()))
	}
	if cfg.SASL != nil {
		m, err := cfg.SASL.mechanism()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return append(opts, cfg.Opts...), nil
}

func (a *SASL) mechanism() (sasl.Mechanism, error) {
	if a.Username == "" {
		return nil, fmt.Errorf("%w: SASL %s without a username", ErrInvalidConfig, a.Mechanism)
	}
	switch a.Mechanism {
	case SASLPlain:
		return plain.Auth{User: a.Username, Pass: a.Password}.AsMechanism(), nil
	case SASLScramSHA256:
		return scram.Auth{User: a.Username, Pass: a.Password}.AsSha256Mechanism(), nil
	case SASLScramSHA512:
		return scram.Auth{User: a.Username, Pass: a.Password}.AsSha512Mechanism(), nil
	default:
		return nil, fmt.Errorf("%w: SASL mechanism %q; want %s, %s or %s", ErrInvalidConfig, a.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
}
