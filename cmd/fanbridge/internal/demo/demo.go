// Package demo is what `fanbridge` runs with no configuration file: an in-process Kafka broker
// (kfake), an in-process gRPC consumer, a temporary dead-letter directory (removed when the demo
// stops), a generated API key, the embedded Genesys samples, and the banner that tells a newcomer
// how to try it.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

//go:embed demo.yaml
var demoYAML []byte

//go:embed samples/*.json
var samples embed.FS

// Topics are the Kafka topics the demo routes write to.
var Topics = []string{"genesys.conversations", "gen-presence-status", "gen-user-activity", "genesys.all"}

// Defaults for the demo's addresses; a taken default falls back to a free port.
const (
	DefaultListen    = "127.0.0.1:8080"
	DefaultKafkaPort = 9092
	APIKeyHeader     = "X-Api-Key"
	IntakePath       = "/events"
	// CurlSample is the sample the banner's curl command posts.
	CurlSample = "v2.detail.events.conversation.customer.end"
)

// Sample is one embedded Genesys event.
type Sample struct {
	Name string // file name without .json
	Body []byte // compact JSON
}

// Samples returns the embedded Genesys samples, compacted, in a fixed order that puts each event
// before the samples that repeat its id, each with an id of its own. Two of the files are
// variants of another sample under the same id (no-external-contact of customer.end, and
// negative-test.mismatched-detail-type of customer.start): posted as they are, an intake would
// answer them as duplicates and route them nowhere, and they would show nothing. Such a sample's
// top-level "id" gets the last part of its name as a suffix, so that
// v2.detail.events.conversation.customer.end.no-external-contact is posted as
// 58fb5dac-f077-4eec-a25f-c638dbdd4368-no-external-contact; the rest of its body is the file's.
func Samples() []Sample {
	entries, _ := samples.ReadDir("samples")
	var out []Sample
	for _, e := range entries {
		b, err := samples.ReadFile(path.Join("samples", e.Name()))
		if err != nil {
			continue
		}
		var buf bytes.Buffer
		if json.Compact(&buf, b) != nil {
			continue
		}
		out = append(out, Sample{Name: strings.TrimSuffix(e.Name(), ".json"), Body: buf.Bytes()})
	}
	rank := func(n string) int {
		if strings.HasPrefix(n, "negative-test") || strings.HasSuffix(n, "no-external-contact") {
			return 1
		}
		return 0
	}
	sort.SliceStable(out, func(i, j int) bool {
		if ri, rj := rank(out[i].Name), rank(out[j].Name); ri != rj {
			return ri < rj
		}
		return out[i].Name < out[j].Name
	})
	ids := map[string]bool{}
	for i := range out {
		var env struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(out[i].Body, &env) != nil || env.ID == "" {
			continue // no id of its own: the intake derives one from the body
		}
		id := env.ID
		if ids[id] {
			suffix := out[i].Name[strings.LastIndex(out[i].Name, ".")+1:]
			id = env.ID + "-" + suffix
			for n := 2; ids[id]; n++ {
				id = fmt.Sprintf("%s-%s-%d", env.ID, suffix, n)
			}
			b, err := withID(out[i].Body, id)
			if err != nil {
				continue
			}
			out[i].Body = b
		}
		ids[id] = true
	}
	return out
}

// withID returns the compact JSON object body with its top-level "id" set to id, every other
// byte as it was.
func withID(body []byte, id string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if t != "id" {
			continue
		}
		// The value's bytes end where the decoder stands; body is compact, so they are v exactly.
		end := int(dec.InputOffset())
		q, err := json.Marshal(id)
		if err != nil {
			return nil, err
		}
		out := make([]byte, 0, len(body)-len(v)+len(q))
		out = append(append(append(out, body[:end-len(v)]...), q...), body[end:]...)
		return out, nil
	}
	return nil, errors.New(`no top-level "id"`)
}

// FindSample returns the sample whose name is name or ends with "." and name, as
// customer.end ends v2.detail.events.conversation.customer.end: a name is matched by whole
// dot-separated parts, so that a part of one ("d", "end" of "customer.end") finds none. An
// empty name finds none.
func FindSample(name string) (Sample, bool) {
	if name == "" {
		return Sample{}, false
	}
	for _, s := range Samples() {
		if s.Name == name || strings.HasSuffix(s.Name, "."+name) {
			return s, true
		}
	}
	return Sample{}, false
}

// Options choose the demo's addresses.
type Options struct {
	// Listen is the intake address; DefaultListen when empty, with a free port when that is taken.
	Listen string
	// KafkaPort is the broker's port on 127.0.0.1; DefaultKafkaPort when negative, with a free
	// port when that is taken; 0 picks a free port.
	KafkaPort int
	// APIKey is the intake key; generated when empty.
	APIKey string
	// DLQDir is the dead-letter directory; a new temporary directory when empty, which Close
	// removes.
	DLQDir string
	// Logger receives the consumer's lines.
	Logger *slog.Logger
}

// Env is a running demo environment.
type Env struct {
	Listener  net.Listener
	KafkaAddr string
	GRPCAddr  string
	DLQDir    string
	APIKey    string
	Config    *config.Config

	kafka    *kfake.Cluster
	tail     *kgo.Client
	tailDone chan struct{}
	grpcSrv  *grpc.Server
	tempDir  string
}

// Start starts the broker and the consumer, opens the intake listener and builds the
// configuration.
func Start(opts Options) (env *Env, err error) {
	env = &Env{APIKey: opts.APIKey, DLQDir: opts.DLQDir}
	defer func() {
		if err != nil {
			env.Close()
		}
	}()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if env.Listener, err = listen(opts.Listen); err != nil {
		return env, err
	}
	if env.kafka, err = startKafka(opts.KafkaPort); err != nil {
		return env, fmt.Errorf("demo kafka: %w", err)
	}
	env.KafkaAddr = env.kafka.ListenAddrs()[0]
	if err = env.startTail(log); err != nil {
		return env, fmt.Errorf("demo kafka consumer: %w", err)
	}

	consumer, err := grpcsink.NewServer(sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
		log.Info("grpc consumer received", "id", e.ID, "type", e.Type, "topic", e.Topic, "sink", grpcsink.SinkName(ctx), "bytes", len(e.Data))
		return nil
	}))
	if err != nil {
		return env, err
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return env, fmt.Errorf("demo grpc consumer: %w", err)
	}
	env.grpcSrv = grpc.NewServer()
	consumer.Register(env.grpcSrv)
	go func() { _ = env.grpcSrv.Serve(gl) }()
	env.GRPCAddr = gl.Addr().String()

	if env.DLQDir == "" {
		if env.tempDir, err = os.MkdirTemp("", "fanbridge-demo-"); err != nil {
			return env, err
		}
		env.DLQDir = env.tempDir + string(os.PathSeparator) + "dlq"
	}
	if env.APIKey == "" {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		env.APIKey = "demo-" + hex.EncodeToString(b)
	}
	vars := map[string]string{
		"DEMO_LISTEN":  env.Listener.Addr().String(),
		"DEMO_API_KEY": env.APIKey,
		"DEMO_GRPC":    env.GRPCAddr,
		"DEMO_KAFKA":   env.KafkaAddr,
		"DEMO_DLQ":     env.DLQDir,
	}
	env.Config, err = config.Parse(demoYAML, func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		return env, fmt.Errorf("demo configuration: %w", err)
	}
	return env, nil
}

// ConfigYAML returns the embedded demo configuration text.
func ConfigYAML() []byte { return demoYAML }

func listen(addr string) (net.Listener, error) {
	if addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		return ln, nil
	}
	if ln, err := net.Listen("tcp", DefaultListen); err == nil {
		return ln, nil
	}
	return net.Listen("tcp", "127.0.0.1:0")
}

func startKafka(port int) (*kfake.Cluster, error) {
	opts := []kfake.Opt{kfake.SeedTopics(1, Topics...)}
	if port < 0 {
		if c, err := kfake.NewCluster(append(opts, kfake.Ports(DefaultKafkaPort))...); err == nil {
			return c, nil
		}
		port = 0
	}
	return kfake.NewCluster(append(opts, kfake.Ports(port))...)
}

// startTail consumes the demo topics from the start and logs one line per record, so that a
// newcomer sees where each event landed: topic, partition, offset and key.
func (e *Env) startTail(log *slog.Logger) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(e.KafkaAddr),
		kgo.ConsumeTopics(Topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(250*time.Millisecond),
	)
	if err != nil {
		return err
	}
	e.tail, e.tailDone = cl, make(chan struct{})
	go func() {
		defer close(e.tailDone)
		for {
			fs := cl.PollFetches(context.Background())
			if fs.IsClientClosed() {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				attrs := []any{"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "key", string(r.Key)}
				if ev, err := kafkasink.EventFromRecord(r); err == nil {
					attrs = append(attrs, "id", ev.ID, "type", ev.Type)
				}
				log.Info("kafka consumer received", attrs...)
			})
		}
	}()
	return nil
}

// Close stops the consumers and the broker and removes the temporary directory Start made for
// the dead letters, with them (a DLQDir given to Start stays).
func (e *Env) Close() {
	if e.grpcSrv != nil {
		e.grpcSrv.Stop()
	}
	if e.tail != nil {
		e.tail.Close()
		<-e.tailDone
	}
	if e.kafka != nil {
		e.kafka.Close()
	}
	if e.tempDir != "" {
		_ = os.RemoveAll(e.tempDir)
	}
}

// IntakeURL is the URL events are posted to.
func (e *Env) IntakeURL() string { return "http://" + e.Listener.Addr().String() + IntakePath }

// Banner writes what a newcomer needs: where to post, with which key, a curl command, how to send
// every sample, and how to read Kafka.
func (e *Env) Banner(w io.Writer) {
	base := "http://" + e.Listener.Addr().String()
	fmt.Fprintf(w, `
fanbridge demo is running. Press Ctrl-C to stop.

  intake:   POST %s
  api key:  %s: %s
  kafka:    %s  topics: %s
  grpc:     %s  (consumer "analytics": each event it gets is logged as "grpc consumer received")
  dlq:      %s%s
  health:   %s/healthz  %s/readyz  metrics: %s/metrics

Each event is logged as "event" (its routes and each sink's outcome), and each record that
reaches Kafka as "kafka consumer received" (topic, partition, offset, key).

Post a Genesys "conversation ended" event:

  %s

Post every embedded Genesys sample:

  go run ./cmd/fanbridge demo send -url %s -key %s

Read what reached Kafka:

  %s

`, e.IntakeURL(), APIKeyHeader, e.APIKey, e.KafkaAddr, strings.Join(Topics, ", "), e.GRPCAddr, e.DLQDir, e.dlqNote(),
		base, base, base,
		e.CurlCommand(),
		shellQuote(e.IntakeURL()), shellQuote(e.APIKey),
		e.KcatCommand())
}

// tempDLQNote follows the dead-letter directory in the banner when the demo made it: Close
// removes it, entries and all.
const tempDLQNote = "  (removed when the demo stops; use -dlq-dir to keep it)"

// dlqNote is what follows the dead-letter directory in the banner.
func (e *Env) dlqNote() string {
	if e.tempDir == "" {
		return ""
	}
	return tempDLQNote
}

// CurlCommand is the shell command that posts the "conversation ended" sample to the demo.
func (e *Env) CurlCommand() string {
	s, _ := FindSample(CurlSample)
	return strings.Join([]string{"curl", "-sS", "-X", "POST", shellQuote(e.IntakeURL()),
		"-H", shellQuote("Content-Type: application/json"),
		"-H", shellQuote(APIKeyHeader + ": " + e.APIKey),
		"-d", shellQuote(string(s.Body))}, " ")
}

// KcatCommand is the shell command that prints what reached the genesys.conversations topic,
// one line per record with its key, and exits at the end.
func (e *Env) KcatCommand() string {
	return "kcat -b " + e.KafkaAddr + " -C -t genesys.conversations -o beginning -e -f " + shellQuote(`key=%k %s\n`)
}

// shellQuote quotes s for a POSIX shell: in single quotes, each quote inside written as an
// escaped quote between two quoted runs.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Send posts every sample to url with the API key and writes one line per answer.
func Send(ctx context.Context, url, key string, w io.Writer) error {
	client := &http.Client{Timeout: 10 * time.Second}
	var failed []string
	for _, s := range Samples() {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(s.Body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(APIKeyHeader, key)
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
		fmt.Fprintf(w, "%-70s %d %s\n", s.Name, resp.StatusCode, strings.TrimSpace(string(body)))
		if resp.StatusCode/100 != 2 {
			failed = append(failed, s.Name)
		}
	}
	if len(failed) > 0 {
		return errors.New("not accepted: " + strings.Join(failed, ", "))
	}
	return nil
}
