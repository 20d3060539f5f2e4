package genesys

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"golang.org/x/oauth2"
)

// A token answer's expires_in of centuries (a proxy's "never expires") is taken as a year: whole,
// it would overflow a Duration and read as no usable lifetime, failing every call.
func TestHugeTokenLifetimeIsCapped(t *testing.T) {
	for _, v := range []any{1e10, 1e300, "99999999999999"} {
		tok := (&oauth2.Token{AccessToken: "t"}).WithExtra(map[string]any{"expires_in": v})
		assert.Equal(t, maxTokenLifetime, tokenLifetime(tok), "expires_in %v", v)
	}
	tok := (&oauth2.Token{AccessToken: "t"}).WithExtra(map[string]any{"expires_in": 86400.0})
	assert.Equal(t, 24*time.Hour, tokenLifetime(tok))
}
