package notifications

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/fanbridge/fanbridge/genesys"
)

// A channel connected again was created long before its socket was opened: its replacement is
// planned from its creation, as the account knows it, whether or not Genesys' answer said when it
// expires.
func TestReplacementPlannedFromTheChannelsCreation(t *testing.T) {
	l := &lane{s: &Source{cfg: defaultConfig()}} // expiry margin 10 minutes
	for _, tc := range []struct {
		name        string
		left        time.Duration // life left when the socket is opened
		withExpires bool          // Genesys' answer named the expiry
		want        time.Duration
	}{
		{"new channel", genesys.ChannelLifetime, true, genesys.ChannelLifetime - DefaultExpiryMargin},
		{"new channel, no expiry in the answer", genesys.ChannelLifetime, false, genesys.ChannelLifetime - DefaultExpiryMargin},
		{"created 23 hours ago", time.Hour, true, time.Hour - DefaultExpiryMargin},
		{"created 23 hours ago, no expiry in the answer", time.Hour, false, time.Hour - DefaultExpiryMargin},
		{"15 minutes left: halfway", 15 * time.Minute, false, 15 * time.Minute / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now()
			ch := &genesys.Channel{ID: "c", ConnectURI: "ws://x"}
			if tc.withExpires {
				ch.Expires = now.Add(tc.left)
			}
			c := &conn{ch: ch, claim: &claim{h: &held{ch: ch, expires: now.Add(tc.left)}}, opened: now}
			assert.InDelta(t, tc.want, l.rotateIn(c), float64(time.Second))
		})
	}
}

// The Retry-After of a refused handshake is read as Genesys sends it (delay-seconds) or as an
// HTTP-date; anything else is no wait, and no value makes a negative or overflowing one.
func FuzzDialRetryAfter(f *testing.F) {
	for _, v := range []string{"", "0", "1", "30", "3600", "1.5", "-1", "NaN", "Inf", "1e400", "abc",
		"Wed, 21 Oct 2015 07:28:00 GMT", "Sun, 06 Nov 2994 08:49:37 GMT", " 20 "} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		resp := &http.Response{Header: http.Header{"Retry-After": []string{v}}}
		d, ok := dialRetryAfter(resp)
		if !ok {
			assert.Zero(t, d)
			return
		}
		assert.GreaterOrEqual(t, d, time.Duration(0))
		assert.LessOrEqual(t, d, time.Duration(maxRetryAfterSeconds)*time.Second)
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 && n < maxRetryAfterSeconds {
			assert.Equal(t, time.Duration(n)*time.Second, d)
		}
	})
}

func TestDialRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  time.Duration
		ok    bool
	}{
		{"30", 30 * time.Second, true},
		{"0", 0, true},
		{"1.5", 1500 * time.Millisecond, true},
		{"", 0, false},
		{"-1", 0, false},
		{"soon", 0, false},
		{"Wed, 21 Oct 2015 07:28:00 GMT", 0, true}, // past
	} {
		t.Run(tc.value, func(t *testing.T) {
			d, ok := dialRetryAfter(&http.Response{Header: http.Header{"Retry-After": []string{tc.value}}})
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.want, d)
		})
	}
	_, ok := dialRetryAfter(nil)
	assert.False(t, ok, "no answer")
	d, ok := dialRetryAfter(&http.Response{Header: http.Header{"Retry-After": []string{time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}}})
	assert.True(t, ok)
	assert.InDelta(t, time.Hour, d, float64(2*time.Second))
}
