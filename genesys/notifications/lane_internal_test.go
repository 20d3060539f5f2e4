package notifications

import (
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
