package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
)

// closeFails is a sink whose Close fails, as a Kafka sink's does when its broker stayed away past
// the close bound, and says when it ran.
type closeFails struct{ closed chan struct{} }

func newCloseFails() *closeFails { return &closeFails{closed: make(chan struct{})} }

func (*closeFails) Send(context.Context, *fanbridge.Event) error { return nil }
func (c *closeFails) Close() error {
	close(c.closed)
	return errors.New("51 records still unacknowledged after 10s")
}

// retiringConfig returns a configuration whose only sink, named sink, is a Kafka one on c, and a
// parser for it.
func retiringConfig(t *testing.T, c *kfake.Cluster) (text func(sink string) []byte, parse func([]byte) *config.Config) {
	text = func(sink string) []byte {
		return fmt.Appendf(nil, `listen: {address: "127.0.0.1:0"}
intake:
  - path: /events
    insecure_no_auth: true
sinks:
  - name: %s
    kafka: {brokers: [%q], topic: t}
routes:
  - {name: everything, all: true, sinks: [%s]}
`, sink, c.ListenAddrs()[0], sink)
	}
	parse = func(b []byte) *config.Config {
		cfg, err := config.Parse(b, nil)
		require.NoError(t, err)
		return cfg
	}
	return text, parse
}

// errorRecords passes the message and text of each Error record to c.
type errorRecords struct{ c chan string }

func (h errorRecords) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (h errorRecords) Handle(_ context.Context, r slog.Record) error {
	text := r.Message
	r.Attrs(func(a slog.Attr) bool {
		text += " " + a.Key + "=" + a.Value.String()
		return true
	})
	select {
	case h.c <- text:
	default:
	}
	return nil
}
func (h errorRecords) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h errorRecords) WithGroup(string) slog.Handler      { return h }

// A sink a reload retired that fails to close is logged at error when that happens, naming it,
// and is not reported again at the shutdown, which a failure days before would otherwise turn
// into an exit 1 for a shutdown that lost nothing.
func TestRetiredSinkCloseFailureIsLoggedWhenItHappens(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	text, parse := retiringConfig(t, c)
	logged := make(chan string, 16)
	s, _ := newServiceLoggingTo(t, text("crm"), errorRecords{c: logged})

	// The sink under the name becomes one whose Close fails; the same file applied again hands it
	// to the Dispatcher.
	s.mu.Lock()
	s.sinks["crm"].sink = newCloseFails()
	s.mu.Unlock()
	require.NoError(t, s.Reload(parse(text("crm"))))
	// The rename retires it.
	require.NoError(t, s.Reload(parse(text("crm-v2"))))

	select {
	case line := <-logged:
		assert.Contains(t, line, "sinks retired by a reload failed to close")
		assert.Contains(t, line, `"crm"`)
		assert.Contains(t, line, "51 records still unacknowledged")
	case <-time.After(20 * time.Second):
		t.Fatal("the retired sink's close failure was not logged")
	}
	assert.NoError(t, s.shutdown(), "a failure already reported is not the shutdown's")
}

// A close failure a reload's retirement caused is reported once, in the log or by the shutdown,
// however close the shutdown follows the reload: never by neither.
func TestRetiredSinkCloseFailureIsNeverLost(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	text, parse := retiringConfig(t, c)
	for i := range 40 {
		logged := make(chan string, 16)
		s, _ := newServiceLoggingTo(t, text("crm"), errorRecords{c: logged})
		sink := newCloseFails()
		s.mu.Lock()
		s.sinks["crm"].sink = sink
		s.mu.Unlock()
		require.NoError(t, s.Reload(parse(text("crm"))))
		require.NoError(t, s.Reload(parse(text("crm-v2"))))
		select {
		case <-sink.closed:
		case <-time.After(20 * time.Second):
			t.Fatal("the retired sink was not closed")
		}
		shutErr := s.shutdown() // it waits for the goroutine that logs
		inLog := false
		for len(logged) > 0 {
			if line := <-logged; strings.Contains(line, "sinks retired by a reload failed to close") {
				inLog = true
			}
		}
		byShutdown := shutErr != nil && strings.Contains(shutErr.Error(), "51 records")
		assert.True(t, inLog != byShutdown, "run %d: logged %v, reported by the shutdown %v (%v)", i, inLog, byShutdown, shutErr)
	}
}
