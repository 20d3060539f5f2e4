package eventbridge_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/eventbridge"
)

// An attribute string holding a \u escape of an unpaired UTF-16 surrogate is refused: it would
// decode to U+FFFD, so that "order-\uDEAD" and "order-\uDEAE" would be one id and the second
// event would be answered as a duplicate of the first, never delivered. CloudEvents calls such
// strings invalid. Surrogates in pairs are characters like any other.
func TestLoneSurrogateEscapesInAttributesAreRefused(t *testing.T) {
	cloudEvent := func(id, source string) []byte {
		return []byte(fmt.Sprintf(`{"specversion":"1.0","id":"%s","source":"%s","type":"t","data":{}}`, id, source))
	}
	envelope := func(id string) []byte {
		return []byte(fmt.Sprintf(`{"version":"0","id":"%s","detail-type":"t","source":"s","account":"1","time":"2024-01-02T03:04:05Z","region":"us-east-1","resources":[],"detail":{}}`, id))
	}
	refused := map[string][]byte{
		"CloudEvent id, lone high":    cloudEvent(`order-\uD83D`, "s"),
		"CloudEvent id, lone low":     cloudEvent(`order-\uDEAD`, "s"),
		"CloudEvent id, other low":    cloudEvent(`order-\uDEAE`, "s"),
		"CloudEvent id, reversed":     cloudEvent(`\uDE00\uD83D`, "s"),
		"CloudEvent source":           cloudEvent("1", `s-\uDEAD`),
		"EventBridge id":              envelope(`x\uD800y`),
		"EventBridge id, high + char": envelope(`\uD83D\u0041`),
	}
	for name, body := range refused {
		t.Run(name, func(t *testing.T) {
			e, err := eventbridge.Decode(body, "")
			require.ErrorIs(t, err, eventbridge.ErrInvalidField)
			assert.Contains(t, err.Error(), "unpaired UTF-16 surrogate")
			assert.Nil(t, e)
		})
	}
	e, err := eventbridge.Decode(cloudEvent(`order-\uD83D\uDE00`, "s"), "")
	require.NoError(t, err)
	assert.Equal(t, "order-😀", e.ID)
	e, err = eventbridge.Decode(envelope(`x\uFFFD`), "")
	require.NoError(t, err)
	assert.Equal(t, "x\uFFFD", e.ID, "a U+FFFD of the sender's own is a character")
}
