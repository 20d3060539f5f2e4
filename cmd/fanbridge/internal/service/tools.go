package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/dlq/kafkadlq"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// Sinks builds the configured sinks by name, for tools such as `dlq redrive`; release closes them.
func Sinks(cfg *config.Config, log *slog.Logger) (map[string]sink.Sink, func(), error) {
	out := map[string]sink.Sink{}
	var built []*builtSink
	release := func() {
		for _, b := range built {
			b.release()
			_ = sink.Close(b.sink)
		}
	}
	for i := range cfg.Sinks {
		b, err := buildSink(&cfg.Sinks[i], log)
		if err != nil {
			release()
			return nil, nil, cfg.SinkError(i, err)
		}
		built = append(built, b)
		out[b.name] = b.sink
	}
	return out, release, nil
}

// OpenDLQ opens the dead-letter queue d as a Reader. A file queue opened for writing fails with
// an error wrapping filedlq.ErrLocked while a running service holds it. When d is src's, the
// values ${ENV} expansion put in its settings are cut out of the errors (src may be nil).
func OpenDLQ(src *config.Config, d *config.DLQ, readOnly bool, log *slog.Logger) (_ dlq.Reader, _ func() error, err error) {
	defer func() {
		if err != nil && src != nil && d != nil && src.DLQ == d {
			err = src.SettingError(dlqPath(d), err)
		}
	}()
	switch {
	case d == nil:
		return nil, nil, errors.New("the configuration has no dlq")
	case d.File != nil:
		opts := []filedlq.Option{filedlq.WithLogger(log), filedlq.WithMaxEntrySize(FileDLQEntrySize)}
		if readOnly {
			opts = append(opts, filedlq.WithReadOnly())
		}
		q, err := filedlq.Open(d.File.Dir, opts...)
		if err != nil {
			if errors.Is(err, filedlq.ErrLocked) {
				return nil, nil, fmt.Errorf("%w (a running fanbridge holds this directory: stop it first, or redrive from a copy)", err)
			}
			return nil, nil, err
		}
		return q, q.Close, nil
	case d.Kafka != nil:
		q, ks, err := dialKafkaDLQ(d.Kafka, log)
		if err != nil {
			return nil, nil, err
		}
		return q, ks.Close, nil
	}
	return nil, nil, errors.New("the dlq has neither file nor kafka")
}

// FileDLQEntrySize is the longest entry the service writes to a file dead-letter queue, and,
// doubled, the longest line its tools read. An entry holds the envelope and its data apart (the
// data is a part of the envelope), so an event as large as an intake may take must fit twice,
// with room for the entry's other fields; filedlq's default of 8 MiB would refuse events of a
// little over 4 MiB, which could then never be dead-lettered. An envelope is embedded as it is
// only when it is compact JSON without <, >, &, DEL, C1 controls or U+2028 to U+202E and U+2066 to
// U+2069 (see dlq.Entry.AppendJSON); otherwise it and its data are kept as JSON strings, where
// each quote and backslash takes two bytes and each of those characters up to six. Such a body
// of more than about 8 MiB can be too large to dead-letter, and its sender is answered 503 for as
// long as its sink fails; Genesys' events (256 KiB at most) are far from it.
const FileDLQEntrySize = 2*config.MaxMaxBody + 1<<20

// dlqPath is the key path of the settings of the queue d.
func dlqPath(d *config.DLQ) string {
	if d.Kafka != nil {
		return "dlq.kafka"
	}
	return "dlq.file"
}

// dialKafkaDLQ opens a Kafka dead-letter queue on a client of its own. A kafkasink built for the
// topic gives a client with acks=all and idempotence, which kafkadlq requires, and a Ping for
// readiness; closing the sink closes the client. The sink sends nothing itself, so the wait for
// acknowledgements its close would make is cut to a moment: what the client still holds at the
// end is the queue's, which closeKafkaDLQ sends within the time its caller has left. The client
// pushes no client metrics (KIP-714) to the brokers, so that its close does not wait up to a
// second more for a last push to a broker that is gone.
func dialKafkaDLQ(k *config.KafkaDLQ, log *slog.Logger) (*kafkadlq.Queue, *kafkasink.Sink, error) {
	cc, err := k.ClientConfig()
	if err != nil {
		return nil, nil, err
	}
	cc.Opts = append(cc.Opts, kgo.DisableClientMetrics())
	ks, err := kafkasink.Dial(cc, kafkasink.WithTopic(k.Topic), kafkasink.WithCloseTimeout(time.Millisecond))
	if err != nil {
		return nil, nil, err
	}
	q, err := kafkadlq.New(ks.Client(), k.Topic, kafkadlq.WithLogger(log))
	if err != nil {
		_ = ks.Close()
		return nil, nil, err
	}
	return q, ks, nil
}

// closeKafkaDLQ closes a Kafka dead-letter queue dialKafkaDLQ opened. Its client may still hold
// records: those of writes that gave up waiting for the broker, which the client keeps sending.
// It sends them for as long as ctx lasts, then closes the client, which drops any it still holds.
// Their writes have already failed (the sender was answered 503, or the dispatcher counted the
// loss), so that is logged, not returned as the close's failure. A ctx that has already ended
// (a drain that took the whole bound) sends nothing more; the line is logged only when records
// are dropped.
func closeKafkaDLQ(ctx context.Context, ks *kafkasink.Sink, log *slog.Logger) error {
	cl := ks.Client()
	if err := cl.Flush(ctx); err != nil {
		if n := cl.BufferedProduceRecords(); n > 0 {
			log.Warn("dead-letter queue closed with records its client could not send in time; their writes had already failed",
				"records", n, "err", err)
		}
	}
	return ks.Close()
}
