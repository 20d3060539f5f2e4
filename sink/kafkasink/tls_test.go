package kafkasink_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// selfSigned returns a certificate for 127.0.0.1, valid for an hour, and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kfake"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// ClientConfig.TLS encrypts the client's connections: a sink given it delivers to a broker that
// speaks TLS, and never to one that speaks plaintext.
func TestDialWithTLS(t *testing.T) {
	cert, pool := selfSigned(t)
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
