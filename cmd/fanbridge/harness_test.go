package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

var (
	raceBinary = flag.Bool("race-binary", false, "build the service binary with -race (slower)")
	long       = flag.Bool("long", false, "run the load tests at full size")
)

// binary is the service built once for the whole package run.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "fanbridge-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "fanbridge")
	args := []string{"build", "-o", binary}
	if *raceBinary {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the service binary:", err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// lines collects a stream line by line and lets tests wait for a line, without polling.
type lines struct {
	mu      sync.Mutex
	all     []string
	changed chan struct{}
	closed  bool
	eof     chan struct{} // closed once the stream has been read to its end
}

func newLines(r io.Reader) *lines {
	l := &lines{changed: make(chan struct{}), eof: make(chan struct{})}
	go func() {
		defer close(l.eof)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			l.mu.Lock()
			l.all = append(l.all, sc.Text())
			close(l.changed)
			l.changed = make(chan struct{})
			l.mu.Unlock()
		}
		// After a line too long for the scanner, keep reading so the process never blocks on
		// a full pipe.
		_, _ = io.Copy(io.Discard, r)
		l.mu.Lock()
		l.closed = true
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
	}()
	return l
}

// wait returns the first line at or after index from that satisfies match, and its index.
func (l *lines) wait(ctx context.Context, from int, match func(string) bool) (string, int, error) {
	for i := from; ; {
		l.mu.Lock()
		for ; i < len(l.all); i++ {
			if match(l.all[i]) {
				s := l.all[i]
				l.mu.Unlock()
				return s, i, nil
			}
		}
		closed, ch := l.closed, l.changed
		l.mu.Unlock()
		if closed {
			return "", i, io.EOF
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return "", i, ctx.Err()
		}
	}
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n")
}

func (l *lines) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all)
}

// logMsg reports whether a JSON log line has the message msg, and decodes it.
func logMsg(line, msg string) (map[string]any, bool) {
	var m map[string]any
	if json.Unmarshal([]byte(line), &m) != nil || m["msg"] != msg {
		return nil, false
	}
	return m, true
}

// proc is a running service binary.
type proc struct {
	cmd    *exec.Cmd
	stdout *lines
	stderr *lines
	done   chan struct{}
	err    error
	addr   string
}

func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	so, err := cmd.StdoutPipe()
	require.NoError(t, err)
	se, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, stdout: newLines(so), stderr: newLines(se), done: make(chan struct{})}
	go func() {
		// Wait closes the pipes: read them to their end first (the process closes them when it
		// exits), so that no line written just before the exit is lost.
		<-p.stdout.eof
		<-p.stderr.eof
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("service stderr:\n%s", tail(p.stderr.String(), 60))
		}
	})
	return p
}

func tail(s string, n int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// startService runs the binary with a configuration file and waits until it listens.
func startService(t *testing.T, ctx context.Context, cfgPath string, env ...string) *proc {
	t.Helper()
	p := start(t, env, "-config", cfgPath)
	line, _, err := p.stderr.wait(ctx, 0, func(s string) bool { _, ok := logMsg(s, "listening"); return ok })
	require.NoError(t, err, "service did not start:\n%s", p.stderr.String())
	m, _ := logMsg(line, "listening")
	p.addr = m["addr"].(string)
	return p
}

func (p *proc) url(path string) string { return "http://" + p.addr + path }

func (p *proc) signal(t *testing.T, s syscall.Signal) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(s))
}

// exit waits for the process and returns its exit code.
func (p *proc) exit(ctx context.Context) (int, error) {
	select {
	case <-p.done:
	case <-ctx.Done():
		return -1, ctx.Err()
	}
	if p.err == nil {
		return 0, nil
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode(), nil
	}
	return -1, p.err
}

// runCmd runs the binary to completion (a subcommand) and returns its exit code and output.
func runCmd(t *testing.T, ctx context.Context, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "running %v: %v", args, err)
		code = ee.ExitCode()
	}
	return code, so.String(), se.String()
}

// newKafka starts an in-process Kafka cluster with the topics.
func newKafka(t *testing.T, topics ...string) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topics...))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// record is one Kafka record read back, as a fanbridge event.
type record struct {
	Topic string
	Key   string
	Event *fanbridge.Event
	Value []byte
}

// readAll reads every record the topics hold right now: it asks for the end offsets first and
// consumes up to them, so the result is exact without waiting for silence.
func readAll(t *testing.T, ctx context.Context, brokers []string, topics ...string) []record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	require.NoError(t, err)
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics...)
	require.NoError(t, err)
	want := map[string]map[int32]kgo.Offset{}
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) {
		require.NoError(t, o.Err)
		if want[o.Topic] == nil {
			want[o.Topic] = map[int32]kgo.Offset{}
		}
		want[o.Topic][o.Partition] = kgo.NewOffset().AtStart()
		total += o.Offset
	})
	var out []record
	if total == 0 {
		return out
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(want))
	require.NoError(t, err)
	defer cons.Close()
	for int64(len(out)) < total {
		fs := cons.PollFetches(ctx)
		require.NoError(t, ctx.Err(), "read %d of %d records", len(out), total)
		fs.EachRecord(func(r *kgo.Record) {
			e, err := kafkasink.EventFromRecord(r)
			require.NoError(t, err)
			out = append(out, record{Topic: r.Topic, Key: string(r.Key), Event: e, Value: r.Value})
		})
	}
	return out
}

// consumer is a gRPC consumer behind grpcsink.NewServer that records what it gets.
type consumer struct {
	t    *testing.T
	addr string
	srv  *grpc.Server

	mu   sync.Mutex
	got  []delivery
	gate chan struct{} // when non-nil, Deliver waits for it to close
	held chan struct{} // gets one value per held Deliver
}

type delivery struct {
	Event       *fanbridge.Event
	Sink        string
	Traceparent string
}

func newConsumer(t *testing.T) *consumer {
	c := &consumer{t: t, held: make(chan struct{}, 4096)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	c.addr = ln.Addr().String()
	c.serve(ln)
	t.Cleanup(func() { c.stop() })
	return c
}

func (c *consumer) serve(ln net.Listener) {
	h, err := grpcsink.NewServer(sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
		c.mu.Lock()
		gate := c.gate
		c.mu.Unlock()
		if gate != nil {
			c.held <- struct{}{}
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		d := delivery{Event: e, Sink: grpcsink.SinkName(ctx)}
		if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("traceparent")) > 0 {
			d.Traceparent = md.Get("traceparent")[0]
		}
		c.mu.Lock()
		c.got = append(c.got, d)
		c.mu.Unlock()
		return nil
	}))
	require.NoError(c.t, err)
	srv := grpc.NewServer()
	h.Register(srv)
	c.mu.Lock()
	c.srv = srv
	c.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (c *consumer) stop() {
	c.mu.Lock()
	srv := c.srv
	c.srv = nil
	c.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// restart serves again on the same address.
func (c *consumer) restart(t *testing.T) {
	ln, err := net.Listen("tcp", c.addr)
	require.NoError(t, err)
	c.serve(ln)
}

// hold makes Deliver calls wait until the returned release is called.
func (c *consumer) hold() (release func()) {
	gate := make(chan struct{})
	c.mu.Lock()
	c.gate = gate
	c.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			c.gate = nil
			c.mu.Unlock()
			close(gate)
		})
	}
}

func (c *consumer) deliveries() []delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]delivery(nil), c.got...)
}

// post sends body to url with headers and returns the status and body; a transport error is
// returned as status 0.
func post(ctx context.Context, client *http.Client, url string, body []byte, hdr map[string]string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func get(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// eventually polls check every 20ms until it holds or ctx ends; for conditions only observable by
// asking (readiness of a sink), never as a substitute for a signal.
func eventually(ctx context.Context, check func() bool) bool {
	tk := time.NewTicker(20 * time.Millisecond)
	defer tk.Stop()
	for {
		if check() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-tk.C:
		}
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(text), 0o600))
	require.NoError(t, os.Rename(tmp, path))
}
