package demo_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/examples/internal/demo"
	"github.com/fanbridge/fanbridge/signature"
)

func TestOrganization(t *testing.T) {
	const org = "bb14bed0-f8f9-445d-b9d1-10cecb8569d6"
	for _, c := range []struct {
		name, value, want string
	}{
		{"unset", "", ""},
		{"blank", " \t", ""},
		{"as written", org, org},
		{"blanks around", " " + org + "\n", org},
		{"upper case", strings.ToUpper(org), org},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := demo.Organization(c.value)
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}
	for _, bad := range []string{
		"bb14bed0",
		"bb14bed0f8f9445db9d110cecb8569d6",
		"bb14bed0-f8f9-445d-b9d1-10cecb8569d",
		"bb14bed0-f8f9-445d-b9d1-10cecb8569dz",
		"bb14bed0_f8f9-445d-b9d1-10cecb8569d6",
		org + "/suffix",
		"aws.partner/genesys.com/cloud/" + org + "/",
	} {
		t.Run(bad, func(t *testing.T) {
			_, err := demo.Organization(bad)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "GENESYS_ORGANIZATION_ID")
		})
	}
	assert.Equal(t, "aws.partner/genesys.com/cloud/"+org+"/", demo.OrganizationSources(org))
}

func TestBareNotificationsTo(t *testing.T) {
	const (
		envelope = `{"version":"0","id":"e-1","detail-type":"v2.users.{id}.presence",` +
			`"source":"aws.partner/genesys.com/cloud/org/bus","account":"123456789012","time":"2026-03-02T10:17:43Z",` +
			`"region":"eu-west-1","resources":[],"detail":{"topicName":"v2.users.u-1.presence","version":"2","eventBody":{}}}`
		notification = `{"topicName":"v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.presence","version":"2","eventBody":{"id":"x"}}`
	)
	// Each side answers with its name and the body it read, which must be the body sent.
	side := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(r.Body)
			require.NoError(t, err)
			io.WriteString(w, name+" "+string(body))
		})
	}
	h := demo.BareNotificationsTo(side("bare"), side("other"))
	for _, c := range []struct {
		name, body, want string
		buffered         bool
	}{
		{"notification", notification, "bare", false},
		{"notification buffered by Verify", notification, "bare", true},
		{"envelope", envelope, "other", false},
		{"envelope buffered by Verify", envelope, "other", true},
		{"not JSON", "{", "other", false},
		{"empty", "", "other", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/events", strings.NewReader(c.body))
			req.Header.Set("Content-Type", "application/json")
			if c.buffered {
				req.Body = signature.NewBody([]byte(c.body))
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			assert.Equal(t, c.want+" "+c.body, rec.Body.String())
		})
	}
}

func TestCheckOffline(t *testing.T) {
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	require.NoError(t, demo.CheckOffline(env(nil), "KAFKA_BROKERS", "DLQ_DIR", "LISTEN_ADDR"))
	err := demo.CheckOffline(env(map[string]string{"LISTEN_ADDR": ":8080"}), "KAFKA_BROKERS", "DLQ_DIR", "LISTEN_ADDR")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "LISTEN_ADDR is set but KAFKA_BROKERS is not")

	_, err = demo.Listen(":0", true, http.NotFoundHandler())
	require.ErrorContains(t, err, "LISTEN_ADDR")
}
