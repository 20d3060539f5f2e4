package kafkasink_test

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

func saslCluster(t *testing.T, mechanism, user, pass string) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events"), kfake.EnableSASL(), kfake.Superuser(mechanism, user, pass))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

func TestDialWithSASL(t *testing.T) {
	for _, mechanism := range []string{kafkasink.SASLPlain, kafkasink.SASLScramSHA256, kafkasink.SASLScramSHA512} {
		t.Run(mechanism, func(t *testing.T) {
			ctx := testContext(t)
			c := saslCluster(t, mechanism, "fanbridge", "right-password")
			s, err := kafkasink.Dial(kafkasink.ClientConfig{
				Brokers: c.ListenAddrs(),
				SASL:    &kafkasink.SASL{Mechanism: mechanism, Username: "fanbridge", Password: "right-password"},
				Opts:    fastOpts(),
			}, kafkasink.WithTopic("events"))
			require.NoError(t, err)
			defer s.Close()
			require.NoError(t, s.Send(ctx, presenceEvent("authenticated")))
		})
	}
}

// TestSASLFailureIsPermanent: a broker that refuses the credentials answers
// SASL_AUTHENTICATION_FAILED; no retry with the same password can succeed.
func TestSASLFailureIsPermanent(t *testing.T) {
	ctx := testContext(t)
	c := saslCluster(t, kafkasink.SASLScramSHA256, "fanbridge", "right-password")
	c.ControlKey(kmsg.SASLAuthenticate.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256"
		resp.ErrorMessage = &msg
		return resp, nil, true
	})
	const password = "wrong-password-value"
	s, err := kafkasink.Dial(kafkasink.ClientConfig{
		Brokers:         c.ListenAddrs(),
		SASL:            &kafkasink.SASL{Mechanism: kafkasink.SASLScramSHA256, Username: "fanbridge", Password: password},
		DeliveryTimeout: time.Second,
		Opts:            fastOpts(),
	}, kafkasink.WithTopic("events"))
	require.NoError(t, err)
	defer s.Close()
	// Ping at startup reports it at once.
	err = s.Ping(ctx)
	require.ErrorIs(t, err, kerr.SaslAuthenticationFailed)
	// A Send learns it when the client gives up on the record (the delivery timeout), because the
	// client keeps trying to connect until then.
	err = s.Send(ctx, presenceEvent("refused"))
	require.ErrorIs(t, err, kerr.SaslAuthenticationFailed)
	assert.True(t, retry.IsPermanent(err), "%v", err)
	assert.NotContains(t, err.Error(), password)
}

// TestSASLPasswordNeverPrinted: a configuration printed with any verb, logged by either slog
// handler (alone or inside a struct of the caller's), or encoded as JSON shows who authenticates
// and how, never the password.
func TestSASLPasswordNeverPrinted(t *testing.T) {
	const password = "s3cr3t-kafka-password"
	creds := &kafkasink.SASL{Mechanism: kafkasink.SASLScramSHA512, Username: "fanbridge", Password: password}
	cfg := kafkasink.ClientConfig{Brokers: []string{"kafka-1:9093"}, ClientID: "svc", SASL: creds,
		TLS: &tls.Config{MinVersion: tls.VersionTLS12}, Opts: fastOpts()}
	type appConfig struct {
		Name  string
		Kafka kafkasink.ClientConfig
	}
	values := map[string]any{
		"ClientConfig": cfg, "*ClientConfig": &cfg, "SASL": *creds, "*SASL": creds,
		// Without TLS and Opts, which encoding/json cannot encode, so that the JSON handler
		// writes the struct rather than an error.
		"struct holding a ClientConfig": appConfig{Name: "svc", Kafka: kafkasink.ClientConfig{Brokers: cfg.Brokers, SASL: creds}},
	}

	for name, v := range values {
		t.Run(name, func(t *testing.T) {
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
				out := fmt.Sprintf(verb, v)
				assert.NotContains(t, out, password, verb)
				assert.NotContains(t, out, fmt.Sprintf("%x", password), verb)
			}
			for handler, newHandler := range map[string]func(io.Writer) slog.Handler{
				"text": func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, nil) },
				"json": func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) },
			} {
				var buf bytes.Buffer
				slog.New(newHandler(&buf)).Info("starting", "config", v)
				assert.NotContains(t, buf.String(), password, handler)
				assert.NotContains(t, buf.String(), "!ERROR", handler)
			}
		})
	}

	t.Run("what is shown", func(t *testing.T) {
		assert.Equal(t, "{Mechanism:SCRAM-SHA-512 Username:fanbridge Password:[redacted]}", fmt.Sprint(creds))
		assert.Equal(t, `kafkasink.SASL{Mechanism:"SCRAM-SHA-512", Username:"fanbridge", Password:"[redacted]"}`,
			fmt.Sprintf("%#v", *creds))
		assert.Equal(t, "{Mechanism:PLAIN Username:u Password:}", fmt.Sprint(kafkasink.SASL{Mechanism: "PLAIN", Username: "u"}),
			"an empty password shows as empty")
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", "config", cfg)
		assert.Contains(t, buf.String(), `"sasl":{"mechanism":"SCRAM-SHA-512","username":"fanbridge","password":"[redacted]"}`)
		assert.Contains(t, buf.String(), `"brokers":["kafka-1:9093"]`)
		b, err := json.Marshal(creds)
		require.NoError(t, err)
		assert.JSONEq(t, `{"Mechanism":"SCRAM-SHA-512","Username":"fanbridge","Password":"[redacted]"}`, string(b))
		var none *kafkasink.SASL
		assert.Equal(t, "<nil>", fmt.Sprint(none))
		assert.Equal(t, password, creds.Password, "printing changes nothing")
	})
}
