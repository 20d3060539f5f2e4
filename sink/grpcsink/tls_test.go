package grpcsink_test

import (
	"context"
	"crypto/tls"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/internal/testpki"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
)

// testPKI is a private CA with a server certificate for 127.0.0.1 and a client certificate.
type testPKI struct{ *testpki.PKI }

func newTestPKI(t testing.TB) *testPKI { return &testPKI{testpki.New(t)} }

// serverCreds returns TLS server credentials; with mutual set, a client certificate from the CA
// is required.
func (p *testPKI) serverCreds(mutual bool) grpc.ServerOption {
	cfg := &tls.Config{Certificates: []tls.Certificate{p.Server}, MinVersion: tls.VersionTLS12}
	if mutual {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = p.Pool
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
	trusting := &tls.Config{RootCAs: pki.Pool}
	withClientCert := &tls.Config{RootCAs: pki.Pool, Certificates: []tls.Certificate{pki.Client}}

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
		{name: "wrong server name", server: []grpc.ServerOption{pki.serverCreds(false)}, opts: []grpcsink.Option{grpcsink.WithTLS(&tls.Config{RootCAs: pki.Pool, ServerName: "elsewhere.example"})}},
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
