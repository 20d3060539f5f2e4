package signature_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Published test vectors.
const (
	// The Standard Webhooks reference libraries' signing test (libraries/go/webhook_test.go,
	// TestWebhookSign, in github.com/standard-webhooks/standard-webhooks).
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specMsgID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specPayload   = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	// The same repository's asymmetric signing test (TestAsymmetricWebhookSign): the seed of an
	// ed25519 key in base64 and the v1a signature of the same message.
	specSigningSeed  = "VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk="
	specV1aSignature = "v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag=="

	// GitHub's guide "Validating webhook deliveries" (docs.github.com).
	githubSecret    = "It's a Secret to Everybody"
	githubPayload   = "Hello, World!"
	githubSignature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
)

// Keys for tests that sign their own requests.
var (
	rawKeyA = []byte("0123456789abcdef0123456789abcdef")
	rawKeyB = []byte("fedcba9876543210fedcba9876543210")
	secretA = "whsec_" + base64.StdEncoding.EncodeToString(rawKeyA)
	secretB = "whsec_" + base64.StdEncoding.EncodeToString(rawKeyB)

	seedC       = []byte("an ed25519 seed of 32 bytes.....")
	signingC    = "whsk_" + base64.StdEncoding.EncodeToString(seedC)
	publicC     = "whpk_" + base64.StdEncoding.EncodeToString(ed25519.NewKeyFromSeed(seedC).Public().(ed25519.PublicKey))
	testNow     = time.Unix(1_700_000_000, 0)
	fixedClock  = func() time.Time { return testNow }
	testMessage = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
)

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	return b
}
