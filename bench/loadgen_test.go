//go:build unix

package bench_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The load generator and the Kafka broker run in a child process: the test binary started again
// with loadgenEnv set. The server under test is then alone in the benchmark's process, so the
// process's own CPU time (getrusage RUSAGE_SELF) is the server's CPU time, with nothing to
// subtract: the clients' HTTP work, their signing and the broker's work are billed to the child.
// The two talk over the child's stdin and stdout, one JSON object per line.

const loadgenEnv = "FANBRIDGE_BENCH_LOADGEN"

// lgRequest is one command to the load generator.
type lgRequest struct {
	Op string // "start", "run", "drain" or "slow"

	// start: create the broker with these topics.
	Topics     []string `json:",omitempty"`
	Partitions int32    `json:",omitempty"`

	// run: POST N events to URL from Clients keep-alive connections. Each is Template with the
	// 12 hex digits at IDAt replaced by a sequence number, signed with Secret.
	URL      string `json:",omitempty"`
	N        int    `json:",omitempty"`
	Clients  int    `json:",omitempty"`
	Template []byte `json:",omitempty"`
	IDAt     int    `json:",omitempty"`
	Secret   []byte `json:",omitempty"`

	// drain: count the records produced to Topic since the last drain, then delete them.
	Topic string `json:",omitempty"`

	// slow: hold every produce request this long before the broker handles it (0: none), to
	// show that the pipelines answer only once the broker has acknowledged.
	SlowProduce time.Duration `json:",omitempty"`
}

// lgResponse is the load generator's answer.
type lgResponse struct {
	Err      string      `json:",omitempty"`
	Brokers  []string    `json:",omitempty"`
	FirstSeq uint64      `json:",omitempty"`
	Elapsed  int64       `json:",omitempty"` // ns from the first request's start to the last answer
	CPU      int64       `json:",omitempty"` // ns of the child's own CPU time over the same span
	P50      int64       `json:",omitempty"` // ns
	P99      int64       `json:",omitempty"` // ns
	Statuses map[int]int `json:",omitempty"` // HTTP status -> count; -1 for transport errors
	FirstErr string      `json:",omitempty"`
	Produced int64       `json:",omitempty"`
}

// idTailOffset finds the last 12 hex digits of the envelope's UUID "id", which a run overwrites
// with a sequence number so that every event is new to the pipelines' deduplication.
func idTailOffset(body []byte) (int, error) {
	for _, key := range []string{`"id": "`, `"id":"`} {
		if i := bytes.Index(body, []byte(key)); i >= 0 {
			start := i + len(key)
			if len(body) < start+37 || body[start+36] != '"' {
				return 0, errors.New("envelope id is not a UUID")
			}
			return start + 24, nil
		}
	}
	return 0, errors.New("envelope has no id")
}

// putSeq writes seq as 12 lower-case hex digits.
func putSeq(dst []byte, seq uint64) {
	const digits = "0123456789abcdef"
	for i := 11; i >= 0; i-- {
		dst[i] = digits[seq&0xf]
		seq >>= 4
	}
}

// withSeq returns a copy of body whose id ends in seq.
func withSeq(body []byte, seq uint64) ([]byte, error) {
	at, err := idTailOffset(body)
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(body)
	putSeq(out[at:at+12], seq)
	return out, nil
}

// ---- child side ----

type loadgenChild struct {
	cluster *kfake.Cluster
	adm     *kadm.Client
	kc      *kgo.Client
	seq     uint64
	slow    atomic.Int64 // ns each produce request is held; see lgRequest.SlowProduce
}

// loadgenMain runs the load generator until its stdin closes.
func loadgenMain() int {
	if err := pinChild(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: load generator not pinned, it shares every CPU:", err)
	}
	g := &loadgenChild{seq: 1}
	defer g.close()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 64<<10), 16<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req lgRequest
		var resp lgResponse
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			resp.Err = err.Error()
		} else {
			resp = g.handle(req)
		}
		if err := out.Encode(resp); err != nil {
			return 1
		}
	}
	return 0
}

func (g *loadgenChild) close() {
	if g.kc != nil {
		g.kc.Close()
	}
	if g.cluster != nil {
		g.cluster.Close()
	}
}

func (g *loadgenChild) handle(req lgRequest) lgResponse {
	switch req.Op {
	case "start":
		return g.start(req)
	case "run":
		return g.run(req)
	case "drain":
		return g.drain(req)
	case "slow":
		g.slow.Store(int64(req.SlowProduce))
		return lgResponse{}
	}
	return lgResponse{Err: "unknown op " + req.Op}
}

func (g *loadgenChild) start(req lgRequest) lgResponse {
	if g.cluster != nil {
		return lgResponse{Err: "already started"}
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(req.Partitions, req.Topics...))
	if err != nil {
		return lgResponse{Err: err.Error()}
	}
	g.cluster = c
	// A slow broker, when asked for: the request waits, then is handled as usual.
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		if d := g.slow.Load(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		return nil, nil, false
	})
	g.kc, err = kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		return lgResponse{Err: err.Error()}
	}
	g.adm = kadm.NewClient(g.kc)
	return lgResponse{Brokers: c.ListenAddrs()}
}

func (g *loadgenChild) run(req lgRequest) lgResponse {
	if g.cluster == nil {
		return lgResponse{Err: "not started"}
	}
	if req.N <= 0 || req.Clients <= 0 || req.IDAt+12 > len(req.Template) {
		return lgResponse{Err: "bad run request"}
	}
	u, err := url.Parse(req.URL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return lgResponse{Err: fmt.Sprintf("bad run URL %q", req.URL)}
	}
	first := g.seq
	g.seq += uint64(req.N)
	lat := make([]time.Duration, req.N)
	var (
		next     atomic.Int64
		mu       sync.Mutex
		statuses = map[int]int{}
		firstErr string
		wg       sync.WaitGroup
	)
	cpu0 := processCPU()
	start := time.Now()
	for range min(req.Clients, req.N) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newRawClient(u, req.Template)
			defer c.close()
			local := map[int]int{}
			var localErr string
			mac := hmac.New(sha256.New, req.Secret)
			var sum [sha256.Size]byte
			for {
				i := int(next.Add(1) - 1)
				if i >= req.N {
					break
				}
				body := c.body()
				putSeq(body[req.IDAt:req.IDAt+12], first+uint64(i))
				mac.Reset()
				mac.Write(body)
				hex.Encode(c.signature(), mac.Sum(sum[:0]))
				t0 := time.Now()
				status, err := c.do()
				lat[i] = time.Since(t0)
				if err != nil {
					local[-1]++
					localErr = err.Error()
					continue
				}
				local[status]++
			}
			mu.Lock()
			for k, v := range local {
				statuses[k] += v
			}
			if firstErr == "" {
				firstErr = localErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	slices.Sort(lat)
	return lgResponse{
		FirstSeq: first,
		Elapsed:  elapsed.Nanoseconds(),
		CPU:      cpu.Nanoseconds(),
		P50:      percentile(lat, 50).Nanoseconds(),
		P99:      percentile(lat, 99).Nanoseconds(),
		Statuses: statuses,
		FirstErr: firstErr,
	}
}

// rawClient is one load-generating client: one keep-alive HTTP/1.1 connection on which it writes
// each request, head and body, with a single write from a buffer prepared once, and reads the
// answer with net/http's own response parser. net/http's client Transport (two goroutines per
// connection, a hand-off per request) would spend more of the shared CPU than the servers under
// test, and so flatten the events/s of every pipeline towards the clients' own limit.
type rawClient struct {
	addr   string
	msg    []byte // the whole request; the body and the signature are rewritten in place
	bodyAt int
	sigAt  int
	conn   net.Conn
	br     *bufio.Reader
}

func newRawClient(u *url.URL, body []byte) *rawClient {
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%s: ", u.RequestURI(), u.Host, signatureHeader)
	c := &rawClient{addr: u.Host}
	c.msg = append(c.msg, head...)
	c.sigAt = len(c.msg)
	c.msg = append(c.msg, make([]byte, hex.EncodedLen(sha256.Size))...)
	c.msg = append(c.msg, fmt.Sprintf("\r\nContent-Length: %d\r\n\r\n", len(body))...)
	c.bodyAt = len(c.msg)
	c.msg = append(c.msg, body...)
	return c
}

func (c *rawClient) body() []byte      { return c.msg[c.bodyAt:] }
func (c *rawClient) signature() []byte { return c.msg[c.sigAt : c.sigAt+hex.EncodedLen(sha256.Size)] }

// do sends the request and reads the whole answer, dialling first when there is no connection.
// A connection that failed or that the server closes is dropped; the next request dials again.
func (c *rawClient) do() (int, error) {
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.addr, 10*time.Second)
		if err != nil {
			return 0, err
		}
		c.conn, c.br = conn, bufio.NewReaderSize(conn, 4096)
	}
	_ = c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	resp, err := c.roundTrip()
	if err != nil {
		c.close()
		return 0, err
	}
	if resp.Close {
		c.close()
	}
	return resp.StatusCode, nil
}

func (c *rawClient) roundTrip() (*http.Response, error) {
	if _, err := c.conn.Write(c.msg); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	return resp, err
}

func (c *rawClient) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn, c.br = nil, nil
	}
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (len(sorted)*p + 99) / 100
	return sorted[max(rank, 1)-1]
}

func (g *loadgenChild) drain(req lgRequest) lgResponse {
	if g.adm == nil {
		return lgResponse{Err: "not started"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	starts, err := g.adm.ListStartOffsets(ctx, req.Topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return lgResponse{Err: err.Error()}
	}
	ends, err := g.adm.ListEndOffsets(ctx, req.Topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return lgResponse{Err: err.Error()}
	}
	var produced int64
	ends.Each(func(o kadm.ListedOffset) {
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok {
			produced += o.Offset - s.Offset
		}
	})
	deleted, err := g.adm.DeleteRecords(ctx, ends.Offsets())
	if err == nil {
		err = deleted.Error()
	}
	if err != nil {
		return lgResponse{Err: err.Error()}
	}
	return lgResponse{Produced: produced}
}

// ---- parent side ----

// loadgen is the parent's handle on the child process.
type loadgen struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
	mu  sync.Mutex
}

func startLoadgen() (*loadgen, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), loadgenEnv+"=1")
	// Always set, so that a value in the caller's environment cannot pin an unpinned run.
	cmd.Env = append(cmd.Env, childCPUsEnv+"="+formatCPUs(childCPUs))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	return &loadgen{cmd: cmd, in: in, out: sc}, nil
}

func (g *loadgen) call(req lgRequest) (lgResponse, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	line, err := json.Marshal(req)
	if err != nil {
		return lgResponse{}, err
	}
	if _, err := g.in.Write(append(line, '\n')); err != nil {
		return lgResponse{}, fmt.Errorf("load generator: %w", err)
	}
	if !g.out.Scan() {
		return lgResponse{}, fmt.Errorf("load generator exited: %v", g.out.Err())
	}
	var resp lgResponse
	if err := json.Unmarshal(g.out.Bytes(), &resp); err != nil {
		return lgResponse{}, err
	}
	if resp.Err != "" {
		return resp, fmt.Errorf("load generator: %s", resp.Err)
	}
	return resp, nil
}

// close ends the child: closing its stdin makes it shut the broker down and exit.
func (g *loadgen) close() error {
	_ = g.in.Close()
	return g.cmd.Wait()
}
