package notifications_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/genesys/notifications"
)

// Run returns only once every goroutine of the source has: the pinger too, which may be inside a
// write to the socket when Close drops it. Pinging every millisecond makes that likely; each
// round looks for a goroutine of the package left behind.
func TestNothingOutlivesRunWithPings(t *testing.T) {
	for round := range 30 {
		h := newHarness(t, []string{userTopic(1)}, nil, notifications.WithPingInterval(time.Millisecond))
		ctx := h.start(t)
		require.NoError(t, h.srv.WaitSubscribed(ctx, userTopic(1), 1))
		// Pings flowing: Close then likely catches one in the middle of its write.
		from := h.srv.Pings()
		require.Eventually(t, func() bool { return h.srv.Pings() >= from+20 }, 10*time.Second, time.Millisecond)
		require.NoError(t, h.src.Close())
		require.NoError(t, recv(t, ctx, h.runErr))
		h.runErr <- nil // for the harness' own cleanup
		// A goroutine whose deferred signal Run waited for may still be returning from its
		// function when Run does (seen under load: the reader at its closing brace, after
		// closing its done channel). One that outlives Run for real is still there seconds later.
		stacks := func() string {
			buf := make([]byte, 1<<20)
			return string(buf[:runtime.Stack(buf, true)])
		}
		gone := func() bool { return !strings.Contains(stacks(), "notifications.(*lane)") }
		if !assert.Eventually(t, gone, 5*time.Second, time.Millisecond) {
			t.Fatalf("round %d: a goroutine of the source outlived Run:\n%s", round, stacks())
		}
	}
}
