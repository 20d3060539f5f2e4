package config

import (
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration file. Every field maps to the snake_case key named in its
// yaml tag; the decoder refuses keys that are not listed here.
type Config struct {
	// Listen is the HTTP server: address and timeouts.
	Listen Listen `yaml:"listen"`
	// Intake lists the paths events are POSTed to, each with its verifiers.
	Intake []Intake `yaml:"intake"`
	// Notifications, when given, also takes events from Genesys Cloud's WebSocket Notification
	// API, for the same routes and sinks.
	Notifications *Notifications `yaml:"notifications"`
	// Sinks lists the named destinations.
	Sinks []Sink `yaml:"sinks"`
	// Routes select sinks for each event.
	Routes []Route `yaml:"routes"`
	// CEL bounds each evaluation of a route's CEL expression.
	CEL CELLimits `yaml:"cel"`
	// DLQ is the dead-letter queue; without one a failed sink makes the sender retry.
	DLQ *DLQ `yaml:"dlq"`
	// Dispatch holds the dispatcher's settings.
	Dispatch Dispatch `yaml:"dispatch"`
	// Logging sets the log level and format.
	Logging Logging `yaml:"logging"`
	// Tracing sets up the OpenTelemetry tracer provider.
	Tracing Tracing `yaml:"tracing"`
	// Health tunes /readyz.
	Health Health `yaml:"health"`
	// Shutdown bounds the graceful shutdown.
	Shutdown Shutdown `yaml:"shutdown"`
	// Reload controls reloading the file on a change of its modification time.
	Reload Reload `yaml:"reload"`

	// fromEnv holds the values Decode took from the environment, by key path, which Validate
	// never shows in an error.
	fromEnv envValues
}

// Listen is the HTTP server's address and timeouts.
type Listen struct {
	Address string `yaml:"address"`
	// AdminAddress, when set, is a second listener that serves /metrics, /readyz and /healthz,
	// and then /metrics is no longer served on Address.
	AdminAddress      string   `yaml:"admin_address"`
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	ReadTimeout       Duration `yaml:"read_timeout"`
	WriteTimeout      Duration `yaml:"write_timeout"`
	IdleTimeout       Duration `yaml:"idle_timeout"`
	MaxHeaderBytes    Size     `yaml:"max_header_bytes"`
}

// Intake is one path events are POSTed to.
type Intake struct {
	Path string `yaml:"path"`
	// Verifiers check who sent a request; the first that accepts it wins (signature.Any).
	Verifiers []Verifier `yaml:"verifiers"`
	// InsecureNoAuth allows a path without verifiers, by name only.
	InsecureNoAuth  bool     `yaml:"insecure_no_auth"`
	MaxBody         Size     `yaml:"max_body"`
	AllowedSources  []string `yaml:"allowed_sources"`
	AllowedAccounts []string `yaml:"allowed_accounts"`
	DispatchTimeout Duration `yaml:"dispatch_timeout"`
	IgnoredStatus   int      `yaml:"ignored_status"`
	RetryAfter      Duration `yaml:"retry_after"`
	Formats         []string `yaml:"formats"`
	// CloudEventsBinary accepts CloudEvents in the HTTP binding's binary content mode (attributes
	// in ce-* headers), only behind verifiers that read headers alone.
	CloudEventsBinary bool `yaml:"cloudevents_binary"`
}

// Verifier is one way of checking a sender: exactly one member is set.
type Verifier struct {
	APIKey           *APIKeyVerifier           `yaml:"api_key"`
	Basic            *BasicVerifier            `yaml:"basic"`
	Bearer           *BearerVerifier           `yaml:"bearer"`
	HMAC             *HMACVerifier             `yaml:"hmac"`
	GitHub           *SecretsVerifier          `yaml:"github"`
	OpenMessaging    *SecretsVerifier          `yaml:"open_messaging"`
	StandardWebhooks *StandardWebhooksVerifier `yaml:"standard_webhooks"`
}

// APIKeyVerifier accepts requests carrying one of Keys in Header.
type APIKeyVerifier struct {
	Header string   `yaml:"header"`
	Keys   []string `yaml:"keys" config:"secret"`
}

// BasicVerifier accepts HTTP Basic credentials; Users maps user names to passwords.
type BasicVerifier struct {
	Users map[string]string `yaml:"users" config:"secret"`
}

// BearerVerifier accepts one of Tokens as a bearer token.
type BearerVerifier struct {
	Tokens []string `yaml:"tokens" config:"secret"`
}

// HMACVerifier checks an HMAC of the body carried in a header.
type HMACVerifier struct {
	Header   string   `yaml:"header"`
	Encoding string   `yaml:"encoding"`
	Prefix   string   `yaml:"prefix"`
	Hash     string   `yaml:"hash"`
	Secrets  []string `yaml:"secrets" config:"secret"`
}

// SecretsVerifier is a preset HMAC scheme (GitHub, Open Messaging) with its secrets.
type SecretsVerifier struct {
	Secrets []string `yaml:"secrets" config:"secret"`
}

// StandardWebhooksVerifier checks Standard Webhooks signatures.
type StandardWebhooksVerifier struct {
	Keys        []string `yaml:"keys" config:"secret"`
	Tolerance   Duration `yaml:"tolerance"`
	ReplayCache int      `yaml:"replay_cache"`
	SvixHeaders *bool    `yaml:"svix_headers"`
}

// Notifications is a source of events over Genesys Cloud's WebSocket Notification API
// (package genesys/notifications): an OAuth client of a region, and the concrete topics to
// subscribe.
type Notifications struct {
	// Region is what genesys.ParseRegion reads: an AWS region name such as us-east-1, or a
	// Genesys Cloud host.
	Region       string   `yaml:"region"`
	ClientID     string   `yaml:"client_id"`
	ClientSecret string   `yaml:"client_secret" config:"secret"`
	Topics       []string `yaml:"topics"`
	// APIURL and TokenURL replace the region's API base URL and OAuth token endpoint (a proxy,
	// a test server).
	APIURL   string `yaml:"api_url"`
	TokenURL string `yaml:"token_url"`
	// MaxChannels caps the channels the source holds; 0 is the library's default.
	MaxChannels      int      `yaml:"max_channels"`
	HeartbeatTimeout Duration `yaml:"heartbeat_timeout"`
}

// Sink is one named destination: exactly one of Kafka and GRPC is set.
type Sink struct {
	Name        string      `yaml:"name"`
	Kafka       *KafkaSink  `yaml:"kafka"`
	GRPC        *GRPCSink   `yaml:"grpc"`
	Retry       RetryPolicy `yaml:"retry"`
	Concurrency int         `yaml:"concurrency"`
	QueueSize   int         `yaml:"queue_size"`
	Breaker     Breaker     `yaml:"breaker"`
}

// KafkaClient is how to reach a Kafka cluster.
type KafkaClient struct {
	Brokers         []string   `yaml:"brokers"`
	ClientID        string     `yaml:"client_id"`
	TLS             *TLS       `yaml:"tls"`
	SASL            *KafkaSASL `yaml:"sasl"`
	Linger          Duration   `yaml:"linger"`
	DeliveryTimeout Duration   `yaml:"delivery_timeout"`
}

// KafkaSink is a Kafka destination: a client, one way of choosing topics, a key and a value.
type KafkaSink struct {
	KafkaClient   `yaml:",inline"`
	Topic         string            `yaml:"topic"`
	TopicByType   map[string]string `yaml:"topic_by_type"`
	FallbackTopic string            `yaml:"fallback_topic"`
	TopicTemplate string            `yaml:"topic_template"`
	Key           string            `yaml:"key"`
	Value         string            `yaml:"value"`
}

// KafkaSASL holds SASL credentials.
type KafkaSASL struct {
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password" config:"secret"`
}

// TLS configures a client's TLS. Its presence turns TLS on.
type TLS struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// GRPCSink is a gRPC destination speaking fanbridge.v1.EventSink.
type GRPCSink struct {
	Targets     []string `yaml:"targets"`
	TLS         *TLS     `yaml:"tls"`
	Insecure    bool     `yaml:"insecure"`
	CallTimeout Duration `yaml:"call_timeout"`
	// Raw sends the envelope too; true by default.
	Raw *bool `yaml:"raw"`
}

// RetryPolicy is a sink's retry.Policy.
type RetryPolicy struct {
	InitialInterval Duration `yaml:"initial_interval"`
	Multiplier      float64  `yaml:"multiplier"`
	MaxInterval     Duration `yaml:"max_interval"`
	MaxAttempts     int      `yaml:"max_attempts"`
	MaxAge          Duration `yaml:"max_age"`
	AttemptTimeout  Duration `yaml:"attempt_timeout"`
}

// Breaker is a sink's circuit breaker.
type Breaker struct {
	Failures int      `yaml:"failures"`
	Cooldown Duration `yaml:"cooldown"`
}

// Route sends the events its pattern or CEL expression matches to its sinks.
type Route struct {
	Name string `yaml:"name"`
	// Pattern is an EventBridge event pattern, as a YAML mapping or a JSON string.
	Pattern *Pattern `yaml:"pattern"`
	// CEL is a CEL expression over data and event.
	CEL string `yaml:"cel"`
	// All matches every event.
	All   bool     `yaml:"all"`
	Sinks []string `yaml:"sinks"`
}

// CELLimits bound each evaluation of every route's CEL expression: filter.WithCostLimit and
// filter.WithTimeLimit. Route filters run one after another before any sink is called, and
// nothing but these limits stops an evaluation, the intake's dispatch_timeout included.
type CELLimits struct {
	// CostLimit is in CEL cost units; 0 is the default, filter.DefaultCostLimit.
	CostLimit int64 `yaml:"cost_limit"`
	// TimeLimit bounds an evaluation whose cost is tracked and that holds a comprehension; 0 is
	// the default, filter.DefaultTimeLimit.
	TimeLimit Duration `yaml:"time_limit"`
}

// DLQ is the dead-letter queue: exactly one of File and Kafka is set.
type DLQ struct {
	File  *FileDLQ  `yaml:"file"`
	Kafka *KafkaDLQ `yaml:"kafka"`
}

// FileDLQ is a filedlq directory.
type FileDLQ struct {
	Dir            string   `yaml:"dir"`
	Fsync          string   `yaml:"fsync"`
	FsyncInterval  Duration `yaml:"fsync_interval"`
	MaxSegmentSize Size     `yaml:"max_segment_size"`
	Retention      int      `yaml:"retention"`
}

// KafkaDLQ is a dead-letter topic.
type KafkaDLQ struct {
	KafkaClient `yaml:",inline"`
	Topic       string `yaml:"topic"`
}

// Dispatch holds the dispatcher's settings.
type Dispatch struct {
	Mode               string   `yaml:"mode"`
	OrderingKey        string   `yaml:"ordering_key"`
	Budget             Duration `yaml:"budget"`
	DLQTimeout         Duration `yaml:"dlq_timeout"`
	DLQReserve         Duration `yaml:"dlq_reserve"`
	OverloadRetryAfter Duration `yaml:"overload_retry_after"`
	Dedup              Dedup    `yaml:"dedup"`
}

// Dedup is the in-memory deduplication window.
type Dedup struct {
	Disabled bool     `yaml:"disabled"`
	Window   Duration `yaml:"window"`
	Size     int      `yaml:"size"`
}

// Logging sets the log level and format.
type Logging struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
	// Events logs one line per dispatched event at info level (debug otherwise).
	Events bool `yaml:"events"`
}

// Tracing sets up the tracer provider.
type Tracing struct {
	Disabled    bool     `yaml:"disabled"`
	SampleRatio *float64 `yaml:"sample_ratio"`
	// LogSpans logs each finished span at debug level (a minimal exporter).
	LogSpans bool `yaml:"log_spans"`
}

// Health tunes /readyz.
type Health struct {
	Cache        Duration `yaml:"cache"`
	ProbeTimeout Duration `yaml:"probe_timeout"`
}

// Shutdown bounds the graceful shutdown.
type Shutdown struct {
	// ReadyDelay is how long /readyz fails while requests are still served as usual, before the
	// listener closes: time for a load balancer to stop sending new requests. 0 (the default)
	// closes the listener at once.
	ReadyDelay   Duration `yaml:"ready_delay"`
	HTTPTimeout  Duration `yaml:"http_timeout"`
	DrainTimeout Duration `yaml:"drain_timeout"`
}

// Reload controls watching the configuration file.
type Reload struct {
	Watch    bool     `yaml:"watch"`
	Interval Duration `yaml:"interval"`
}

// Duration is a time.Duration written as Go duration text ("5s", "1m30s"); 0 is allowed bare.
type Duration time.Duration

// D returns the duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Size is a byte count written as a number or with a unit: "256KiB", "64MiB", "1GB".
type Size int64

// Pattern is an EventBridge event pattern, kept as its JSON text.
type Pattern struct {
	JSON []byte
	node *yaml.Node
}
