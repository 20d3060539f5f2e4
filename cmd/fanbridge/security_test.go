package main_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// twoIntakesConfig has two paths, each with its own key, in front of one gRPC consumer.
const twoIntakesConfig = `
listen:
  address: 127.0.0.1:0
%[2]s
intake:
  - path: /partner
    verifiers:
      - api_key: {header: X-Api-Key, keys: ["partner-key-0123456789"]}
  - path: /crm
    verifiers:
      - api_key: {header: X-Api-Key, keys: ["crm-key-0123456789"]}
sinks:
  - name: consumer
    grpc: {targets: ["%[1]s"], insecure: true, call_timeout: 2s}
routes:
  - name: all
    all: true
    sinks: [consumer]
logging: {level: debug, format: json}
health: {cache: 100ms}
`

// TestKeyForOneIntakeCannotSuppressAnothersEvents: Source and ID are the sender's to write, so a
// sender holding only one path's key must not be able to make another path's events look like
// duplicates by sending their Source and ID first. Within a path, a retry is still a duplicate.
func TestKeyForOneIntakeCannotSuppressAnothersEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons := newConsumer(t)
	cfgPath := filepath.Join(t.TempDir(), "fanbridge.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(twoIntakesConfig, cons.addr, ""))
	p := startService(t, ctx, cfgPath)

	send := func(path, key, data string) string {
		t.Helper()
		body := `{"specversion":"1.0","source":"crm","id":"1001","type":"t","data":` + data + `}`
		status, answer, err := post(ctx, http.DefaultClient, p.url(path), []byte(body), map[string]string{"X-Api-Key": key})
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status, "%s: %s", path, answer)
		return answer
	}
	// The partner claims the CRM's source and its next id.
	assert.Contains(t, send("/partner", "partner-key-0123456789", `{"fake":true}`), `"status":"delivered"`)
	// The CRM's real event 1001 arrives on its own path, with its own key.
	assert.Contains(t, send("/crm", "crm-key-0123456789", `{"real":true}`), `"status":"delivered"`,
		"a key valid only on /partner suppressed the /crm event")
	// The CRM's retry, and the partner's, are duplicates on their own paths.
	assert.Contains(t, send("/crm", "crm-key-0123456789", `{"real":true}`), `"status":"duplicate"`)
	assert.Contains(t, send("/partner", "partner-key-0123456789", `{"fake":true}`), `"status":"duplicate"`)

	var data []string
	for _, d := range cons.deliveries() {
		data = append(data, string(d.Event.Data))
	}
	assert.ElementsMatch(t, []string{`{"fake":true}`, `{"real":true}`}, data, "what the consumer got")
}
