package grpcsink_test

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
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
)

// testPKI is a private CA with a server certificate for 127.0.0.1 and a client certificate.
type testPKI struct {
	pool   *x509.CertPool
	server tls.Certificate
	client tls.Certificate
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fanbridge test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)

	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		require.NoError(t, err)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{
		pool:   pool,
		server: leaf(2, "consumer", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)}),
		client: leaf(3, "fanbridge-client", x509.ExtKeyUsageClientAuth, nil),
	}
}

// serverCreds returns TLS server credentials; with mutual set, a client certificate from the CA
// is required.
func (p *testPKI) serverCreds(mutual bool) grpc.ServerOption {
	cfg := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
	if mutual {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = p.pool
	}
	return grpc.Creds(credentials.NewTLS(cfg))
}

// peerRecorder records the verified client certificate's common name of each call.
type peerRecorder struct {
	*recorder
	clientCN chan string
}

func (p *peerRecorder) Send(ctx context.Context, e *fanbridge.Event) error {
	cn := ""
	if pr, ok := peer.FromContext(ctx); ok {
		if info, ok := pr.AuthInfo.(credentials.TLSInfo); ok && len(info.State.PeerCertificates) > 0 {
			cn = info.State.PeerCertificates[0].Subject.CommonName
		}
	}
	p.clientCN <- cn
	return p.recorder.Send(ctx, e)
}

func newTLSSink(t *testing.T, target string, opts ...grpcsink.Option) sink.Sink {
	t.Helper()
	s, err := grpcsink.New(target, append([]grpcsink.Option{grpcsink.WithDialOptions(fastReconnect())}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestTLS(t *testing.T) {
	pki := newTestPKI(t)
	trusting := &tls.Config{RootCAs: pki.pool}
	withClientCert := &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}}

	tests := []struct {
		name      string
		server    []grpc.ServerOption // nil: plaintext
		servers   int                 // addresses in the target; default 1
		opts      []grpcsink.Option
		delivered bool
		clientCN  string
	}{
		{name: "TLS with a private CA", server: []grpc.ServerOption{pki.serverCreds(false)}, opts: []grpcsink.Option{grpcsink.WithTLS(trusting)}, delivered: true},
		{name: "TLS to a list of addresses", server: []grpc.ServerOption{pki.serverCreds(false)}, servers: 2, opts: []grpcsink.Option{grpcsink.WithTLS(trusting)}, delivered: true},
		{name: "default is TLS with system roots, which do not know the CA", server: []grpc.ServerOption{pki.serverCreds(false)}},
		{name: "wrong server name", server: []grpc.ServerOption{pki.serverCreds(false)}, opts: []grpcsink.Option{grpcsink.WithTLS(&tls.Config{RootCAs: pki.pool, ServerName: "elsewhere.example"})}},
		{name: "mutual TLS with a client certificate", server: []grpc.ServerOption{pki.serverCreds(true)}, opts: []grpcsink.Option{grpcsink.WithTLS(withClientCert)}, delivered: true, clientCN: "fanbridge-client"},
		{name: "mutual TLS without a client certificate", server: []grpc.ServerOption{pki.serverCreds(true)}, opts: []grpcsink.Option{grpcsink.WithTLS(trusting)}},
		{name: "plaintext server refused by default", server: nil},
		{name: "plaintext server refused with TLS", server: nil, opts: []grpcsink.Option{grpcsink.WithTLS(trusting)}},
		{name: "plaintext when asked by name", server: nil, opts: []grpcsink.Option{grpcsink.WithInsecure()}, delivered: true},
		{name: "TLS server refuses plaintext", server: []grpc.ServerOption{pki.serverCreds(false)}, opts: []grpcsink.Option{grpcsink.WithInsecure()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &peerRecorder{recorder: newRecorder(), clientCN: make(chan string, 8)}
			var addrs []string
			for range max(tt.servers, 1) {
				addrs = append(addrs, startServer(t, rec, tt.server...))
			}
			target := addrs[0]
			if len(addrs) > 1 {
				target = addrs[0] + "," + addrs[1]
			}
			s := newTLSSink(t, target, tt.opts...)

			err := s.Send(testContext(t), &fanbridge.Event{ID: "secure"})

			if tt.delivered {
				require.NoError(t, err)
				assert.Equal(t, tt.clientCN, recv(t, rec.clientCN))
				assert.Equal(t, 1, rec.count())
				return
			}
			// A failed handshake is a connection failure: retryable, never a silent success.
			require.Error(t, err)
			t.Logf("refused: %v", err)
			assert.Equal(t, retry.ClassRetryable, retry.Classify(err), "%v", err)
			assert.Zero(t, rec.count(), "the handler must never see the event")
		})
	}
}
