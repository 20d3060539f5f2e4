package kafkasink_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fanbridge/fanbridge/internal/testpki"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// ClientConfig.TLS encrypts the client's connections: a sink given it delivers to a broker that
// speaks TLS, and never to one that speaks plaintext.
func TestDialWithTLS(t *testing.T) {
	pki := testpki.New(t)
	cert, pool := pki.Server, pki.Pool
	clientTLS := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}

	t.Run("broker speaks TLS", func(t *testing.T) {
		ctx := testContext(t)
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events"),
			kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
		require.NoError(t, err)
		t.Cleanup(c.Close)
		s, err := kafkasink.Dial(kafkasink.ClientConfig{Brokers: c.ListenAddrs(), TLS: clientTLS, Opts: fastOpts()},
			kafkasink.WithTopic("events"))
		require.NoError(t, err)
		defer s.Close()
		require.NoError(t, s.Send(ctx, presenceEvent("encrypted")))
	})

	t.Run("broker speaks plaintext", func(t *testing.T) {
		c := newCluster(t, "events")
		s, err := kafkasink.Dial(kafkasink.ClientConfig{Brokers: c.ListenAddrs(), TLS: clientTLS, Opts: fastOpts()},
			kafkasink.WithTopic("events"), kafkasink.WithCloseTimeout(300*time.Millisecond))
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		assert.Error(t, s.Send(ctx, presenceEvent("plaintext")), "a sink configured for TLS delivered without it")
		// Close waits for the record, then closes the client Dial built, which fails it: it never
		// arrives later either.
		_ = s.Close()
		assert.Empty(t, readAll(t, testContext(t), c, "events"))
	})
}
