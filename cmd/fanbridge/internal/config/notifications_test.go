package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
	"github.com/fanbridge/fanbridge/genesys"
)

// notificationsSecret is the client secret the cases below give through the environment; no
// error may quote it, nor a part of it.
const notificationsSecret = "gc-secret-7f3a9b2c41d8e6"

const presenceTopic = "v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.presence"

// withNotifications is minimal with a notifications section whose body is section.
func withNotifications(section string) string {
	return minimal + "notifications:\n" + section
}

// validNotifications is a notifications section that validates.
const validNotifications = `  region: eu-west-1
  client_id: 0c4f2a8e-client
  client_secret: "${GENESYS_CLIENT_SECRET}"
  topics: ["` + presenceTopic + `"]
`

func notificationsEnv() config.Lookup {
	return env(map[string]string{"GENESYS_CLIENT_SECRET": notificationsSecret})
}

func TestNotificationsSection(t *testing.T) {
	cfg, err := config.Parse([]byte(withNotifications(validNotifications)), notificationsEnv())
	require.NoError(t, err)
	n := cfg.Notifications
	require.NotNil(t, n)
	assert.Equal(t, "eu-west-1", n.Region)
	assert.Equal(t, "0c4f2a8e-client", n.ClientID)
	assert.Equal(t, notificationsSecret, n.ClientSecret)
	assert.Equal(t, []string{presenceTopic}, n.Topics)
	assert.Equal(t, config.DefaultMaxChannels, n.MaxChannels, "the library's default")
	assert.Equal(t, config.DefaultHeartbeatTimeout, n.HeartbeatTimeout.D(), "the library's default")
	assert.Len(t, n.SourceOptions(), 2)

	cl, err := n.Client()
	require.NoError(t, err)
	defer cl.Close()
	assert.Equal(t, genesys.EUWest1, cl.Region())

	t.Run("without it there is none", func(t *testing.T) {
		cfg, err := config.Parse([]byte(minimal), env(nil))
		require.NoError(t, err)
		assert.Nil(t, cfg.Notifications)
	})
	t.Run("settings as written", func(t *testing.T) {
		cfg, err := config.Parse([]byte(withNotifications(validNotifications+`  api_url: "http://127.0.0.1:8081"
  token_url: "http://127.0.0.1:8081/oauth/token"
  max_channels: 2
  heartbeat_timeout: 90s
`)), notificationsEnv())
		require.NoError(t, err)
		n := cfg.Notifications
		assert.Equal(t, 2, n.MaxChannels)
		assert.Equal(t, 90*time.Second, n.HeartbeatTimeout.D())
		assert.Equal(t, "http://127.0.0.1:8081", n.APIURL)
		assert.Equal(t, "http://127.0.0.1:8081/oauth/token", n.TokenURL)
	})
	t.Run("a Genesys host as the region", func(t *testing.T) {
		section := strings.Replace(validNotifications, "region: eu-west-1", "region: https://api.mypurecloud.de/", 1)
		cfg, err := config.Parse([]byte(withNotifications(section)), notificationsEnv())
		require.NoError(t, err)
		cl, err := cfg.Notifications.Client()
		require.NoError(t, err)
		defer cl.Close()
		assert.Equal(t, genesys.EUCentral1, cl.Region())
	})
	t.Run("intake paths are optional beside it", func(t *testing.T) {
		doc := strings.Replace(withNotifications(validNotifications), `intake:
  - path: /events
    verifiers:
      - api_key: {header: X-Api-Key, keys: ["k-0123456789"]}
`, "", 1)
		require.NotContains(t, doc, "intake:")
		cfg, err := config.Parse([]byte(doc), notificationsEnv())
		require.NoError(t, err)
		assert.Empty(t, cfg.Intake)
		_, err = config.Parse([]byte(strings.Replace(minimal, `intake:
  - path: /events
    verifiers:
      - api_key: {header: X-Api-Key, keys: ["k-0123456789"]}
`, "", 1)), env(nil))
		require.ErrorContains(t, err, "config: intake: at least one intake path is required (or a notifications section)")
	})
}

// Every problem of the section is refused naming its key (and a topic's index), and no error
// quotes the client secret or a part of it, whichever key is at fault.
func TestNotificationsBadConfigsNameTheKey(t *testing.T) {
	tooMany := make([]string, genesys.MaxTopicsPerChannel+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf(`"v2.users.00000000-0000-4000-8000-%012d.presence"`, i)
	}
	cases := []struct {
		name, from, to string
		extra          string
		wantError      string
	}{
		{name: "no region", from: "  region: eu-west-1\n", to: "", wantError: "config: notifications.region: is required"},
		{name: "bad region", from: "region: eu-west-1", to: "region: \"eu west 1\"", wantError: "config: notifications.region: genesys: invalid client configuration"},
		{name: "no client id", from: "  client_id: 0c4f2a8e-client\n", to: "", wantError: "config: notifications.client_id: is required"},
		{name: "blank client id", from: "client_id: 0c4f2a8e-client", to: `client_id: "  "`, wantError: "config: notifications.client_id: is required"},
		{name: "no client secret", from: "  client_secret: \"${GENESYS_CLIENT_SECRET}\"\n", to: "", wantError: "config: notifications.client_secret: is required"},
		{name: "no topics", from: `  topics: ["` + presenceTopic + `"]` + "\n", to: "", wantError: "config: notifications.topics: at least one topic is required"},
		{name: "template topic", from: `topics: ["` + presenceTopic + `"]`, to: `topics: ["` + presenceTopic + `", "v2.users.{id}.presence"]`,
			wantError: `config: notifications.topics[1]: genesys: WebSocket topics need concrete ids, not {id} templates: "v2.users.{id}.presence"`},
		{name: "topic with a space", from: `topics: ["` + presenceTopic + `"]`, to: `topics: ["v2.users.a b.presence"]`,
			wantError: `config: notifications.topics[0]: genesys: subscription topic "v2.users.a b.presence" contains white space`},
		{name: "empty topic", from: `topics: ["` + presenceTopic + `"]`, to: `topics: ["` + presenceTopic + `", ""]`,
			wantError: "config: notifications.topics[1]: genesys: empty subscription topic"},
		{name: "topics as one value", from: `topics: ["` + presenceTopic + `"]`, to: "topics: " + presenceTopic,
			wantError: "config: notifications.topics: want a list, got a single value"},
		{name: "too many topics for one channel", extra: "  max_channels: 1\n", from: `topics: ["` + presenceTopic + `"]`, to: "topics: [" + strings.Join(tooMany, ", ") + "]",
			wantError: "config: notifications.topics: 1001 topics need more than max_channels (1) channels of 1000 topics each"},
		{name: "too many channels", extra: "  max_channels: 11\n", wantError: "config: notifications.max_channels: want 0 (the default, 10) to 10"},
		{name: "negative channels", extra: "  max_channels: -1\n", wantError: "config: notifications.max_channels: want 0 (the default, 10) to 10"},
		{name: "channels not a number", extra: "  max_channels: ten\n", wantError: `config: notifications.max_channels: want a whole number, got "ten"`},
		{name: "heartbeat timeout under Genesys' heartbeat", extra: "  heartbeat_timeout: 10s\n", wantError: "config: notifications.heartbeat_timeout: want more than 30s (0 for the default, 1m0s)"},
		{name: "heartbeat timeout not a duration", extra: "  heartbeat_timeout: 90\n", wantError: `config: notifications.heartbeat_timeout: want a duration such as 5s or 1m30s, got "90"`},
		{name: "api url with a query", extra: "  api_url: \"https://proxy.example.net/?token=abc\"\n", wantError: "config: notifications.api_url: genesys: invalid client configuration"},
		{name: "api url not http", extra: "  api_url: \"ftp://proxy.example.net\"\n", wantError: "config: notifications.api_url: genesys: invalid client configuration"},
		{name: "token url with user info", extra: "  token_url: \"https://user:pw@login.example.net/oauth/token\"\n", wantError: "config: notifications.token_url: genesys: invalid client configuration"},
		{name: "misspelt key", extra: "  client_sercet: x\n", wantError: "config: notifications.client_sercet: unknown key"},
		{name: "section as a list", wantError: "config: notifications: want a mapping, got a list"},
		{name: "secret with a default", from: `"${GENESYS_CLIENT_SECRET}"`, to: `"${GENESYS_CLIENT_SECRET_UNSET:-` + notificationsSecret + `}"`,
			wantError: "config: notifications.client_secret: a key, secret, token or password may not fall back to the default of ${GENESYS_CLIENT_SECRET_UNSET:-...}"},
		{name: "secret not set", from: `"${GENESYS_CLIENT_SECRET}"`, to: `"${GENESYS_CLIENT_SECRET_UNSET}"`,
			wantError: "config: notifications.client_secret: environment variable GENESYS_CLIENT_SECRET_UNSET is not set"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			section := validNotifications + tc.extra
			if tc.from != "" {
				require.Contains(t, section, tc.from, "the case must change something")
				section = strings.Replace(section, tc.from, tc.to, 1)
			}
			doc := withNotifications(section)
			if tc.name == "section as a list" {
				doc = minimal + "notifications: [" + presenceTopic + "]\n"
			}
			_, err := config.Parse([]byte(doc), notificationsEnv())
			require.Error(t, err)
			assert.True(t, errors.Is(err, config.ErrInvalid))
			assert.Contains(t, err.Error(), tc.wantError)
			assert.NotContains(t, err.Error(), notificationsSecret)
			assert.NotContains(t, err.Error(), "7f3a9b2c", "a part of the secret")
		})
	}
}

// A client secret written in the file, not taken from the environment, is not quoted either when
// another key of the section is refused.
func TestNotificationsSecretInTheFileNeverInErrors(t *testing.T) {
	section := strings.Replace(validNotifications, `"${GENESYS_CLIENT_SECRET}"`, notificationsSecret, 1) +
		"  api_url: \"https://" + notificationsSecret + "@proxy.example.net\"\n  heartbeat_timeout: 1s\n"
	_, err := config.Parse([]byte(withNotifications(section)), env(nil))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "config: notifications.api_url:")
	assert.Contains(t, err.Error(), "config: notifications.heartbeat_timeout:")
	assert.NotContains(t, err.Error(), notificationsSecret)
	assert.NotContains(t, err.Error(), "7f3a9b2c")
}

// The example configuration's notifications section, commented out as it ships, validates once
// uncommented, and it and the README's table name every key of the section, and no other.
func TestExampleNotificationsSectionAndReadmeTable(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "..", "fanbridge.example.yaml"))
	require.NoError(t, err)
	var section []string
	for l := range strings.Lines(string(example)) {
		if section == nil && !strings.HasPrefix(l, "# notifications:") {
			continue
		}
		if section != nil && !strings.HasPrefix(l, "#   ") {
			break
		}
		section = append(section, strings.TrimPrefix(l, "# "))
	}
	require.NotEmpty(t, section, "the example has a commented-out notifications section")
	cfg, err := config.Parse([]byte(minimal+strings.Join(section, "")), env(map[string]string{
		"GENESYS_CLIENT_ID": "example-client-id", "GENESYS_CLIENT_SECRET": notificationsSecret}))
	require.NoError(t, err)
	require.NotNil(t, cfg.Notifications)
	assert.Equal(t, "example-client-id", cfg.Notifications.ClientID)

	manual, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	_, table, ok := strings.Cut(string(manual), "### `notifications` (optional)")
	require.True(t, ok, "README.md has a notifications section")
	table, _, _ = strings.Cut(table, "\n### ")
	var documented []string
	for l := range strings.Lines(table) {
		if m := regexp.MustCompile("^\\| `([a-z_]+)` \\|").FindStringSubmatch(l); m != nil {
			documented = append(documented, m[1])
		}
	}
	var keys []string
	typ := reflect.TypeOf(config.Notifications{})
	for i := range typ.NumField() {
		keys = append(keys, typ.Field(i).Tag.Get("yaml"))
	}
	assert.Equal(t, keys, documented, "README.md's notifications table")
	text := strings.Join(section, "")
	for _, k := range keys {
		assert.Contains(t, text, "  "+k+":", "the example's notifications section")
	}
}

// A client id or secret with white space around it (a line break kept from a secret file) is
// refused, naming the key and never the value: Genesys would refuse it at run time as unknown
// credentials, after validate said the file was good.
func TestNotificationsPaddedCredentialsRefused(t *testing.T) {
	_, err := config.Parse([]byte(withNotifications(validNotifications)),
		env(map[string]string{"GENESYS_CLIENT_SECRET": notificationsSecret + "\n"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "config: notifications.client_secret: has white space around it")
	assert.NotContains(t, err.Error(), notificationsSecret)

	padded := strings.Replace(validNotifications, "client_id: 0c4f2a8e-client", `client_id: " 0c4f2a8e-client"`, 1)
	require.NotEqual(t, validNotifications, padded)
	_, err = config.Parse([]byte(withNotifications(padded)), notificationsEnv())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "config: notifications.client_id: has white space around it")
}
