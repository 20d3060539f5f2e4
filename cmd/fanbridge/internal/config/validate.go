package config

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/filter"
	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/notifications"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// Defaults of the settings a file leaves out.
const (
	DefaultAddress           = ":8080"
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxBody           = eventbridge.DefaultMaxBodySize
	MaxMaxBody               = 16 << 20 // the largest intake max_body
	DefaultDispatchTimeout   = 4 * time.Second
	DefaultHealthCache       = time.Second
	DefaultProbeTimeout      = 2 * time.Second
	DefaultHTTPShutdown      = 10 * time.Second
	DefaultDrainTimeout      = 15 * time.Second
	MaxReadyDelay            = 5 * time.Minute
	DefaultReloadInterval    = 2 * time.Second
	DefaultFsyncInterval     = time.Second
	DefaultDedupWindow       = time.Hour
	DefaultDedupSize         = 100_000
	DefaultGRPCCallTimeout   = 5 * time.Second
	// DefaultMaxChannels and DefaultHeartbeatTimeout are the notifications source's defaults.
	DefaultMaxChannels      = notifications.DefaultMaxChannels
	DefaultHeartbeatTimeout = notifications.DefaultHeartbeatTimeout
	// MinHeartbeatTimeout is what notifications.heartbeat_timeout must exceed: Genesys sends a
	// heartbeat about every 30 seconds, and a socket silent for less than that is not dead, so
	// a shorter timeout would replace healthy channels over and over.
	MinHeartbeatTimeout = 30 * time.Second
	// MaxConcurrency and MaxQueueSize bound a sink's workers and queue, as the dispatcher does:
	// a slip of the keyboard is refused here, naming the key, rather than by the dispatcher.
	MaxConcurrency = fanout.MaxConcurrency
	MaxQueueSize   = fanout.MaxQueueSize
	// MinReloadInterval is the shortest reload.interval: the watch reads and hashes the whole
	// file every interval, and an interval of a few nanoseconds keeps a core busy doing that.
	MinReloadInterval = 100 * time.Millisecond
	// DefaultCELCostLimit and DefaultCELTimeLimit are the library's defaults.
	DefaultCELCostLimit = filter.DefaultCostLimit
	DefaultCELTimeLimit = filter.DefaultTimeLimit
	// MaxCELCostLimit is a hundred times the default: room for comparisons of large bodies,
	// whose cost grows with their size, while a slip of the keyboard (a few zeros too many) is
	// refused, naming the key. For comprehensions the time limit decides well below it, as
	// CEL's cost tracker slows them down with the square of their steps.
	MaxCELCostLimit = 100 * filter.DefaultCostLimit
	// MinCELTimeLimit is the shortest cel.time_limit: the limit is looked at only every few
	// iterations of a comprehension, and one of microseconds (1us for 1s, say) would stop every
	// comprehension over a body of a few hundred values, by chance of the machine's load.
	MinCELTimeLimit = 10 * time.Millisecond
)

// verifierSecrets are the verifier keys that hold keys, secrets, tokens and passwords (Basic's
// users map each name to a password).
var verifierSecrets = []string{"keys", "tokens", "secrets", "users"}

// reserved paths are served by the service itself.
var reserved = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// Validate fills in defaults and checks everything that can be checked without reaching a
// network: required keys, value ranges, names, references between routes and sinks, event
// patterns, CEL expressions, verifier keys and TLS files. Each problem names its key path.
func (c *Config) Validate() error {
	e := &Errors{fromEnv: c.fromEnv}
	c.defaults()
	c.validateListen(e)
	c.validateIntake(e)
	c.validateNotifications(e)
	sinks := c.validateSinks(e)
	limits, limitsOK := c.CEL, c.validateCEL(e)
	if !limitsOK {
		// The routes' own problems are still reported, found under the default limits.
		limits = CELLimits{}
	}
	c.validateRoutes(e, sinks, limits, limitsOK)
	c.validateDLQ(e)
	c.validateDispatch(e)
	switch c.Logging.Level {
	case "debug", "info", "warn", "error":
	default:
		e.addf("logging.level", "want debug, info, warn or error, got %s", e.show("logging.level", c.Logging.Level))
	}
	switch c.Logging.Format {
	case "json", "text":
	default:
		e.addf("logging.format", "want json or text, got %s", e.show("logging.format", c.Logging.Format))
	}
	// Written so that NaN, which no comparison holds for, is refused too.
	if r := c.Tracing.SampleRatio; r != nil && !(*r >= 0 && *r <= 1) {
		e.add("tracing.sample_ratio", "want a number from 0 to 1")
	}
	if c.Shutdown.ReadyDelay.D() > MaxReadyDelay {
		e.addf("shutdown.ready_delay", "want at most %s", MaxReadyDelay)
	}
	if c.Reload.Interval.D() < MinReloadInterval {
		e.addf("reload.interval", "want at least %s (0 for the default, %s)", MinReloadInterval, DefaultReloadInterval)
	}
	return e.err()
}

func setDur(d *Duration, def time.Duration) {
	if *d == 0 {
		*d = Duration(def)
	}
}

func (c *Config) defaults() {
	l := &c.Listen
	if l.Address == "" {
		l.Address = DefaultAddress
	}
	setDur(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDur(&l.ReadTimeout, DefaultReadTimeout)
	setDur(&l.WriteTimeout, DefaultWriteTimeout)
	setDur(&l.IdleTimeout, DefaultIdleTimeout)
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	for i := range c.Intake {
		in := &c.Intake[i]
		if in.MaxBody == 0 {
			in.MaxBody = DefaultMaxBody
		}
		setDur(&in.DispatchTimeout, DefaultDispatchTimeout)
	}
	for i := range c.Sinks {
		s := &c.Sinks[i]
		if s.Kafka != nil {
			if s.Kafka.Key == "" {
				s.Kafka.Key = "id"
			}
			if s.Kafka.Value == "" {
				s.Kafka.Value = "data"
			}
		}
		if s.GRPC != nil {
			setDur(&s.GRPC.CallTimeout, DefaultGRPCCallTimeout)
		}
	}
	if n := c.Notifications; n != nil {
		if n.MaxChannels == 0 {
			n.MaxChannels = DefaultMaxChannels
		}
		setDur(&n.HeartbeatTimeout, DefaultHeartbeatTimeout)
	}
	if c.DLQ != nil && c.DLQ.File != nil {
		f := c.DLQ.File
		if f.Fsync == "" {
			f.Fsync = "always"
		}
		if f.Fsync == "interval" {
			setDur(&f.FsyncInterval, DefaultFsyncInterval)
		}
	}
	d := &c.Dispatch
	if d.Mode == "" {
		d.Mode = "sync"
	}
	if d.OrderingKey == "" {
		d.OrderingKey = "none"
	}
	setDur(&d.Dedup.Window, DefaultDedupWindow)
	if d.Dedup.Size == 0 {
		d.Dedup.Size = DefaultDedupSize
	}
	if c.Logging.Level == "" {
		c.Logging.Level = "info"
	}
	if c.Logging.Format == "" {
		c.Logging.Format = "json"
	}
	setDur(&c.Health.Cache, DefaultHealthCache)
	setDur(&c.Health.ProbeTimeout, DefaultProbeTimeout)
	setDur(&c.Shutdown.HTTPTimeout, DefaultHTTPShutdown)
	setDur(&c.Shutdown.DrainTimeout, DefaultDrainTimeout)
	setDur(&c.Reload.Interval, DefaultReloadInterval)
	// The cel limits stay 0 when not set, for the library's defaults: only a time limit the file
	// sets is held to the write timeout (see validateCEL).
}

func (c *Config) validateListen(e *Errors) {
	if _, _, err := net.SplitHostPort(c.Listen.Address); err != nil {
		e.addf("listen.address", "want host:port, got %s", e.showAddress("listen.address", c.Listen.Address))
	}
	if a := c.Listen.AdminAddress; a != "" {
		if _, _, err := net.SplitHostPort(a); err != nil {
			e.addf("listen.admin_address", "want host:port, got %s", e.showAddress("listen.admin_address", a))
		} else if sameListener(a, c.Listen.Address) {
			e.add("listen.admin_address", "must differ from listen.address: both would listen on the same port")
		}
	}
	if c.Listen.MaxHeaderBytes < 0 || c.Listen.MaxHeaderBytes > 1<<24 {
		e.add("listen.max_header_bytes", "want at most 16MiB")
	}
}

func (c *Config) validateIntake(e *Errors) {
	if len(c.Intake) == 0 && c.Notifications == nil {
		e.add("intake", "at least one intake path is required (or a notifications section)")
	}
	paths := map[string]int{}
	mux := newRouteCheck()
	for i := range c.Intake {
		in := &c.Intake[i]
		p := fmt.Sprintf("intake[%d]", i)
		switch {
		case !strings.HasPrefix(in.Path, "/"):
			e.addf(p+".path", "want a path starting with /, got %s", e.show(p+".path", in.Path))
		case in.Path == "/":
			e.add(p+".path", "/ answers every unknown path with 404; use a path of its own, such as /events")
		case reserved[in.Path]:
			name := in.Path
			if e.fromEnvAt(p + ".path") {
				name = fromEnvText
			}
			e.addf(p+".path", "%s is served by fanbridge itself", name)
		case strings.ContainsFunc(in.Path, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '{' || r == '}' }):
			e.addf(p+".path", "must not contain whitespace, control characters or braces, got %s", e.show(p+".path", in.Path))
		case strings.ContainsAny(in.Path, "?#"):
			e.addf(p+".path", "want a path without query or fragment, got %s", e.show(p+".path", in.Path))
		case cleanPath(in.Path) != in.Path:
			e.addf(p+".path", "want a clean path (net/http redirects requests for %s elsewhere)", e.show(p+".path", in.Path))
		default:
			if j, dup := paths[in.Path]; dup {
				e.addf(p+".path", "%s is also intake[%d].path", e.show(p+".path", in.Path), j)
			} else if !mux.add(in.Path) {
				e.addf(p+".path", "net/http cannot route %s beside the service's own paths and the intake paths before it (another spelling of one of them?)", e.show(p+".path", in.Path))
			}
		}
		paths[in.Path] = i
		if len(in.Verifiers) == 0 && !in.InsecureNoAuth {
			e.add(p+".verifiers", "at least one verifier is required (or insecure_no_auth: true, by name)")
		}
		if len(in.Verifiers) > 0 && in.InsecureNoAuth {
			e.add(p+".insecure_no_auth", "cannot be combined with verifiers")
		}
		for j := range in.Verifiers {
			v := &in.Verifiers[j]
			vp := fmt.Sprintf("%s.verifiers[%d]", p, j)
			kind := v.Kind()
			if kind == "" || strings.Contains(kind, ",") {
				e.add(vp, "want exactly one of api_key, basic, bearer, hmac, github, open_messaging, standard_webhooks")
				continue
			}
			// The signature package quotes names (of headers, of Basic users) and prefixes, whole
			// or in part (an HMAC scheme is named by its header), but never a key, secret, token
			// or password: only those are spared the check for a part of a value.
			if _, err := v.Build(); err != nil {
				kp := vp + "." + kind
				e.addDetailExcept(kp, err.Error(), err, func(q string) bool {
					for _, k := range verifierSecrets {
						if under(q, kp+"."+k) {
							return true
						}
					}
					return false
				})
			}
		}
		if in.MaxBody < 0 || in.MaxBody > MaxMaxBody {
			e.add(p+".max_body", "want at most 16MiB")
		}
		if msg := DispatchTimeoutProblem(in.DispatchTimeout.D(), c.Dispatch.DeadLetterOverrun(in.DispatchTimeout.D()),
			c.Listen.ReadTimeout.D(), c.Listen.WriteTimeout.D(),
			e.fromEnvAt("listen.read_timeout") || e.fromEnvAt("listen.write_timeout") ||
				e.fromEnvAt("dispatch.dlq_timeout") || e.fromEnvAt("dispatch.dlq_reserve")); msg != "" {
			e.add(p+".dispatch_timeout", msg)
		}
		if in.IgnoredStatus != 0 && (in.IgnoredStatus < 200 || in.IgnoredStatus > 299) {
			e.add(p+".ignored_status", "want a 2xx status")
		}
		for j, src := range in.AllowedSources {
			if strings.TrimRight(src, "*") == "" {
				e.addf(fmt.Sprintf("%s.allowed_sources[%d]", p, j), "would admit every source; leave allowed_sources out to accept any")
			}
		}
		for j, a := range in.AllowedAccounts {
			if !eventbridge.ValidAccountID(a) {
				ap := fmt.Sprintf("%s.allowed_accounts[%d]", p, j)
				e.addf(ap, "want the 12 digits of an AWS account ID, got %s", e.show(ap, a))
			}
		}
		for j, f := range in.Formats {
			// The decoder is the one list of formats: a format it gains is accepted here too.
			if _, err := eventbridge.NewDecoder(eventbridge.Format(f)); err != nil {
				fp := fmt.Sprintf("%s.formats[%d]", p, j)
				e.addf(fp, "unknown format %s", e.show(fp, f))
			}
		}
		if in.CloudEventsBinary {
			if len(in.Formats) > 0 && !slices.Contains(in.Formats, string(eventbridge.FormatCloudEvents)) {
				e.add(p+".cloudevents_binary", "needs cloudevents among the formats")
			}
			for j := range in.Verifiers {
				switch kind := in.Verifiers[j].Kind(); kind {
				case "hmac", "github", "open_messaging", "standard_webhooks":
					// A body signature does not cover the ce-* headers: a request seen once could
					// be sent again with other attributes.
					e.addf(p+".cloudevents_binary", "cannot be combined with the %s verifier (verifiers[%d]): its signature covers the body, not the ce-* headers binary mode reads; use api_key, basic or bearer on this path", kind, j)
				}
			}
		}
	}
}

// validateNotifications checks the notifications section, each key on its own, and then builds
// the client and the source as the service does (neither makes a request), so that a section
// that validates also builds. No message quotes the client secret.
func (c *Config) validateNotifications(e *Errors) {
	n := c.Notifications
	if n == nil {
		return
	}
	const p = "notifications"
	before := len(e.List)
	if n.Region == "" {
		e.add(p+".region", "is required: an AWS region name such as us-east-1, or a Genesys Cloud host")
	} else if _, err := genesys.ParseRegion(n.Region); err != nil {
		e.addDetail(p+".region", err.Error(), err)
	}
	// Genesys' client ids and secrets hold no white space: around one it is a line break kept from
	// a secret file, which Genesys would refuse as unknown credentials at run time.
	for _, c := range []struct{ key, v string }{{"client_id", n.ClientID}, {"client_secret", n.ClientSecret}} {
		switch t := strings.TrimSpace(c.v); {
		case t == "":
			e.add(p+"."+c.key, "is required")
		case t != c.v:
			e.add(p+"."+c.key, "has white space around it (a line break kept from a file?)")
		}
	}
	// Each URL is tried alone, beside a region that needs neither, so that its error is its own.
	for _, u := range []struct {
		key, url string
		opt      func(string) genesys.Option
	}{{"api_url", n.APIURL, genesys.WithBaseURL}, {"token_url", n.TokenURL, genesys.WithTokenURL}} {
		if u.url == "" {
			continue
		}
		cl, err := genesys.NewClient(genesys.USEast1, "validate", "validate", u.opt(u.url))
		if err != nil {
			e.addDetail(p+"."+u.key, err.Error(), err)
			continue
		}
		_ = cl.Close()
	}
	if len(n.Topics) == 0 {
		e.add(p+".topics", "at least one topic is required")
	}
	unique := map[string]bool{}
	for i, t := range n.Topics {
		if err := genesys.CheckSubscriptionTopics([]string{t}); err != nil {
			e.addDetail(fmt.Sprintf("%s.topics[%d]", p, i), err.Error(), err)
		}
		unique[t] = true
	}
	switch {
	case n.MaxChannels < 1 || n.MaxChannels > notifications.MaxChannels:
		e.addf(p+".max_channels", "want 0 (the default, %d) to %d: Genesys allows %d channels per OAuth client, and each needs room for its replacement",
			DefaultMaxChannels, notifications.MaxChannels, genesys.MaxChannels)
	case len(unique) > n.MaxChannels*genesys.MaxTopicsPerChannel:
		e.addf(p+".topics", "%d topics need more than max_channels (%d) channels of %d topics each",
			len(unique), n.MaxChannels, genesys.MaxTopicsPerChannel)
	}
	if n.HeartbeatTimeout.D() <= MinHeartbeatTimeout {
		e.addf(p+".heartbeat_timeout", "want more than %s (0 for the default, %s): Genesys sends a heartbeat about every 30s",
			MinHeartbeatTimeout, DefaultHeartbeatTimeout)
	}
	if len(e.List) > before {
		return
	}
	cl, err := n.Client()
	if err != nil {
		addKeyErr(e, p, err)
		return
	}
	defer cl.Close()
	nop := eventbridge.DispatcherFunc(func(context.Context, *fanbridge.Event) error { return nil })
	if _, err := notifications.New(cl, n.Topics, nop, n.SourceOptions()...); err != nil {
		e.addDetail(p, err.Error(), err)
	}
}

// brokerAddress reports whether b is host:port with a numeric port and no credentials: a
// "user:pass@host" splits as host "user" and port "pass@host", and would show the password in
// every error the Kafka client logs.
func brokerAddress(b string) bool {
	host, port, err := net.SplitHostPort(b)
	if err != nil || host == "" || strings.Contains(b, "@") {
		return false
	}
	return validPort(port)
}

// validPort reports whether port is a TCP port number, 1 to 65535, in decimal.
func validPort(port string) bool {
	n, err := strconv.ParseUint(port, 10, 16)
	return err == nil && n > 0
}

// cleanPath is p with dot segments and repeated slashes removed, keeping a trailing slash: the path
// net/http's ServeMux redirects a request for p to.
func cleanPath(p string) string {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// routeCheck is a ServeMux holding the service's own paths, to which intake paths are added one
// by one as the service will add them. ServeMux panics on a pattern it refuses, or one that
// routes the same requests as another (such as "/ab" and "/a%62"): at start or, worse, in a
// running service's reload.
type routeCheck struct{ mux *http.ServeMux }

func newRouteCheck() routeCheck {
	mux := http.NewServeMux()
	for r := range reserved {
		mux.Handle(r, http.NotFoundHandler())
	}
	mux.Handle("/", http.NotFoundHandler())
	return routeCheck{mux}
}

// add reports whether pattern joined the mux.
func (c routeCheck) add(pattern string) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	c.mux.Handle(pattern, http.NotFoundHandler())
	return true
}

func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// checkName reports a sink's or route's name at path p when it is not a valid name or another
// one (in names, which it adds to) has it already; kind is "sink" or "route".
func checkName(e *Errors, p, kind, name string, names map[string]bool) {
	if !validName(name) {
		e.addf(p+".name", "want a name of letters, digits, '.', '_' or '-', got %s", e.show(p+".name", name))
	} else if names[name] {
		e.addf(p+".name", "%s names another %s too", e.show(p+".name", name), kind)
	}
	names[name] = true
}

func (c *Config) validateSinks(e *Errors) map[string]bool {
	names := map[string]bool{}
	if len(c.Sinks) == 0 {
		e.add("sinks", "at least one sink is required")
	}
	for i := range c.Sinks {
		s := &c.Sinks[i]
		p := fmt.Sprintf("sinks[%d]", i)
		checkName(e, p, "sink", s.Name, names)
		switch {
		case s.Kafka != nil && s.GRPC != nil:
			e.add(p, "want one of kafka or grpc, not both")
		case s.Kafka != nil:
			validateKafkaSink(e, p+".kafka", s.Kafka)
		case s.GRPC != nil:
			validateGRPCSink(e, p+".grpc", s.GRPC)
		default:
			e.add(p, "one of kafka or grpc is required")
		}
		if _, err := retry.New(s.Retry.Policy()); err != nil {
			e.addDetail(p+".retry", err.Error(), err)
		}
		if s.Retry.MaxAttempts < -1 {
			// The retry package takes any negative count as no budget; the file has one way to say it.
			e.addf(p+".retry.max_attempts", "want -1 (no attempt budget), 0 (the default, %d) or a positive count", retry.DefaultMaxAttempts)
		} else if s.Retry.MaxAttempts == -1 && s.Retry.MaxAge == 0 {
			// Without either budget an async delivery retries until the shutdown's drain deadline.
			e.add(p+".retry.max_age", "is required with a negative max_attempts (no attempt budget), to end the retries")
		}
		if s.Concurrency < 0 || s.Concurrency > MaxConcurrency {
			e.addf(p+".concurrency", "want 0 (the default) to %d", MaxConcurrency)
		}
		if s.QueueSize < 0 || s.QueueSize > MaxQueueSize {
			e.addf(p+".queue_size", "want 0 (the default) to %d", MaxQueueSize)
		}
		if s.Breaker.Failures < -1 || s.Breaker.Failures > fanout.MaxBreakerFailures {
			e.addf(p+".breaker.failures", "want -1 (off), 0 (default) or a positive count up to %d", fanout.MaxBreakerFailures)
		}
	}
	return names
}

// sameListener reports whether listening on a and on b would take the same port: the same port
// (not 0, which picks a free one) on the same host, or on any host when one of them listens on
// every address (":8080", "0.0.0.0:8080", "[::]:8080").
func sameListener(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb || pa == "0" {
		return false
	}
	every := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || every(ha) || every(hb)
}

// The Kafka client's own limits, checked here so that a file validate accepts can start.
const (
	maxLinger          = time.Minute
	minDeliveryTimeout = time.Second
	maxClientID        = 256
)

func validateKafkaClient(e *Errors, p string, k *KafkaClient) {
	if k.Linger.D() > maxLinger {
		e.addf(p+".linger", "at most %s, the Kafka client's limit", maxLinger)
	}
	if d := k.DeliveryTimeout.D(); d > 0 && d < minDeliveryTimeout {
		e.addf(p+".delivery_timeout", "0 (the default) or at least %s, the Kafka client's limit", minDeliveryTimeout)
	}
	if len(k.ClientID) > maxClientID {
		e.addf(p+".client_id", "at most %d bytes, the Kafka client's limit", maxClientID)
	}
	if len(k.Brokers) == 0 {
		e.add(p+".brokers", "at least one broker is required")
	}
	for i, b := range k.Brokers {
		bp := fmt.Sprintf("%s.brokers[%d]", p, i)
		switch {
		case strings.Contains(b, ","):
			// A comma list, as a KAFKA_BROKERS variable often holds, is several entries in one.
			e.addf(bp, "one broker per entry, got %s: list several as separate entries", e.showAddress(bp, b))
		case !brokerAddress(b):
			e.addf(bp, "want host:port (credentials go in sasl), got %s", e.showAddress(bp, b))
		}
	}
	if k.SASL != nil {
		if k.SASL.Username == "" {
			e.add(p+".sasl.username", "is required")
		}
		if k.SASL.Password == "" {
			e.add(p+".sasl.password", "is required")
		}
	}
	if _, err := k.ClientConfig(); err != nil {
		addKeyErr(e, p, err)
	}
}

func validateKafkaSink(e *Errors, p string, k *KafkaSink) {
	validateKafkaClient(e, p, &k.KafkaClient)
	n := 0
	if k.Topic != "" {
		n++
		if err := kafkasink.ValidTopic(k.Topic); err != nil {
			e.addDetail(p+".topic", err.Error(), err)
		}
	}
	if k.TopicByType != nil {
		n++
		if len(k.TopicByType) == 0 && k.FallbackTopic == "" {
			e.add(p+".topic_by_type", "is empty: map a type to a topic, or give fallback_topic")
		}
		for t, topic := range k.TopicByType {
			if err := kafkasink.ValidTopic(topic); err != nil {
				e.addDetail(mapKeyPath(p+".topic_by_type", t), err.Error(), err)
			}
		}
		if k.FallbackTopic != "" {
			if err := kafkasink.ValidTopic(k.FallbackTopic); err != nil {
				e.addDetail(p+".fallback_topic", err.Error(), err)
			}
		}
	} else if k.FallbackTopic != "" {
		e.add(p+".fallback_topic", "only applies with topic_by_type")
	}
	if k.TopicTemplate != "" {
		n++
	}
	if n != 1 {
		e.add(p, "want exactly one of topic, topic_by_type or topic_template")
	}
	if _, err := KeyFunc(k.Key); err != nil {
		e.addf(p+".key", "want %s, got %s", keyChoices, e.show(p+".key", k.Key))
	}
	if k.Value != "data" && k.Value != "raw" {
		e.addf(p+".value", "want data or raw, got %s", e.show(p+".value", k.Value))
	}
	if k.TopicTemplate != "" {
		if err := kafkasink.ValidTopicTemplate(k.TopicTemplate); err != nil {
			e.addDetail(p+".topic_template", strings.TrimPrefix(err.Error(), kafkasink.ErrInvalidTopic.Error()+": "), err)
		}
	}
}

func validateGRPCSink(e *Errors, p string, g *GRPCSink) {
	if len(g.Targets) == 0 {
		e.add(p+".targets", "at least one target is required")
	}
	for i, t := range g.Targets {
		tp := fmt.Sprintf("%s.targets[%d]", p, i)
		switch {
		case strings.Contains(t, ","):
			e.add(tp, "one target per entry: list several as separate entries")
		case strings.Contains(t, "://") || strings.HasPrefix(t, "unix:") || strings.HasPrefix(t, "unix-abstract:"):
			if len(g.Targets) > 1 {
				e.add(tp, "a URI target must be the only target")
			}
		default:
			// A port out of range, missing or named ("host:http") would start the sink and fail
			// every event it is given, as it would a Kafka broker's.
			if _, port, err := net.SplitHostPort(t); err != nil {
				e.addf(tp, "want host:port or a gRPC URI such as dns:///name:443, got %s", e.showAddress(tp, t))
			} else if !validPort(port) {
				e.addf(tp, "want host:port with a port from 1 to 65535, got %s", e.showAddress(tp, t))
			} else if len(g.Targets) > 1 && strings.Contains(t, "/") {
				e.addf(tp, "several targets are host:port addresses, got %s", e.showAddress(tp, t))
			}
		}
	}
	if g.Insecure && g.TLS != nil {
		e.add(p+".insecure", "cannot be combined with tls")
	}
	if g.TLS != nil {
		if _, err := g.TLS.Config(); err != nil {
			addKeyErr(e, p+".tls", err)
		}
	}
}

// validateCEL checks the cel limits and reports whether they hold. A time limit the file sets
// must leave time to write the answer (see CELTimeLimitProblem); the default is not held to
// that, so that a file written before the key existed stays valid with a write_timeout of 22s
// or less (at the default read_timeout and dlq_timeout): its CEL expressions may hold no
// comprehension at all, and so never run under the time limit.
func (c *Config) validateCEL(e *Errors) bool {
	ok := true
	if n := c.CEL.CostLimit; n < 0 || n > MaxCELCostLimit {
		e.addf("cel.cost_limit", "want 1 to %d cost units (0 for the default, %d)", MaxCELCostLimit, DefaultCELCostLimit)
		ok = false
	}
	d := c.CEL.TimeLimit.D()
	if d == 0 {
		return ok
	}
	if d < MinCELTimeLimit {
		e.addf("cel.time_limit", "want at least %s (0 for the default, %s)", MinCELTimeLimit, DefaultCELTimeLimit)
		return false
	}
	if msg := CELTimeLimitProblem(d, c.Dispatch.DeadLetterTimeout(), c.Listen.ReadTimeout.D(), c.Listen.WriteTimeout.D(),
		e.fromEnvAt("cel.time_limit") || e.fromEnvAt("listen.read_timeout") || e.fromEnvAt("listen.write_timeout") ||
			e.fromEnvAt("dispatch.dlq_timeout")); msg != "" {
		e.add("cel.time_limit", msg)
		ok = false
	}
	return ok
}

// costLimitReason is the Reason of a filter.EvalError for an evaluation the cost limit stopped.
const costLimitReason = "the cost limit was exceeded"

// emptyBodyEvent is the event each CEL route is evaluated on when the file is validated: an id,
// an empty body and nothing else. A cost limit an expression exceeds on it is too low for any
// ordinary event: the route would match nothing, and every event would be answered "ignored",
// which the sender does not retry. Most expressions cost more on a body holding the fields they
// read (comparing strings and lists costs by their size), so a limit that passes this is not
// shown to be enough: it is only not shown to be too low.
func emptyBodyEvent() *fanbridge.Event {
	return &fanbridge.Event{ID: "validate", Data: []byte(`{}`)}
}

// checkCELCost reports a CEL route, at path p, that the cost limit of limits stops even on
// emptyBodyEvent.
func checkCELCost(e *Errors, p string, route fanout.Route, limits CELLimits) {
	x, ok := route.Filter.(*filter.Expression)
	if !ok {
		return
	}
	var ee *filter.EvalError
	if _, err := x.Eval(emptyBodyEvent()); !errors.As(err, &ee) || ee.Reason != costLimitReason {
		return
	}
	const why = "even on an event with an empty body ({}): every evaluation would stop at the limit, and the route would match nothing"
	if limits.CostLimit == 0 {
		e.addf(p+".cel", "costs more than the default cel.cost_limit (%d) %s; write a simpler expression, or raise cel.cost_limit", DefaultCELCostLimit, why)
		return
	}
	e.addf("cel.cost_limit", "is lower than what %s.cel costs %s; raise it (0 for the default, %d)", p, why, DefaultCELCostLimit)
}

func (c *Config) validateRoutes(e *Errors, sinks map[string]bool, limits CELLimits, checkCost bool) {
	if len(c.Routes) == 0 {
		e.add("routes", "at least one route is required")
	}
	names := map[string]bool{}
	for i := range c.Routes {
		r := &c.Routes[i]
		p := fmt.Sprintf("routes[%d]", i)
		checkName(e, p, "route", r.Name, names)
		n := 0
		if r.Pattern != nil {
			n++
		}
		if r.CEL != "" {
			n++
		}
		if r.All {
			n++
		}
		if n != 1 {
			e.add(p, "want exactly one of pattern, cel or all")
		} else if route, err := r.Build(limits); err != nil {
			// Build says which key ("cel: ...", "pattern: ...") and wraps the library's error.
			key, msg, _ := strings.Cut(err.Error(), ": ")
			inner := errors.Unwrap(err)
			if inner == nil {
				inner = err
			}
			e.addDetail(p+"."+key, msg, inner)
		} else if checkCost {
			checkCELCost(e, p, route, limits)
		}
		if len(r.Sinks) == 0 {
			e.add(p+".sinks", "at least one sink is required")
		}
		seen := map[string]bool{}
		for j, s := range r.Sinks {
			sp := fmt.Sprintf("%s.sinks[%d]", p, j)
			switch {
			case !sinks[s]:
				e.addf(sp, "no sink is named %s", e.show(sp, s))
			case seen[s]:
				e.addf(sp, "%s is listed twice", e.show(sp, s))
			}
			seen[s] = true
		}
	}
}

func (c *Config) validateDLQ(e *Errors) {
	if c.DLQ == nil {
		return
	}
	d := c.DLQ
	switch {
	case d.File != nil && d.Kafka != nil:
		e.add("dlq", "want one of file or kafka, not both")
	case d.File != nil:
		f := d.File
		if f.Dir == "" {
			e.add("dlq.file.dir", "is required")
		}
		switch f.Fsync {
		case "always", "never":
			if f.FsyncInterval != 0 {
				e.add("dlq.file.fsync_interval", "only applies with fsync: interval")
			}
		case "interval":
		default:
			e.addf("dlq.file.fsync", "want always, interval or never, got %s", e.show("dlq.file.fsync", f.Fsync))
		}
		if f.Retention < 0 {
			e.add("dlq.file.retention", "must not be negative")
		}
		if f.MaxSegmentSize < 0 {
			e.add("dlq.file.max_segment_size", "must not be negative")
		}
	case d.Kafka != nil:
		validateKafkaClient(e, "dlq.kafka", &d.Kafka.KafkaClient)
		if d.Kafka.Topic == "" {
			e.add("dlq.kafka.topic", "is required")
		} else if err := kafkasink.ValidTopic(d.Kafka.Topic); err != nil {
			e.addDetail("dlq.kafka.topic", err.Error(), err)
		}
	default:
		e.add("dlq", "one of file or kafka is required")
	}
}

func (c *Config) validateDispatch(e *Errors) {
	d := &c.Dispatch
	if d.Mode != "sync" && d.Mode != "async" {
		e.addf("dispatch.mode", "want sync or async, got %s", e.show("dispatch.mode", d.Mode))
	}
	switch d.OrderingKey {
	case "none", "conversation", "user":
	default:
		e.addf("dispatch.ordering_key", "want none, conversation or user, got %s", e.show("dispatch.ordering_key", d.OrderingKey))
	}
	if d.Dedup.Size < 0 {
		e.add("dispatch.dedup.size", "must not be negative")
	}
}

// addKeyErr reports err under its KeyError's key below path.
func addKeyErr(e *Errors, path string, err error) {
	var ke *KeyError
	if errors.As(err, &ke) {
		e.addDetail(path+"."+ke.Key, ke.Err.Error(), ke.Err)
		return
	}
	e.addDetail(path, err.Error(), err)
}

// quoteAddress quotes an address for an error, leaving out whatever comes before an "@" (after
// a scheme's "://"): user information such as "user:password@host:9092" is no address, but it
// holds a password often enough that it is never shown.
func quoteAddress(a string) string {
	at := strings.LastIndexByte(a, '@')
	if at < 0 {
		return fmt.Sprintf("%q", a)
	}
	scheme := ""
	if i := strings.Index(a[:at], "://"); i >= 0 {
		scheme = a[:i+3]
	}
	return fmt.Sprintf("%q (what came before the @ is not shown)", scheme+"…"+a[at:])
}

// DispatchTimeoutProblem says what is wrong with an intake's dispatch timeout beside the
// server's read and write timeouts, or "" when nothing is. The server's write deadline runs from
// the end of a request's headers, its read deadline from their start: a body may take
// readTimeout to arrive, and its answer, after a dispatch of up to dispatch and the dead-letter
// writes that may end past it (up to late, see DeadLetterOverrun), must still be written before
// writeTimeout, or the sender hears nothing. The same holds for the 503 that asks the sender of
// a body too slow for readTimeout to retry. hide leaves the durations out of the message, when
// they came from the environment.
func DispatchTimeoutProblem(dispatch, late, readTimeout, writeTimeout time.Duration, hide bool) string {
	if readTimeout+dispatch+late < writeTimeout {
		return ""
	}
	if hide {
		return "plus listen.read_timeout and the dead-letter writes that may end after it must be shorter than listen.write_timeout: a body may take read_timeout to arrive, and its answer must be written before write_timeout"
	}
	return fmt.Sprintf("plus listen.read_timeout (%s) and %s of dead-letter writes that may end after it (dispatch.dlq_timeout less dispatch.dlq_reserve, at most half of dispatch_timeout) must be shorter than listen.write_timeout (%s): a body may take read_timeout to arrive, and its answer must be written before write_timeout",
		readTimeout, late, writeTimeout)
}

// CELTimeLimitProblem says what is wrong with cel.time_limit beside the server's read and write
// timeouts, or "" when nothing is. A route's filter runs before its dispatch looks at the
// deadline, and nothing but its own limits stops it: an evaluation that runs to the time limit,
// when that is longer than the intake's dispatch_timeout, leaves the sinks no time, and they are
// dead-lettered after it, each write bounded by dlqTimeout. The answer must still be written
// before writeTimeout, which runs from the end of the request's headers, while its body may take
// readTimeout to arrive. This bounds one evaluation: the routes' evaluations add up, which
// Validate cannot weigh, as only some expressions are timed. hide leaves the durations out of
// the message, when they came from the environment.
func CELTimeLimitProblem(limit, dlqTimeout, readTimeout, writeTimeout time.Duration, hide bool) string {
	if readTimeout+limit+dlqTimeout < writeTimeout {
		return ""
	}
	if hide {
		return "plus listen.read_timeout and dispatch.dlq_timeout must be shorter than listen.write_timeout: an evaluation is not stopped by dispatch_timeout, a body may take read_timeout to arrive, and the answer, after the evaluation and the dead-letter writes that may follow it, must be written before write_timeout"
	}
	return fmt.Sprintf("plus listen.read_timeout (%s) and dispatch.dlq_timeout (%s) must be shorter than listen.write_timeout (%s): an evaluation is not stopped by dispatch_timeout, a body may take read_timeout to arrive, and the answer, after the evaluation and the dead-letter writes that may follow it, must be written before write_timeout",
		readTimeout, dlqTimeout, writeTimeout)
}

// DeadLetterTimeout is dispatch.dlq_timeout, or the dispatcher's default when it is not set.
func (d *Dispatch) DeadLetterTimeout() time.Duration {
	if t := d.DLQTimeout.D(); t > 0 {
		return t
	}
	return fanout.DefaultDLQTimeout
}

// DeadLetterOverrun is how long after a dispatch's deadline its answer may come: the dispatcher
// stops sending dispatch.dlq_reserve before the deadline (at most half the dispatch), then waits
// for the dead-letter writes, each bounded by dispatch.dlq_timeout.
func (d *Dispatch) DeadLetterOverrun(dispatch time.Duration) time.Duration {
	timeout, reserve := d.DeadLetterTimeout(), d.DLQReserve.D()
	if reserve <= 0 {
		reserve = fanout.DefaultDLQReserve
	}
	return max(0, timeout-min(reserve, dispatch/2))
}
