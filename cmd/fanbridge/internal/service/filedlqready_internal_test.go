package service

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/internal/testwait"
)

// A file dead-letter queue that a storage failure broke refuses every entry until a restart:
// /readyz says so, so that a load balancer sends elsewhere, instead of ready with every failure
// answered 503.
func TestReadyzFailsWhileTheFileDLQIsBroken(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	dir := filepath.Join(t.TempDir(), "dlq")
	s, _ := newTestService(t, fmt.Appendf(nil, `listen: {address: "127.0.0.1:0"}
intake:
  - path: /events
    insecure_no_auth: true
sinks:
  - name: k
    kafka: {brokers: [%q], topic: t}
routes:
  - {name: everything, all: true, sinks: [k]}
dlq: {file: {dir: %q}}
`, c.ListenAddrs()[0], dir))
	s.ready.cache = 0 // every check probes: a fast disk breaks the queue within any cache time
	rec := testwait.Recv(t, checkReadiness(s), 20*time.Second)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

	segs, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	require.NoError(t, err)
	require.NotEmpty(t, segs)
	for _, p := range segs {
		require.NoError(t, os.Remove(p))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = s.queue.Put(ctx, dlq.Entry{Sink: "k", Event: fanbridge.Event{ID: "e-1", Raw: []byte(`{}`)}})
	require.ErrorIs(t, err, filedlq.ErrBroken)

	rec = testwait.Recv(t, checkReadiness(s), 20*time.Second)
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.True(t, strings.Contains(rec.Body.String(), "dead-letter queue"), rec.Body.String())
}
