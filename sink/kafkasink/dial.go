package kafkasink

import (
	"crypto/tls"
	"fmt"
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

// SASL holds SASL credentials. The password never appears in errors or logs.
type SASL struct {
	// Mechanism is SASLPlain, SASLScramSHA256 or SASLScramSHA512.
	Mechanism string
	Username  string
	Password  string
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
	// DeliveryTimeout bounds how long the client keeps trying to deliver one record, including
	// records whose Send already gave up waiting. The default is one minute.
	DeliveryTimeout time.Duration
	// Opts are further client options, applied after everything above, so they can override it
	// (kgo.ProducerBatchCompression, kgo.MaxBufferedRecords, even kgo.RequiredAcks).
	Opts []kgo.Opt
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
