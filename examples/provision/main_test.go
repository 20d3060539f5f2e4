package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
)

// TestProvision runs the program twice against a fake Genesys Cloud, as its README does against
// the real one: the first run creates, configures and enables the integration and prints the
// partner event source; the second finds everything in place and writes nothing.
func TestProvision(t *testing.T) {
	srv := genesystest.NewServer()
	t.Cleanup(srv.Close)
	env := map[string]string{
		"GENESYS_REGION":        "eu-west-1",
		"GENESYS_CLIENT_ID":     genesystest.DefaultClientID,
		"GENESYS_CLIENT_SECRET": genesystest.DefaultClientSecret,
		"GENESYS_API_URL":       srv.URL,
		"GENESYS_TOKEN_URL":     srv.TokenURL(),
	}
	args := []string{"-aws-account", "123456789012", "-aws-region", "eu-west-1", "-suffix", "fanbridge-prod",
		"-topics", "v2.users.{id}.presence,v2.detail.events.conversation.{id}.customer.end"}
	source := "aws.partner/genesys.com/cloud/" + genesystest.DefaultOrganizationID + "/fanbridge-prod"

	code, out, errOut := runProgram(t, args, env)
	require.Equal(t, 0, code, "stderr: %s", errOut)
	assert.Contains(t, out, "created, configured, enabled")
	assert.Contains(t, out, "partner event source: "+source+"\n")
	assert.Contains(t, out, "aws events create-event-bus --region eu-west-1 --name "+source+" --event-source-name "+source)
	assert.Equal(t, 1, srv.IntegrationCount(genesys.EventBridgeIntegrationType))
	writes := len(srv.Writes())
	assert.Positive(t, writes)

	code, out, errOut = runProgram(t, args, env)
	require.Equal(t, 0, code, "stderr: %s", errOut)
	assert.Contains(t, out, ": unchanged")
	assert.Contains(t, out, "partner event source: "+source+"\n")
	assert.Len(t, srv.Writes(), writes, "the second run writes nothing")
	assert.Equal(t, 1, srv.IntegrationCount(genesys.EventBridgeIntegrationType))

	t.Run("usage error", func(t *testing.T) {
		noSecret := map[string]string{}
		for k, v := range env {
			if k != "GENESYS_CLIENT_SECRET" {
				noSecret[k] = v
			}
		}
		code, out, errOut := runProgram(t, args, noSecret)
		assert.Equal(t, 2, code)
		assert.Empty(t, out)
		assert.Contains(t, errOut, "provision: ")
		assert.Contains(t, errOut, "GENESYS_CLIENT_SECRET")
		assert.Len(t, srv.Writes(), writes)
	})
	t.Run("organization id", func(t *testing.T) {
		// Given in upper case, the id is printed as Genesys writes it in the partner event
		// source, in lower case, so that the AWS command finds the source; anything but a UUID
		// is a usage error, and nothing is written.
		given := map[string]string{}
		for k, v := range env {
			given[k] = v
		}
		given["GENESYS_ORGANIZATION_ID"] = strings.ToUpper(genesystest.DefaultOrganizationID)
		code, out, errOut := runProgram(t, args, given)
		require.Equal(t, 0, code, "stderr: %s", errOut)
		assert.Contains(t, out, "aws events create-event-bus --region eu-west-1 --name "+source+" --event-source-name "+source)

		given["GENESYS_ORGANIZATION_ID"] = "acme"
		code, out, errOut = runProgram(t, args, given)
		assert.Equal(t, 2, code)
		assert.Empty(t, out)
		assert.Contains(t, errOut, "OrganizationID")
		assert.Contains(t, errOut, "want a UUID")
		assert.Len(t, srv.Writes(), writes)
	})
	t.Run("help", func(t *testing.T) {
		// The README says to run it with -h to see the flags: that is not a failure.
		code, out, errOut := runProgram(t, []string{"-h"}, env)
		assert.Equal(t, 0, code)
		assert.Empty(t, out)
		assert.Contains(t, errOut, "usage: provision")
		assert.NotContains(t, errOut, "provision: ", "no error line")
	})
	t.Run("refused credentials", func(t *testing.T) {
		wrong := map[string]string{}
		for k, v := range env {
			wrong[k] = v
		}
		wrong["GENESYS_CLIENT_SECRET"] = "not-the-secret"
		code, out, errOut := runProgram(t, args, wrong)
		assert.Equal(t, 1, code)
		assert.Empty(t, out)
		assert.Contains(t, errOut, "provision: ")
		assert.NotContains(t, errOut, "not-the-secret", "the secret is never printed")
	})
}

// runProgram runs the program with args and the environment env, and returns its exit code and
// output.
func runProgram(t *testing.T, args []string, env map[string]string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code = run(ctx, args, func(k string) string { return env[k] }, &out, &errOut)
	assert.NotContains(t, out.String()+errOut.String(), genesystest.DefaultClientSecret, "the secret is never printed")
	return code, out.String(), errOut.String()
}
