//go:build unix

package bench_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/internal/cputime"
	"github.com/fanbridge/fanbridge/signature"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

var (
	clientsFlag = flag.Int("clients", 16, "concurrent keep-alive HTTP clients of the load generator")
	roundsFlag  = flag.Int("rounds", 5, "interleaved rounds of BenchmarkEndToEndCompare")
	// Every pipeline produces with the same codec, so that none pays for compression the others
	// skip: franz-go compresses batches with snappy by default and Sarama (under Watermill) does
	// not compress, so each is told. "none" is what a broker on the same host wants; "snappy" what
	// a network between services usually does.
	compressionFlag = flag.String("compression", "none", `codec of every pipeline's producer: "none" or "snappy"`)
)

// snappy reports whether the pipelines compress, and fails on an unknown -compression.
func snappy() bool {
	switch *compressionFlag {
	case "none":
		return false
	case "snappy":
		return true
	}
	panic(fmt.Sprintf("bench: -compression %q: want none or snappy", *compressionFlag))
}

// franzOpts are the producer options every franz-go pipeline shares beyond its defaults.
func franzOpts() []kgo.Opt {
	if snappy() {
		return []kgo.Opt{kgo.ProducerBatchCompression(kgo.SnappyCompression())}
	}
	return []kgo.Opt{kgo.ProducerBatchCompression(kgo.NoCompression())}
}

// newFranzClient is the client of the tutorial and the Kafka floor: franz-go's defaults, with
// acks from every in-sync replica spelled out.
func newFranzClient(brokers []string) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.RequiredAcks(kgo.AllISRAcks())}, franzOpts()...)...)
}

const (
	// signatureHeader carries the hex HMAC-SHA256 of the body. Genesys does not send it; a signing
	// proxy in front does, and it is the header tutorials use.
	signatureHeader = "X-Genesys-Event-Signature"
	partitions      = 8
	benchSample     = "conversation.customer.end.2k7.json"
)

var benchSecret = []byte("4b1d6c0f3e2a9d8c7b6a5f4e3d2c1b0a")

// benchScheme is that signature as fanbridge's signature package describes it.
var benchScheme = signature.HMACScheme{Header: signatureHeader, Encoding: signature.Hex}

// The pipelines, in the order results are reported.
const (
	nameFanbridge = "fanbridge"
	nameTutorial  = "tutorial"
	nameWatermill = "watermill"
)

var pipelineNames = []string{nameFanbridge, nameTutorial, nameWatermill}

// Two reference servers, measured by BenchmarkEndToEnd only, show the floor under every
// pipeline on this machine: floor-http reads the body and answers 200 (net/http and the loopback
// alone); floor-http-kafka also produces the body with franz-go's ProduceSync and waits for the
// acknowledgement, with no signature, decoding or matching.
const (
	nameFloorHTTP  = "floor-http"
	nameFloorKafka = "floor-http-kafka"
)

var floorNames = []string{nameFloorHTTP, nameFloorKafka}

func TestMain(m *testing.M) {
	if os.Getenv(loadgenEnv) == "1" {
		os.Exit(loadgenMain())
	}
	flag.Parse()
	if *pinFlag && benchmarking() {
		startPinned()
	}
	code := m.Run()
	if theHarness != nil {
		if err := theHarness.close(); err != nil {
			fmt.Fprintln(os.Stderr, "bench: closing:", err)
		}
	} else if pinnedGen != nil {
		_ = pinnedGen.close()
	}
	os.Exit(code)
}

// pipeline is one server under test.
type pipeline struct {
	name     string
	topic    string
	url      string
	close    func() error
	produces bool // every event it accepts is a record in topic
}

// harness is the load generator, its broker and the three pipelines, shared by every test and
// benchmark of the process.
type harness struct {
	gen       *loadgen
	brokers   []string
	rules     []rule
	template  []byte
	idAt      int
	pipelines map[string]*pipeline
}

var (
	harnessOnce sync.Once
	theHarness  *harness
	harnessErr  error
)

func getHarness(tb testing.TB) *harness {
	tb.Helper()
	harnessOnce.Do(func() { theHarness, harnessErr = newHarness() })
	if harnessErr != nil {
		tb.Fatalf("setting up: %v", harnessErr)
	}
	return theHarness
}

func newHarness() (h *harness, err error) {
	h = &harness{rules: generateRules(numRules, 1), pipelines: map[string]*pipeline{}}
	if h.template, err = os.ReadFile("testdata/" + benchSample); err != nil {
		return nil, err
	}
	if h.idAt, err = idTailOffset(h.template); err != nil {
		return nil, err
	}
	if pinnedGen != nil {
		h.gen, pinnedGen = pinnedGen, nil
	} else if h.gen, err = startLoadgen(); err != nil {
		return nil, err
	}
	// The returns below set h to nil; the cleanup closes what was built through its own copy.
	built := h
	defer func() {
		if err != nil {
			_ = built.close()
		}
	}()
	all := slices.Concat(pipelineNames, floorNames)
	topics := make([]string, len(all))
	for i, n := range all {
		topics[i] = n + "-events"
	}
	resp, err := h.gen.call(lgRequest{Op: "start", Topics: topics, Partitions: partitions})
	if err != nil {
		return nil, err
	}
	h.brokers = resp.Brokers
	for _, name := range all {
		p, err := newPipeline(name, h.brokers, name+"-events", h.rules)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		h.pipelines[name] = p
	}
	return h, nil
}

func (h *harness) close() error {
	var errs []error
	for _, p := range h.pipelines {
		errs = append(errs, p.close())
	}
	if h.gen != nil {
		errs = append(errs, h.gen.close())
	}
	return errors.Join(errs...)
}

func newPipeline(name string, brokers []string, topic string, rules []rule) (*pipeline, error) {
	switch name {
	case nameFanbridge:
		return newFanbridgePipeline(brokers, topic, rules)
	case nameTutorial:
		client, err := newFranzClient(brokers)
		if err != nil {
			return nil, err
		}
		srv := httptest.NewServer(newTutorialHandler(client, topic, benchSecret, tutorialFilters(rules)))
		return &pipeline{name: name, topic: topic, url: srv.URL + "/events", produces: true, close: func() error {
			srv.Close()
			client.Close()
			return nil
		}}, nil
	case nameWatermill:
		wp, err := newWatermillPipeline(brokers, topic, benchSecret, watermillRules(rules))
		if err != nil {
			return nil, err
		}
		return &pipeline{name: name, topic: topic, url: wp.server.URL + "/events", produces: true, close: wp.Close}, nil
	case nameFloorHTTP:
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := io.Copy(io.Discard, r.Body); err != nil {
				w.WriteHeader(http.StatusBadRequest)
			}
		}))
		return &pipeline{name: name, topic: topic, url: srv.URL + "/events", close: func() error {
			srv.Close()
			return nil
		}}, nil
	case nameFloorKafka:
		client, err := newFranzClient(brokers)
		if err != nil {
			return nil, err
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			if err := client.ProduceSync(r.Context(), &kgo.Record{Topic: topic, Value: body}).FirstErr(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}))
		return &pipeline{name: name, topic: topic, url: srv.URL + "/events", produces: true, close: func() error {
			srv.Close()
			client.Close()
			return nil
		}}, nil
	}
	return nil, fmt.Errorf("unknown pipeline %q", name)
}

// newFanbridgePipeline wires fanbridge the way its manuals show: signature.Verify with an HMAC
// verifier in front of eventbridge.NewHandler, driving a fanout.Dispatcher (sync mode, the
// default) with one route per pattern to a kafkasink built by Dial (acks=all, idempotent).
// WithEnvelopeValue makes the record value the whole envelope, the bytes the other pipelines
// produce.
func newFanbridgePipeline(brokers []string, topic string, rules []rule) (*pipeline, error) {
	ks, err := kafkasink.Dial(kafkasink.ClientConfig{Brokers: brokers, Opts: franzOpts()},
		kafkasink.WithTopic(topic), kafkasink.WithEnvelopeValue())
	if err != nil {
		return nil, err
	}
	routes := make([]fanout.Route, len(rules))
	for i, r := range rules {
		routes[i] = fanout.Route{Name: r.name, Pattern: r.pattern(), Sinks: []string{"kafka"}}
	}
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "kafka", Sink: ks}},
		Routes: routes,
	})
	if err != nil {
		_ = ks.Close()
		return nil, err
	}
	closeDispatcher := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return d.Close(ctx)
	}
	h, err := eventbridge.NewHandler(d)
	if err != nil {
		return nil, errors.Join(err, closeDispatcher())
	}
	v, err := signature.HMAC(benchScheme, string(benchSecret))
	if err != nil {
		return nil, errors.Join(err, closeDispatcher())
	}
	mux := http.NewServeMux()
	mux.Handle("POST /events", signature.Verify(v)(h))
	srv := httptest.NewServer(mux)
	return &pipeline{name: nameFanbridge, topic: topic, url: srv.URL + "/events", produces: true, close: func() error {
		srv.Close()
		return closeDispatcher()
	}}, nil
}

// segment is what one measured run of one pipeline cost.
type segment struct {
	events   int
	wall     time.Duration // the load generator's, first request to last answer
	cpu      time.Duration // this process's user+system time: the server's
	childCPU time.Duration // the child's over its run: the clients' and the broker's
	mallocs  uint64
	p50, p99 time.Duration
}

func (s segment) eventsPerSec() float64 { return float64(s.events) / s.wall.Seconds() }
func (s segment) cpuPerEvent() float64  { return float64(s.cpu.Nanoseconds()) / float64(s.events) / 1e3 } // µs

// childCPUPerEvent is the load generator's and the broker's CPU per event, in µs. The machine
// spends cpuPerEvent + childCPUPerEvent on each event, which is what bounds events/s.
func (s segment) childCPUPerEvent() float64 {
	return float64(s.childCPU.Nanoseconds()) / float64(s.events) / 1e3
}

func processCPU() time.Duration {
	d, err := cputime.Process()
	if err != nil {
		panic(err)
	}
	return d
}

// measure sends n fresh copies of the 2.7 KB event to p and checks that every one was answered
// 200 and that the topic then holds exactly n new records, so that a broken pipeline cannot be
// timed. (It counts records, not ids: that each acknowledged event is there once, and that the
// answer waits for the broker, the smoke tests check by reading the records back and with a
// slow broker.) withMem
// reads the allocation counters around the run (a short stop of the world at each end); after,
// when set, runs as soon as the load generator answers (a benchmark stops its timer there).
func (h *harness) measure(p *pipeline, n int, withMem bool, after func()) (segment, error) {
	// Start from a collected heap: the garbage the previous segment left (in the comparison,
	// another pipeline's, and always the same one's, since the order only rotates) would otherwise
	// be collected during this segment and billed to this pipeline's CPU.
	runtime.GC()
	var ms0, ms1 runtime.MemStats
	if withMem {
		runtime.ReadMemStats(&ms0)
	}
	cpu0 := processCPU()
	resp, err := h.gen.call(lgRequest{Op: "run", URL: p.url, N: n, Clients: *clientsFlag,
		Template: h.template, IDAt: h.idAt, Secret: benchSecret})
	cpu := processCPU() - cpu0
	if after != nil {
		after()
	}
	if withMem {
		runtime.ReadMemStats(&ms1)
	}
	if err != nil {
		return segment{}, err
	}
	if resp.Statuses[http.StatusOK] != n {
		return segment{}, fmt.Errorf("%s: %d of %d events answered 200 (answers %v, first error %q)",
			p.name, resp.Statuses[http.StatusOK], n, resp.Statuses, resp.FirstErr)
	}
	drained, err := h.gen.call(lgRequest{Op: "drain", Topic: p.topic})
	if err != nil {
		return segment{}, err
	}
	want := int64(n)
	if !p.produces {
		want = 0
	}
	if drained.Produced != want {
		return segment{}, fmt.Errorf("%s: %d events acknowledged but %d records in Kafka", p.name, n, drained.Produced)
	}
	return segment{
		events:   n,
		wall:     time.Duration(resp.Elapsed),
		cpu:      cpu,
		childCPU: time.Duration(resp.CPU),
		mallocs:  ms1.Mallocs - ms0.Mallocs,
		p50:      time.Duration(resp.P50),
		p99:      time.Duration(resp.P99),
	}, nil
}
