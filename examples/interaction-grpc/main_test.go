package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/examples/internal/demo"
	"github.com/fanbridge/fanbridge/examples/internal/exampletest"
	"github.com/fanbridge/fanbridge/filter"
	"github.com/fanbridge/fanbridge/signature"
	"github.com/fanbridge/fanbridge/sink/memsink"
)

// Event ids of the samples.
const (
	idStart     = "adbcfa5b-0116-4baa-b66b-a3f5902e95bf"
	idChat      = "58fb5dac-f077-4eec-a25f-c638dbdd4368"
	idSale      = "0b7c5a1e-3f2d-4e8a-9c61-5d4b2a7e8f90"
	idWrong     = "6e2a4c8b-0d1f-4b3e-a5c7-9e1b3d5f7a2c"
	idVoiceCall = "d4f6a8c0-2e4b-4d6f-8a0c-2e4b6d8f0a1b"
)

func TestOffline(t *testing.T) {
	for _, kind := range []string{"pattern", "cel"} {
		t.Run(kind, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var out bytes.Buffer
			require.NoError(t, run(ctx, []string{"-filter", kind}, exampletest.Env(nil), &out))
			text := out.String()

			for _, id := range []string{idStart, idChat, idWrong} {
				assert.Contains(t, text, id+" -> not selected\n")
			}
			// Reporting failed twice and was retried; the CRM was called once.
			assert.Contains(t, text, idSale+" -> crm: delivered after 1 attempt(s)\n")
			assert.Contains(t, text, idSale+" -> reporting: delivered after 3 attempt(s)\n")
			assert.Equal(t, 1, strings.Count(text, "[crm] "+idSale+": conversation"))
			assert.Equal(t, 1, strings.Count(text, "[reporting] "+idSale+": recorded"))
			// The CRM refuses a conversation without a contact for good: dead-lettered, not retried.
			assert.Contains(t, text, idVoiceCall+" -> crm: dead-lettered after 1 attempt(s) [permanent:")
			assert.Contains(t, text, idVoiceCall+" -> reporting: delivered after 1 attempt(s)\n")
			assert.Contains(t, text, idVoiceCall+" sink=crm route=follow-up condition=permanent attempts=1")
			assert.Equal(t, 5, strings.Count(text, "  answer: 200 "))

			// The dead letter kept the envelope as received, in a temporary directory gone with
			// the demo.
			raw, err := samples.ReadFile("samples/customer-end-voice.json")
			require.NoError(t, err)
			assert.Contains(t, text, fmt.Sprintf("(%d bytes of envelope kept)", len(raw)))
			_, rest, ok := strings.Cut(text, "dead-letter queue in ")
			require.True(t, ok, text)
			dir, _, _ := strings.Cut(rest, ":\n")
			assert.True(t, filepath.IsAbs(dir), dir)
			assert.NoDirExists(t, dir)
		})
	}
}

// envelope wraps an event body as Amazon EventBridge delivers it.
func envelope(detailType, body string) []byte {
	return []byte(`{"version":"0","id":"e-1","detail-type":"` + detailType + `",` +
		`"source":"aws.partner/genesys.com/cloud/org/suffix","account":"123456789012",` +
		`"time":"2026-03-02T10:17:43Z","region":"eu-west-1","resources":[],` +
		`"detail":{"topicName":"` + strings.ReplaceAll(detailType, "{id}", "c-1") + `","version":"2","eventBody":` + body + `}}`)
}

func TestFiltersAgree(t *testing.T) {
	const (
		end = "v2.detail.events.conversation.{id}.customer.end"
		acw = "v2.detail.events.conversation.{id}.acw"
	)
	cases := []struct {
		name string
		raw  []byte
		want bool
	}{
		{"end 2 min 1 ms", envelope(end, `{"interactingDurationMs":120001}`), true},
		{"end exactly 2 min", envelope(end, `{"interactingDurationMs":120000}`), false},
		{"end as a float", envelope(end, `{"interactingDurationMs":120000.5}`), true},
		{"end without duration", envelope(end, `{"mediaType":"VOICE"}`), false},
		{"end with duration as text", envelope(end, `{"interactingDurationMs":"900000"}`), false},
		{"end carrying a sale code", envelope(end, `{"interactingDurationMs":1,"wrapupCode":"`+wrapupSale+`","wrapupDurationMs":5}`), false},
		{"acw sale", envelope(acw, `{"wrapupCode":"`+wrapupSale+`","wrapupDurationMs":1}`), true},
		{"acw complaint 10 min", envelope(acw, `{"wrapupCode":"`+wrapupComplaint+`","wrapupDurationMs":600000}`), true},
		{"acw complaint over 10 min", envelope(acw, `{"wrapupCode":"`+wrapupComplaint+`","wrapupDurationMs":600001}`), false},
		{"acw sale 0 ms", envelope(acw, `{"wrapupCode":"`+wrapupSale+`","wrapupDurationMs":0}`), false},
		{"acw sale without duration", envelope(acw, `{"wrapupCode":"`+wrapupSale+`"}`), false},
		{"acw other code", envelope(acw, `{"wrapupCode":"9f1e3d5c-7b9a-4e2c-8d4f-6a8c0e2b4d6f","wrapupDurationMs":1}`), false},
		{"acw long conversation", envelope(acw, `{"interactingDurationMs":900000}`), false},
		{"user end, long", envelope("v2.detail.events.conversation.{id}.user.end", `{"interactingDurationMs":900000}`), false},
	}
	want := map[string]bool{"acw-sale.json": true, "customer-end-voice.json": true}
	for _, name := range order {
		raw, err := samples.ReadFile("samples/" + name)
		require.NoError(t, err)
		cases = append(cases, struct {
			name string
			raw  []byte
			want bool
		}{"sample " + name, raw, want[name]})
	}

	expr, err := filter.Expr(followUpCEL)
	require.NoError(t, err)
	pattern, err := filter.ParsePattern([]byte(followUpPattern))
	require.NoError(t, err)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := eventbridge.Decode(c.raw, "application/json")
			require.NoError(t, err)
			assert.Equal(t, c.want, expr.Match(e), "CEL")
			assert.Equal(t, c.want, pattern.Match(e), "pattern")
			tested, err := filter.Test([]byte(followUpPattern), c.raw)
			require.NoError(t, err)
			assert.Equal(t, c.want, tested, "filter.Test")
		})
	}
}

// TestFiltersPart pins where the two filters select differently, on values Genesys does not
// send: a list (the pattern looks inside it), a number the pattern does not compare (beyond
// ±5e11, or with more than six decimals) and a repeated key (the pattern refuses the event, the
// expression reads the last value). The README names each case, so that it says what the
// filters do.
func TestFiltersPart(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	const (
		end = "v2.detail.events.conversation.{id}.customer.end"
		acw = "v2.detail.events.conversation.{id}.acw"
	)
	expr, err := filter.Expr(followUpCEL)
	require.NoError(t, err)
	pattern, err := filter.ParsePattern([]byte(followUpPattern))
	require.NoError(t, err)
	for _, c := range []struct {
		name, readme   string
		raw            []byte
		cel, pat       bool
		patternRefuses bool
	}{
		{"duration in a list", "a value inside a list", envelope(end, `{"interactingDurationMs":[900000]}`), false, true, false},
		{"duration above 5e11", "1649237504949", envelope(end, `{"interactingDurationMs":1649237504949}`), true, false, false},
		{"duration with seven decimals", "120000.0000001", envelope(end, `{"interactingDurationMs":120000.0000001}`), true, false, false},
		{"wrap-up with seven decimals", "0.0000001", envelope(acw, `{"wrapupCode":"`+wrapupSale+`","wrapupDurationMs":0.0000001}`), true, false, false},
		{"repeated key", "repeats a key", envelope(end, `{"interactingDurationMs":1,"interactingDurationMs":900000}`), true, false, true},
		{"number beyond a double elsewhere", "beyond the range of a double (`1e400`), even in a field neither filter reads",
			envelope(end, `{"interactingDurationMs":900000,"other":1e400}`), false, true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.True(t, strings.Contains(strings.Join(strings.Fields(string(readme)), " "), c.readme), "the README names %q", c.readme)
			e, err := eventbridge.Decode(c.raw, "application/json")
			require.NoError(t, err)
			assert.Equal(t, c.cel, expr.Match(e), "CEL")
			assert.Equal(t, c.pat, pattern.Match(e), "pattern")
			tested, err := filter.Test([]byte(followUpPattern), c.raw)
			if c.patternRefuses {
				assert.ErrorIs(t, err, filter.ErrInvalidEvent)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, c.pat, tested, "filter.Test")
		})
	}
}

func ids(events []*fanbridge.Event) []string {
	var list []string
	for _, e := range events {
		list = append(list, e.ID)
	}
	slices.Sort(list)
	return list
}

func TestAgainstServices(t *testing.T) {
	for _, kind := range []string{"pattern", "cel"} {
		t.Run(kind, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			// Two real consumer services, as a user would run them.
			crm, reporting := memsink.New(), memsink.New()
			reporting.FailNext(2, nil)
			addrs := startConsumers(t, crm, reporting)

			p := exampletest.Start(t, ctx, run, []string{"-insecure", "-filter", kind}, map[string]string{
				"GRPC_DOWNSTREAM_ADDRESSES": addrs,
				"EVENTBRIDGE_API_KEY":       "test-key",
				"GENESYS_WEBHOOK_SECRET":    "test-secret",
				"GENESYS_ORGANIZATION_ID":   "32aa07aa-db1b-4987-abd0-9483601ec29d",
				"LISTEN_ADDR":               "127.0.0.1:0",
				"DLQ_DIR":                   t.TempDir(),
			})

			sale, err := samples.ReadFile("samples/acw-sale.json")
			require.NoError(t, err)
			assert.Equal(t, http.StatusUnauthorized, exampletest.Post(t, ctx, p.URL, sale, http.Header{}), "no credentials")
			assert.Equal(t, http.StatusUnauthorized, exampletest.Post(t, ctx, p.URL, sale, http.Header{demo.APIKeyHeader: {"wrong"}}), "wrong key")

			for _, name := range []string{"acw-sale.json", "acw-wrong-number.json"} {
				body, err := samples.ReadFile("samples/" + name)
				require.NoError(t, err)
				assert.Equal(t, http.StatusOK, exampletest.Post(t, ctx, p.URL, body, http.Header{demo.APIKeyHeader: {"test-key"}}), name)
			}
			// A signing proxy's HMAC is accepted too.
			voice, err := samples.ReadFile("samples/customer-end-voice.json")
			require.NoError(t, err)
			sig, err := signature.SignHMAC(demo.HMACScheme, "test-secret", voice)
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, exampletest.Post(t, ctx, p.URL, voice, http.Header{demo.HMACScheme.Header: {sig}}))
			// The chat sample comes from another organization's test bus: refused.
			chat, err := samples.ReadFile("samples/customer-end-chat.json")
			require.NoError(t, err)
			assert.Equal(t, http.StatusForbidden, exampletest.Post(t, ctx, p.URL, chat, http.Header{demo.APIKeyHeader: {"test-key"}}))

			// A 200 means both services have the selected events, each once.
			want := []string{idVoiceCall, idSale}
			slices.Sort(want)
			assert.Equal(t, want, ids(crm.Events()))
			assert.Equal(t, want, ids(reporting.Events()))
			assert.Equal(t, 4, reporting.Attempts(), "only the failing service is retried")
			assert.Equal(t, 2, crm.Attempts())

			p.Stop(t)
		})
	}
}

func TestConfigurationErrors(t *testing.T) {
	good := map[string]string{
		"GRPC_DOWNSTREAM_ADDRESSES": "127.0.0.1:1,127.0.0.1:2",
		"EVENTBRIDGE_API_KEY":       "k",
		"LISTEN_ADDR":               "127.0.0.1:0",
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{"DLQ_DIR": t.TempDir()}
		for gk, gv := range good {
			m[gk] = gv
		}
		m[k] = v
		return m
	}
	cases := []struct {
		name string
		args []string
		vars map[string]string
		want string
	}{
		{"one address", nil, with("GRPC_DOWNSTREAM_ADDRESSES", "127.0.0.1:1"), "want two addresses"},
		{"addresses set to nothing", nil, with("GRPC_DOWNSTREAM_ADDRESSES", " "), "GRPC_DOWNSTREAM_ADDRESSES is set but names nothing"},
		{"no credentials", nil, with("EVENTBRIDGE_API_KEY", ""), "never runs unauthenticated"},
		{"no dead-letter directory", nil, with("DLQ_DIR", ""), "DLQ_DIR"},
		{"organization not a UUID", nil, with("GENESYS_ORGANIZATION_ID", "32aa07aa"), "GENESYS_ORGANIZATION_ID: want the organization's id, a UUID"},
		{"unknown filter", []string{"-filter", "regex"}, with("LISTEN_ADDR", "127.0.0.1:0"), "want pattern or cel"},
		{"unknown flag", []string{"-verbose"}, with("LISTEN_ADDR", "127.0.0.1:0"), "verbose"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, c.args, exampletest.Env(c.vars), io.Discard)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}

// The command the offline demo prints to try by hand does what it says when pasted.
func TestServingHint(t *testing.T) { exampletest.CheckServingHint(t, run) }

// org is the organization whose event bus the samples come from.
const org = "32aa07aa-db1b-4987-abd0-9483601ec29d"

// bareNotification is the notification an envelope carries (its detail), as the WebSocket
// Notification API sends it: with no source.
func bareNotification(t *testing.T, envelope []byte) []byte {
	t.Helper()
	var e struct{ Detail json.RawMessage }
	require.NoError(t, json.Unmarshal(envelope, &e))
	require.NotEmpty(t, e.Detail)
	return e.Detail
}

// With GENESYS_ORGANIZATION_ID set, events whose source names another organization (or another
// partner) are refused, those of the organization are taken, and so are bare notifications,
// which name none. The id is taken without blanks around it and in any case.
func TestOrganization(t *testing.T) {
	sale, err := samples.ReadFile("samples/acw-sale.json")
	require.NoError(t, err)
	voice, err := samples.ReadFile("samples/customer-end-voice.json")
	require.NoError(t, err)
	chat, err := samples.ReadFile("samples/customer-end-chat.json") // from genesys.com.test
	require.NoError(t, err)
	otherOrg := bytes.Replace(voice, []byte("cloud/"+org+"/"), []byte("cloud/23faea37-1117-4c0a-88a2-572c46780b03/"), 1)
	require.NotEqual(t, voice, otherOrg)

	for name, value := range map[string]string{
		"as written":         org,
		"with blanks around": "\t" + org + " ",
		"upper case":         strings.ToUpper(org),
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			crm, reporting := memsink.New(), memsink.New()
			addrs := startConsumers(t, crm, reporting)
			p := exampletest.Start(t, ctx, run, []string{"-insecure"}, map[string]string{
				"GRPC_DOWNSTREAM_ADDRESSES": addrs,
				"EVENTBRIDGE_API_KEY":       "test-key",
				"GENESYS_ORGANIZATION_ID":   value,
				"LISTEN_ADDR":               "127.0.0.1:0",
				"DLQ_DIR":                   t.TempDir(),
			})
			key := http.Header{demo.APIKeyHeader: {"test-key"}}
			for _, c := range []struct {
				name   string
				body   []byte
				status int
			}{
				{"envelope of the organization", sale, http.StatusOK},
				{"bare notification", bareNotification(t, voice), http.StatusOK},
				{"envelope of another organization", otherOrg, http.StatusForbidden},
				{"envelope of another partner", chat, http.StatusForbidden},
			} {
				resp, answer := exampletest.Do(t, ctx, http.MethodPost, p.URL, c.body, key)
				assert.Equal(t, c.status, resp.StatusCode, "%s: %s", c.name, answer)
				if c.status == http.StatusOK {
					assert.Contains(t, answer, `"status":"delivered"`, c.name)
				}
			}
			assert.Len(t, reporting.Events(), 2, "the sale and the bare notification")
			p.Stop(t)
		})
	}
}

// The offline demo, which runs when GRPC_DOWNSTREAM_ADDRESSES is not set, keeps its dead letters
// in a temporary directory and listens only on loopback: given a directory or an address it
// refuses to start, naming the setting, and touches neither.
func TestOfflineRefusesAServicesSettings(t *testing.T) {
	exampletest.CheckOfflineRefuses(t, run, "GRPC_DOWNSTREAM_ADDRESSES")
}

// startConsumers starts a real consumer service for each sink, stopped when the test ends, and
// returns their addresses as GRPC_DOWNSTREAM_ADDRESSES lists them, with a blank after each comma
// as a user might write them.
func startConsumers(t *testing.T, sinks ...*memsink.Sink) string {
	t.Helper()
	addrs := make([]string, len(sinks))
	for i, s := range sinks {
		addr, stop, err := startConsumer(s)
		require.NoError(t, err)
		t.Cleanup(stop)
		addrs[i] = addr
	}
	return strings.Join(addrs, ", ")
}
