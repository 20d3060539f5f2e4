package genesys

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxRetryAfterValue bounds a parsed Retry-After so that absurd values cannot overflow a
// time.Duration; anything longer is reported as this long, which is far above any ceiling.
const maxRetryAfterValue = 30 * 24 * time.Hour

// parseRetryAfter reads a Retry-After header value: delay-seconds (what Genesys sends) or an
// HTTP-date (RFC 9110). It returns false for an empty or unreadable value. A date in the past is a
// zero wait.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		// Fractional seconds are not in the RFC but some proxies send them; accept them.
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 {
			return 0, false
		}
		if f >= maxRetryAfterValue.Seconds() {
			return maxRetryAfterValue, true
		}
		return time.Duration(f * float64(time.Second)), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d := t.Sub(now)
	if d < 0 {
		return 0, true
	}
	return min(d, maxRetryAfterValue), true
}
