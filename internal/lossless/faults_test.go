package lossless_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
)

// idSet is a goroutine-safe multiset of event ids.
type idSet struct {
	mu sync.Mutex
	m  map[string]int
}

func newIDSet() *idSet { return &idSet{m: make(map[string]int)} }

func (s *idSet) add(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[id]++
	return s.m[id]
}

func (s *idSet) snapshot() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.m))
	for k, v := range s.m {
		out[k] = v
	}
	return out
}

func (s *idSet) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.m {
		n += v
	}
	return n
}

// consumer is the code behind a grpcsink.NewServer: it records what it took and fails the way
// consumers do. It is never told anything by the test: what it records is what it received.
type consumer struct {
	name        string
	c           *corpus
	unavailable float64        // rate of random Unavailable answers
	rejects     func(int) bool // events refused permanently
	rejectErr   func(string) error
	late        func(int) bool // events whose first answer is lost (see lateAtA)
	calls       *idSet         // every call, per id
	delivered   *idSet         // calls answered OK with the event recorded
	clean       *idSet         // calls answered with an error, the event not stored
	refused     *idSet         // calls refused for good
	counts      struct{ unavailable, rejected, late, foreign, corrupt atomic.Int64 }
}

func newConsumer(name string, c *corpus, unavailable float64, rejects func(int) bool, rejectErr func(string) error, late func(int) bool) *consumer {
	return &consumer{
		name: name, c: c, unavailable: unavailable, rejects: rejects, rejectErr: rejectErr, late: late,
		calls: newIDSet(), delivered: newIDSet(), clean: newIDSet(), refused: newIDSet(),
	}
}

func (cs *consumer) Send(ctx context.Context, e *fanbridge.Event) error {
	n := cs.calls.add(e.ID)
	idx, known := cs.c.byID[e.ID]
	if !known {
		// Recorded all the same: the reconciliation reports ids nobody sent.
		cs.counts.foreign.Add(1)
		cs.delivered.add(e.ID)
		return nil
	}
	if !bytes.Equal(e.Raw, cs.c.events[idx].body) {
		cs.counts.corrupt.Add(1)
	}
	switch {
	case cs.rejects != nil && cs.rejects(idx):
		cs.counts.rejected.Add(1)
		cs.clean.add(e.ID)
		cs.refused.add(e.ID)
		return cs.rejectErr(e.ID)
	case cs.late != nil && cs.late(idx) && n == 1:
		// Commit only once the caller has given up: the event lands, the answer is lost.
		<-ctx.Done()
		cs.counts.late.Add(1)
		cs.delivered.add(e.ID)
		return nil
	case rand.Float64() < cs.unavailable:
		cs.counts.unavailable.Add(1)
		cs.clean.add(e.ID)
		return status.Error(codes.Unavailable, cs.name+": busy, try again")
	}
	cs.delivered.add(e.ID)
	return nil
}

// grpcServer is a consumer's gRPC server that can be stopped and started again on its address.
type grpcServer struct {
	addr    string
	handler *grpcsink.Server

	mu       sync.Mutex
	srv      *grpc.Server
	served   chan struct{}
	downAt   time.Time
	restarts int
	downtime time.Duration
}

func startGRPCServer(h sink.Sink) (*grpcServer, error) {
	handler, err := grpcsink.NewServer(h)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g := &grpcServer{addr: lis.Addr().String(), handler: handler}
	g.serve(lis)
	return g, nil
}

func (g *grpcServer) serve(lis net.Listener) {
	srv := grpc.NewServer()
	g.handler.Register(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	g.srv, g.served = srv, done
}

// stop kills the server the hard way: listener and connections closed, calls in progress
// cancelled, as a crashed or redeployed consumer does.
func (g *grpcServer) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.srv == nil {
		return
	}
	g.srv.Stop()
	<-g.served
	g.srv = nil
	g.downAt = time.Now()
}

// restart listens on the same address again. The port was ours a moment ago, and Go listeners
// set SO_REUSEADDR, so binding normally succeeds at once; a few bounded retries cover the
// kernel taking a moment.
func (g *grpcServer) restart(ctx context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.srv != nil {
		return nil
	}
	var lc net.ListenConfig
	for attempt := 0; ; attempt++ {
		lis, err := lc.Listen(ctx, "tcp", g.addr)
		if err == nil {
			g.serve(lis)
			g.restarts++
			g.downtime += time.Since(g.downAt)
			return nil
		}
		if attempt == 50 {
			return fmt.Errorf("rebinding %s: %w", g.addr, err)
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

func (g *grpcServer) close() { g.stop() }

// kafkaFaults answers some produce requests with retriable errors and stalls one, through a kfake
// control function on the Produce key. It decodes the records of every request it fails, so the
// reconciliation knows which events met a broker error.
type kafkaFaults struct {
	c        *kfake.Cluster
	rate     float64
	active   atomic.Bool
	stall    atomic.Int64 // nanoseconds the next produce request is held for, once
	stop     chan struct{}
	stopOnce sync.Once

	requests, injected, stalls atomic.Int64
	ids                        *idSet
	undecoded                  atomic.Int64
}

func installKafkaFaults(c *kfake.Cluster, rate float64) *kafkaFaults {
	k := &kafkaFaults{c: c, rate: rate, stop: make(chan struct{}), ids: newIDSet()}
	codes := []int16{kerr.NotLeaderForPartition.Code, kerr.RequestTimedOut.Code}
	c.ControlKey(kmsg.Produce.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		k.requests.Add(1)
		if !k.active.Load() {
			return nil, nil, false
		}
		if d := time.Duration(k.stall.Swap(0)); d > 0 {
			k.stalls.Add(1)
			c.SleepControl(func() {
				t := time.NewTimer(d)
				defer t.Stop()
				select {
				case <-t.C:
				case <-k.stop:
				}
			})
			return nil, nil, false
		}
		if rand.Float64() >= k.rate {
			return nil, nil, false
		}
		pr := req.(*kmsg.ProduceRequest)
		code := codes[rand.IntN(len(codes))]
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		resp.Version = pr.Version
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = code
				st.Partitions = append(st.Partitions, sp)
				if err := k.noteRecords(rp.Records); err != nil {
					k.undecoded.Add(1)
				}
			}
			resp.Topics = append(resp.Topics, st)
		}
		k.injected.Add(1)
		return resp, nil, true
	})
	return k
}

// noteRecords records the keys (event ids: kafkasink keys records by event id) of the records in
// an uncompressed produce payload.
func (k *kafkaFaults) noteRecords(b []byte) error {
	for len(b) > 0 {
		var batch kmsg.RecordBatch
		if err := batch.ReadFrom(b); err != nil {
			return err
		}
		size := 12 + int(batch.Length) // FirstOffset and Length precede what Length counts
		if size > len(b) {
			return errors.New("short record batch")
		}
		b = b[size:]
		if batch.Attributes&0x07 != 0 {
			return errors.New("compressed record batch")
		}
		recs := batch.Records
		for range batch.NumRecords {
			l, n := binary.Varint(recs)
			if n <= 0 || int(l) < 0 || n+int(l) > len(recs) {
				return errors.New("bad record length")
			}
			var r kmsg.Record
			if err := r.ReadFrom(recs[:n+int(l)]); err != nil {
				return err
			}
			k.ids.add(string(r.Key))
			recs = recs[n+int(l):]
		}
	}
	return nil
}

func (k *kafkaFaults) close() { k.stopOnce.Do(func() { close(k.stop) }) }

// observed passes every Send through to the real sink and notes, per event id, the Sends that
// failed: the only way a sink can come to hold an event twice is a Send that failed after the
// event landed (a timeout, a lost answer, a connection cut mid-call).
type observed struct {
	next  sink.Sink
	sends atomic.Int64
	fails *idSet
}

func observe(s sink.Sink) *observed { return &observed{next: s, fails: newIDSet()} }

func (o *observed) Send(ctx context.Context, e *fanbridge.Event) error {
	o.sends.Add(1)
	err := o.next.Send(ctx, e)
	if err != nil {
		o.fails.add(e.ID)
	}
	return err
}

// Close hands the Dispatcher's close on to the real sink.
func (o *observed) Close() error { return sink.Close(o.next) }

// permanentA is consumer A's refusal: marked permanent, which the server turns into
// FailedPrecondition and the sending Sink back into a permanent error.
func permanentA(id string) error {
	return retry.Permanent(fmt.Errorf("grpc-a: event %s breaks a business rule", id))
}

// invalidB is consumer B's refusal, an explicit gRPC status.
func invalidB(id string) error {
	return status.Errorf(codes.InvalidArgument, "grpc-b: event %s is not acceptable", id)
}

// outageQueue stands in front of the real dead-letter queue and refuses every Put while the
// disk is "full", as a queue on a full or failing volume does. A refused entry is not stored.
// It also counts, by sink and event, the Puts the real queue failed: such an entry may be stored
// all the same (filedlq writes the line, then gives up waiting for the fsync when the context
// ends), so the sender's retry may leave a second one.
type outageQueue struct {
	next      dlq.Queue
	down      atomic.Bool
	refused   atomic.Int64
	uncertain *idSet // "sink event-id" -> failed Puts that may have stored their entry
}

func (q *outageQueue) Put(ctx context.Context, en dlq.Entry) error {
	if q.down.Load() {
		q.refused.Add(1)
		return errors.New("dead-letter volume: no space left on device")
	}
	err := q.next.Put(ctx, en)
	if err != nil {
		q.uncertain.add(en.Sink + " " + en.Event.ID)
	}
	return err
}

// lossLog is a slog.Handler that keeps the deliveries the Dispatcher reports lost (Async mode's
// documented loss: accepted, then neither delivered nor dead-lettered), by sink and event id.
type lossLog struct {
	mu   sync.Mutex
	lost map[string]map[string]bool
}

func newLossLog() *lossLog { return &lossLog{lost: map[string]map[string]bool{}} }

func (l *lossLog) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelError }

func (l *lossLog) Handle(_ context.Context, r slog.Record) error {
	if !strings.Contains(r.Message, "event lost") {
		return nil
	}
	var id, sinkName string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "event_id":
			id = a.Value.String()
		case "sink":
			sinkName = a.Value.String()
		}
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost[sinkName] == nil {
		l.lost[sinkName] = map[string]bool{}
	}
	l.lost[sinkName][id] = true
	return nil
}

func (l *lossLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *lossLog) WithGroup(string) slog.Handler      { return l }

func (l *lossLog) snapshot() map[string]map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]map[string]bool, len(l.lost))
	for s, m := range l.lost {
		out[s] = make(map[string]bool, len(m))
		for id := range m {
			out[s][id] = true
		}
	}
	return out
}
