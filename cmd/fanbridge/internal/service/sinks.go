package service

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// builtSink is one configured sink with what the service needs beside the Sink: the key that
// tells whether a reloaded configuration changed it, and its readiness probe.
type builtSink struct {
	name  string
	key   string
	sink  sink.Sink
	probe func(ctx context.Context) error
	// release frees what the probe holds (the Kafka probe's client, the gRPC probe's
	// connections); the Dispatcher closes the sink.
	release func()
}

// reconnect keeps gRPC reconnection attempts frequent, so that a consumer that comes back is
// used (and reported ready) within seconds rather than after gRPC's default two-minute backoff.
var reconnect = grpc.WithConnectParams(grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
	MinConnectTimeout: 2 * time.Second,
})

// sinkKey fingerprints a sink's configuration, including the state of the TLS files it reads, so
// that a reload rebuilds exactly the sinks whose settings (or certificates) changed.
func sinkKey(s *config.Sink) string {
	h := sha256.New()
	b, _ := json.Marshal(s)
	h.Write(b)
	var tlsCfg *config.TLS
	switch {
	case s.Kafka != nil:
		tlsCfg = s.Kafka.TLS
	case s.GRPC != nil:
		tlsCfg = s.GRPC.TLS
	}
	if tlsCfg != nil {
		for _, f := range []string{tlsCfg.CAFile, tlsCfg.CertFile, tlsCfg.KeyFile} {
			if f == "" {
				continue
			}
			if fi, err := os.Stat(f); err == nil {
				fmt.Fprintf(h, "%s|%d|%d", f, fi.Size(), fi.ModTime().UnixNano())
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func buildSink(s *config.Sink, log *slog.Logger) (*builtSink, error) {
	b := &builtSink{name: s.Name, key: sinkKey(s), release: func() {}}
	switch {
	case s.Kafka != nil:
		cc, err := s.Kafka.ClientConfig()
		if err != nil {
			return nil, err
		}
		opts, err := s.Kafka.Options()
		if err != nil {
			return nil, err
		}
		ks, err := kafkasink.Dial(cc, append(opts, kafkasink.WithLogger(log.With("sink", s.Name)))...)
		if err != nil {
			return nil, err
		}
		// The probe pings through a client of its own, as the gRPC probe has connections of its
		// own: the Dispatcher closes the sink a reload retired as soon as its work has drained,
		// which can be while a readiness check is still pinging, and a ping through the sink's
		// client would then fail a healthy sink. The probe's client is closed by release, once no
		// check uses it (readiness.swapProbes), and on shutdown.
		pc, err := kafkasink.Dial(cc, opts...)
		if err != nil {
			_ = ks.Close()
			return nil, err
		}
		b.sink = ks
		b.probe = kafkaProbe(pc, kafkaSinkTopics(s.Kafka))
		b.release = func() { _ = pc.Close() }
	case s.GRPC != nil:
		g := s.GRPC
		var (
			tr    grpcsink.Option
			creds credentials.TransportCredentials
		)
		switch {
		case g.Insecure:
			tr = grpcsink.WithInsecure()
			creds = insecure.NewCredentials()
		default:
			tc, err := g.TLS.Config()
			if err != nil {
				return nil, fmt.Errorf("tls: %w", err)
			}
			if tc == nil {
				tc = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			tr = grpcsink.WithTLS(tc)
			creds = credentials.NewTLS(tc)
		}
		opts := []grpcsink.Option{
			tr,
			grpcsink.WithName(s.Name),
			grpcsink.WithCallTimeout(g.CallTimeout.D()),
			grpcsink.WithLogger(log.With("sink", s.Name)),
			grpcsink.WithDialOptions(reconnect),
		}
		if g.Raw != nil && !*g.Raw {
			opts = append(opts, grpcsink.WithoutRaw())
		}
		gs, err := grpcsink.New(strings.Join(g.Targets, ","), opts...)
		if err != nil {
			return nil, err
		}
		b.sink = gs
		p, err := newGRPCProbe(g.Targets, creds)
		if err != nil {
			_ = gs.Close()
			return nil, err
		}
		b.probe = p.check
		b.release = p.close
	default:
		return nil, errors.New("no sink kind")
	}
	return b, nil
}

// grpcProbe watches one connection per target address, apart from the sink's own connection
// (which grpcsink keeps to itself), and asks each consumer's health service when it has one.
type grpcProbe struct {
	conns []*grpc.ClientConn
}

func newGRPCProbe(targets []string, creds credentials.TransportCredentials) (*grpcProbe, error) {
	p := &grpcProbe{}
	for _, t := range targets {
		c, err := grpc.NewClient(t, grpc.WithTransportCredentials(creds), reconnect)
		if err != nil {
			p.close()
			return nil, err
		}
		p.conns = append(p.conns, c)
	}
	return p, nil
}

func (p *grpcProbe) close() {
	for _, c := range p.conns {
		_ = c.Close()
	}
}

// check reports nil when at least one target is connected and not declared unhealthy.
func (p *grpcProbe) check(ctx context.Context) error {
	var errs []error
	for _, c := range p.conns {
		err := probeConn(ctx, c)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", c.Target(), err))
	}
	return errors.Join(errs...)
}

func probeConn(ctx context.Context, c *grpc.ClientConn) error {
	c.Connect()
	for {
		s := c.GetState()
		switch s {
		case connectivity.Ready:
			return health(ctx, c)
		case connectivity.TransientFailure:
			return errors.New("not connected (transient failure)")
		case connectivity.Shutdown:
			return errors.New("connection closed")
		}
		if !c.WaitForStateChange(ctx, s) {
			return fmt.Errorf("not connected (%s)", strings.ToLower(s.String()))
		}
	}
}

// health asks the standard gRPC health service; a consumer without one counts as healthy once
// connected.
func health(ctx context.Context, c *grpc.ClientConn) error {
	resp, err := healthpb.NewHealthClient(c).Check(ctx, &healthpb.HealthCheckRequest{})
	switch status.Code(err) {
	case codes.OK:
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("health: %s", resp.GetStatus())
		}
		return nil
	case codes.Unimplemented:
		return nil
	}
	return fmt.Errorf("health: %s", status.Code(err))
}

// sinkConfigs turns built sinks into the Dispatcher's sink list, in configuration order.
func sinkConfigs(cfg *config.Config, built map[string]*builtSink) []fanout.SinkConfig {
	out := make([]fanout.SinkConfig, 0, len(cfg.Sinks))
	for i := range cfg.Sinks {
		s := &cfg.Sinks[i]
		out = append(out, fanout.SinkConfig{
			Name:        s.Name,
			Sink:        built[s.Name].sink,
			Retry:       s.Retry.Policy(),
			Concurrency: s.Concurrency,
			QueueSize:   s.QueueSize,
			Breaker:     fanout.Breaker{Failures: s.Breaker.Failures, Cooldown: s.Breaker.Cooldown.D()},
		})
	}
	return out
}
