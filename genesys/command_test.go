package genesys_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
)

func TestRunProvisionCommand(t *testing.T) {
	srv := genesystest.NewServer()
	t.Cleanup(srv.Close)
	env := map[string]string{
		"GENESYS_REGION":              "eu-west-1",
		"GENESYS_CLIENT_ID":           genesystest.DefaultClientID,
		"GENESYS_CLIENT_SECRET":       genesystest.DefaultClientSecret,
		"AWS_ACCOUNT_ID":              "123456789012",
		"AWS_REGION":                  "eu-west-1",
		"GENESYS_EVENT_SOURCE_SUFFIX": "fanbridge-prod",
		"GENESYS_EVENTBRIDGE_TOPICS":  "v2.users.{id}.presence, v2.detail.events.conversation.{id}.customer.end",
		"GENESYS_API_URL":             srv.URL,
		"GENESYS_TOKEN_URL":           srv.TokenURL(),
	}
	getenv := func(k string) string { return env[k] }
	run := func(t *testing.T, args ...string) (string, string, error) {
		t.Helper()
		var out, errOut bytes.Buffer
		err := genesys.RunProvisionCommand(testContext(t), args, getenv, &out, &errOut)
		assertNoSecrets(t, srv, "stdout", out.String())
		assertNoSecrets(t, srv, "stderr", errOut.String())
		if err != nil {
			assertNoSecrets(t, srv, "error", err.Error())
		}
		return out.String(), errOut.String(), err
	}

	out, _, err := run(t, "-name", "fanbridge-prod")
	require.NoError(t, err)
	want := "aws.partner/genesys.com/cloud/" + genesystest.DefaultOrganizationID + "/fanbridge-prod"
	assert.Contains(t, out, "partner event source: "+want+"\n")
	assert.Contains(t, out, "created, configured, enabled (reported state ACTIVE)")
	assert.Contains(t, out, "aws events create-event-bus --region eu-west-1 --name "+want+" --event-source-name "+want)

	out, _, err = run(t, "-name", "fanbridge-prod")
	require.NoError(t, err)
	assert.Contains(t, out, ": unchanged (reported state ACTIVE)")
	assert.Equal(t, 1, srv.IntegrationCount(genesys.EventBridgeIntegrationType))

	t.Run("flags win over the environment", func(t *testing.T) {
		out, _, err := run(t, "-name", "other", "-suffix", "other-suffix", "-org-id", "0f9e8d7c-6b5a-4321-8765-43210fedcba9")
		require.NoError(t, err)
		assert.Contains(t, out, "aws.partner/genesys.com/cloud/0f9e8d7c-6b5a-4321-8765-43210fedcba9/other-suffix")
	})
	t.Run("an organization id in upper case is printed as Genesys writes it", func(t *testing.T) {
		// AWS names the partner event source with the id in lower case: the command it prints
		// must find it.
		env["GENESYS_ORGANIZATION_ID"] = " " + strings.ToUpper(genesystest.DefaultOrganizationID) + " "
		defer delete(env, "GENESYS_ORGANIZATION_ID")
		out, _, err := run(t, "-name", "fanbridge-prod")
		require.NoError(t, err)
		assert.Contains(t, out, "partner event source: "+want+"\n")
		assert.Contains(t, out, "aws events create-event-bus --region eu-west-1 --name "+want+" --event-source-name "+want)
		assert.NotContains(t, out, strings.ToUpper(genesystest.DefaultOrganizationID))
	})
	t.Run("usage errors", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			env  map[string]string
			want string
		}{
			{[]string{"-nope"}, nil, "flag provided but not defined"},
			{[]string{"extra"}, nil, "unexpected argument"},
			{nil, map[string]string{"GENESYS_CLIENT_SECRET": ""}, "missing GENESYS_CLIENT_SECRET"},
			{nil, map[string]string{"GENESYS_REGION": ""}, "missing -region"},
			{[]string{"-aws-account", "12"}, nil, "AWSAccountID"},
			{[]string{"-region", "bad host!"}, nil, "not a host name"},
			{[]string{"-org-id", "my-org"}, nil, `OrganizationID: "my-org" is not an organization id: want a UUID`},
			{nil, map[string]string{"GENESYS_ORGANIZATION_ID": "32aa07aa-db1b-4987-abd0"}, "OrganizationID"},
		} {
			saved := map[string]string{}
			for k, v := range tc.env {
				saved[k] = env[k]
				env[k] = v
			}
			_, _, err := run(t, tc.args...)
			for k, v := range saved {
				env[k] = v
			}
			require.Error(t, err, "%v", tc.args)
			assert.ErrorIs(t, err, genesys.ErrUsage)
			assert.Contains(t, err.Error(), tc.want)
		}
	})
	t.Run("a credential with white space around it is refused before any request", func(t *testing.T) {
		// A secret file's trailing line break would otherwise reach the token request, which
		// Genesys answers with nothing more than 401 invalid_client.
		for _, tc := range []struct {
			name, key, value string
			args             []string
			want             string
		}{
			{"secret with a line break", "GENESYS_CLIENT_SECRET", genesystest.DefaultClientSecret + "\n", nil, "GENESYS_CLIENT_SECRET has leading or trailing white space"},
			{"secret with a leading space", "GENESYS_CLIENT_SECRET", " " + genesystest.DefaultClientSecret, nil, "GENESYS_CLIENT_SECRET has leading or trailing white space"},
			{"client id with a line break", "GENESYS_CLIENT_ID", genesystest.DefaultClientID + "\r\n", nil, "GENESYS_CLIENT_ID has leading or trailing white space"},
			{"client id flag with a space", "", "", []string{"-client-id", genesystest.DefaultClientID + " "}, "-client-id has leading or trailing white space"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if tc.key != "" {
					saved := env[tc.key]
					env[tc.key] = tc.value
					defer func() { env[tc.key] = saved }()
				}
				srv.ResetLog()
				_, _, err := run(t, append([]string{"-name", "fanbridge-padded"}, tc.args...)...)
				require.Error(t, err)
				assert.ErrorIs(t, err, genesys.ErrUsage)
				assert.Contains(t, err.Error(), tc.want)
				assert.NotContains(t, err.Error(), genesystest.DefaultClientID, "the value is not echoed")
				assert.Empty(t, srv.Requests(), "nothing is sent")
			})
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		env["GENESYS_CLIENT_SECRET"] = "not-the-secret-0000"
		defer func() { env["GENESYS_CLIENT_SECRET"] = genesystest.DefaultClientSecret }()
		out, errOut, err := run(t)
		require.Error(t, err)
		assert.True(t, genesys.IsUnauthorized(err))
		for _, s := range []string{out, errOut, err.Error()} {
			assert.False(t, strings.Contains(s, "not-the-secret-0000"))
		}
	})
	t.Run("an integration Genesys cannot start fails the command", func(t *testing.T) {
		// Genesys reports ERROR, for instance, when the partner event source already exists in
		// AWS.
		front := reportingState(t, srv, map[string]any{"code": "ERROR", "detail": map[string]any{"message": "event source already exists"}})
		saved := env["GENESYS_API_URL"]
		env["GENESYS_API_URL"] = front.URL
		defer func() { env["GENESYS_API_URL"] = saved }()
		out, _, err := run(t, "-name", "fanbridge-error", "-suffix", "fanbridge-error")
		require.Error(t, err)
		assert.NotErrorIs(t, err, genesys.ErrUsage)
		assert.Contains(t, err.Error(), "reports state ERROR")
		assert.Contains(t, out, "(reported state ERROR: event source already exists)")
		assert.NotContains(t, out, "aws events create-event-bus", "no advice for AWS while Genesys cannot start it")
	})
	t.Run("the reported state is printed without control characters", func(t *testing.T) {
		// A terminal takes CSI (U+009B) and ESC for the start of an escape sequence; a
		// bidirectional override makes what follows read backwards.
		front := reportingState(t, srv, map[string]any{"code": "ACTIVE\u009b2J\u202e\x1b[0m",
			"detail": map[string]any{"message": "fine\u0085\u2066"}})
		saved := env["GENESYS_API_URL"]
		env["GENESYS_API_URL"] = front.URL
		defer func() { env["GENESYS_API_URL"] = saved }()
		out, _, err := run(t, "-name", "fanbridge-state", "-suffix", "fanbridge-state")
		require.NoError(t, err)
		assert.Contains(t, out, "(reported state ACTIVE")
		assert.Equal(t, -1, strings.IndexFunc(out, func(r rune) bool {
			return r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r))
		}), "%q", out)
	})
	t.Run("an integration id from Genesys is never printed raw", func(t *testing.T) {
		front := rewritingProxy(t, srv, func(r *http.Request, answer any) {
			if body, ok := answer.(map[string]any); ok && r.Method == http.MethodPatch {
				body["id"] = "6b1f0c9e\u009b2J\u202edeliver\x1b[0m"
				body["reportedState"] = map[string]any{"code": genesys.ReportedError}
			}
		})
		saved := env["GENESYS_API_URL"]
		env["GENESYS_API_URL"] = front
		defer func() { env["GENESYS_API_URL"] = saved }()
		out, errOut, err := run(t, "-name", "fanbridge-id", "-suffix", "fanbridge-id")
		require.Error(t, err)
		for _, s := range []string{out, errOut, err.Error()} {
			assert.Equal(t, -1, unsafeIndex(s), "%q", s)
		}
	})
	t.Run("help does not print environment values", func(t *testing.T) {
		_, errOut, err := run(t, "-h")
		require.Error(t, err)
		assert.Contains(t, errOut, "GENESYS_CLIENT_SECRET")
		assert.NotContains(t, errOut, genesystest.DefaultClientID)
	})
}

// reportingState returns a proxy in front of srv that makes Genesys answer the enabling PATCH
// with the reported state given.
func reportingState(t *testing.T, srv *genesystest.Server, state map[string]any) *httptest.Server {
	t.Helper()
	target, err := url.Parse(srv.URL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(r *http.Response) error {
		if r.Request.Method != http.MethodPatch {
			return nil
		}
		var in map[string]any
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			return err
		}
		in["reportedState"] = state
		b, _ := json.Marshal(in)
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
		r.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)
	return front
}
