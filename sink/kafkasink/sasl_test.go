package kafkasink_test

import (
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
