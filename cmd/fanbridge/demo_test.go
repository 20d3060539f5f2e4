package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/demo"
)

// banner is what the demo prints for a newcomer, parsed.
type banner struct {
	intake, header, key, kafka, dlq string
	curl, send, kcat                string
}

var (
	reIntake = regexp.MustCompile(`^  intake:   POST (http://\S+)$`)
	reKey    = regexp.MustCompile(`^  api key:  ([A-Za-z-]+): (\S+)$`)
	reKafka  = regexp.MustCompile(`^  kafka:    (\S+)  topics: `)
	reDLQ    = regexp.MustCompile(`^  dlq:      (\S+)$`)
)

func parseBanner(t *testing.T, ctx context.Context, p *proc) banner {
	t.Helper()
	_, _, err := p.stdout.wait(ctx, 0, func(s string) bool { return strings.HasPrefix(s, "  kcat ") })
	require.NoError(t, err, "no banner:\n%s", p.stdout.String())
	var b banner
	for _, l := range strings.Split(p.stdout.String(), "\n") {
		if m := reIntake.FindStringSubmatch(l); m != nil {
			b.intake = m[1]
		}
		if m := reKey.FindStringSubmatch(l); m != nil {
			b.header, b.key = m[1], m[2]
		}
		if m := reKafka.FindStringSubmatch(l); m != nil {
			b.kafka = m[1]
		}
		if m := reDLQ.FindStringSubmatch(l); m != nil {
			b.dlq = m[1]
		}
		switch {
		case strings.HasPrefix(l, "  curl "):
			b.curl = strings.TrimSpace(l)
		case strings.HasPrefix(l, "  go run ./cmd/fanbridge demo send "):
			b.send = strings.TrimSpace(l)
		case strings.HasPrefix(l, "  kcat "):
			b.kcat = strings.TrimSpace(l)
		}
	}
	for name, v := range map[string]string{"intake": b.intake, "api key": b.key, "kafka": b.kafka, "dlq": b.dlq, "curl": b.curl, "send": b.send} {
		require.NotEmpty(t, v, "banner line %q missing:\n%s", name, p.stdout.String())
	}
	return b
}

// shellWords splits a command line as a POSIX shell would, for the quoting the banner uses:
// single quotes, double quotes with backslash escapes, and backslashes outside quotes.
func shellWords(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			in = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			in = true
		case c == '\\':
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
			in = true
		case strings.IndexByte("|&;<>()$`*?[", c) >= 0 || strings.IndexByte("#~", c) >= 0 && !in:
			return nil, errors.New("unquoted shell metacharacter " + string(c))
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

func TestShellWords(t *testing.T) {
	for in, want := range map[string][]string{
		`a 'b c' "d \"e\"" f\ g`: {"a", "b c", `d "e"`, "f g"},
		`-d '{"x":"it'\''s"}'`:   {"-d", `{"x":"it's"}`},
		`-f 'key=%k %s\n'`:       {"-f", `key=%k %s\n`},
	} {
		got, err := shellWords(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{`'open`, `"open`, `a; b`, `a | b`, `a $(b)`, `#a`} {
		_, err := shellWords(bad)
		assert.Error(t, err, bad)
	}
}

// flags turns "-x value" pairs (after the command name) into a map, with "" for lone flags.
func flags(t *testing.T, words []string, lone ...string) (map[string][]string, []string) {
	t.Helper()
	out := map[string][]string{}
	var pos []string
	for i := 1; i < len(words); i++ {
		w := words[i]
		switch {
		case !strings.HasPrefix(w, "-"):
			pos = append(pos, w)
		case contains(lone, w):
			out[w] = append(out[w], "")
		default:
			require.Less(t, i+1, len(words), "flag %s has no value", w)
			out[w] = append(out[w], words[i+1])
			i++
		}
	}
	return out, pos
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestDemo runs the binary with no configuration, as `go run ./cmd/fanbridge` does, and follows
// its banner: the printed key posts a sample, the printed curl command works as printed, the
// printed broker holds the records, and the log says where each event went.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dlqDir := filepath.Join(t.TempDir(), "dlq")
	p := start(t, nil, "-listen", "127.0.0.1:0", "-kafka-port", "0", "-dlq-dir", dlqDir)
	b := parseBanner(t, ctx, p)
	assert.Equal(t, "X-Api-Key", b.header)
	assert.Regexp(t, `^demo-[0-9a-f]{32}$`, b.key)
	assert.Regexp(t, `^http://127\.0\.0\.1:\d+/events$`, b.intake)
	assert.Regexp(t, `^127\.0\.0\.1:\d+$`, b.kafka)
	assert.Equal(t, dlqDir, b.dlq)

	const (
		endID        = "58fb5dac-f077-4eec-a25f-c638dbdd4368"
		conversation = "2f7bf00a-0fc2-4d6a-9b56-92238191433e"
		presenceUser = "278522be-1683-4877-8257-4164a177be89"
	)
	endBody, err := os.ReadFile(filepath.Join("testdata", "genesys", "v2.detail.events.conversation.customer.end.json"))
	require.NoError(t, err)
	presenceBody, err := os.ReadFile(filepath.Join("testdata", "genesys", "v2.audits.entitytype.UserPresence.update.json"))
	require.NoError(t, err)
	var presence struct{ ID string }
	require.NoError(t, json.Unmarshal(presenceBody, &presence))

	// The curl command: the printed URL, headers and key, and the embedded sample as its body.
	curl, err := shellWords(b.curl)
	require.NoError(t, err, b.curl)
	require.Equal(t, "curl", curl[0])
	cf, pos := flags(t, curl, "-sS")
	assert.Equal(t, []string{b.intake}, pos, "the URL")
	assert.Equal(t, []string{"POST"}, cf["-X"])
	assert.Equal(t, []string{"Content-Type: application/json", b.header + ": " + b.key}, cf["-H"])
	require.Len(t, cf["-d"], 1)
	assert.JSONEq(t, string(endBody), cf["-d"][0], "the body is the conversation-end sample")

	// A sample posted with the printed key, as any HTTP client would.
	status, answer, err := post(ctx, http.DefaultClient, b.intake, presenceBody, map[string]string{b.header: b.key})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status, answer)
	assert.Contains(t, answer, `"status":"delivered"`)
	status, _, err = post(ctx, http.DefaultClient, b.intake, presenceBody, map[string]string{b.header: "demo-wrong"})
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, status, "the key is checked")

	// The curl command, run exactly as printed.
	ranCurl := false
	curled := t.Run("curl as printed", func(t *testing.T) {
		if _, err := exec.LookPath("curl"); err != nil {
			t.Skip("curl is not installed; the command was checked word by word instead")
		}
		if _, err := exec.LookPath("sh"); err != nil {
			t.Skip("no sh to run the command")
		}
		out, err := exec.CommandContext(ctx, "sh", "-c", b.curl).CombinedOutput()
		ranCurl = true
		require.NoError(t, err, "%s", out)
		assert.JSONEq(t, `{"status":"delivered","id":"`+endID+`"}`, strings.TrimSpace(string(out)))
	})
	if !curled {
		return
	}
	if !ranCurl {
		// curl was skipped: send what it would have sent.
		hdr := map[string]string{}
		for _, h := range cf["-H"] {
			k, v, _ := strings.Cut(h, ": ")
			hdr[k] = v
		}
		status, answer, err := post(ctx, http.DefaultClient, pos[0], []byte(cf["-d"][0]), hdr)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status, answer)
	}

	// The log says where each event went: its routes and sinks, the gRPC consumer, and the
	// topic, partition and offset of each Kafka record.
	for _, want := range [][]string{
		{`msg=event`, `id=` + endID, `routes="[long-conversations everything]"`, `sinks="[analytics=delivered kafka-conversations=delivered kafka-all=delivered]"`},
		{`msg="grpc consumer received"`, `id=` + endID, `sink=analytics`},
		{`msg="kafka consumer received"`, `topic=genesys.conversations`, `partition=0`, `offset=0`, `key=` + conversation, `id=` + endID},
		{`msg="kafka consumer received"`, `topic=gen-presence-status`, `partition=0`, `offset=0`, `key=` + presenceUser, `id=` + presence.ID},
	} {
		_, _, err := p.stderr.wait(ctx, 0, func(s string) bool {
			for _, w := range want {
				if !strings.Contains(s, w) {
					return false
				}
			}
			return true
		})
		require.NoError(t, err, "no log line with %v", want)
	}

	// The records, read from the printed broker.
	recs := readAll(t, ctx, []string{b.kafka}, "genesys.conversations", "gen-presence-status")
	require.Len(t, recs, 2)
	for _, r := range recs {
		switch r.Topic {
		case "genesys.conversations":
			assert.Equal(t, endID, r.Event.ID)
			assert.Equal(t, conversation, r.Key)
		case "gen-presence-status":
			assert.Equal(t, presence.ID, r.Event.ID)
			assert.Equal(t, presenceUser, r.Key)
		}
	}

	// The kcat command names the printed broker and the topic just read, from the beginning,
	// exiting at the end, one line per record with its key.
	kcat, err := shellWords(b.kcat)
	require.NoError(t, err, b.kcat)
	require.Equal(t, "kcat", kcat[0])
	kf, kpos := flags(t, kcat, "-C", "-e")
	assert.Empty(t, kpos)
	assert.Equal(t, map[string][]string{"-b": {b.kafka}, "-C": {""}, "-t": {"genesys.conversations"}, "-o": {"beginning"}, "-e": {""}, "-f": {`key=%k %s\n`}}, kf)
	t.Run("kcat as printed", func(t *testing.T) {
		if _, err := exec.LookPath("kcat"); err != nil {
			t.Skip("kcat is not installed; the command was checked word by word and the topic read with franz-go")
		}
		out, err := exec.CommandContext(ctx, "sh", "-c", b.kcat).Output()
		require.NoError(t, err)
		assert.Contains(t, string(out), "key="+conversation+" ")
	})

	// The banner's other command, with the built binary in place of go run.
	send, err := shellWords(b.send)
	require.NoError(t, err, b.send)
	require.Equal(t, []string{"go", "run", "./cmd/fanbridge", "demo", "send", "-url", b.intake, "-key", b.key}, send)
	code, out, errOut := runCmd(t, ctx, nil, send[3:]...)
	require.Equal(t, 0, code, "%s\n%s", out, errOut)
	assert.Regexp(t, `(?m)^v2\.conversations\.transcription\s+200 \{"status":"delivered"`, out)
	assert.Regexp(t, `(?m)^v2\.detail\.events\.conversation\.customer\.end\s+200 \{"status":"duplicate"`, out)

	// README.md shows the banner's commands from a run on the default ports: they are the same
	// commands, address and key aside.
	readme := mustRead(t, "README.md")
	readmeKey := regexp.MustCompile(`X-Api-Key: (demo-[0-9a-f]{32})`).FindStringSubmatch(readme)
	require.NotNil(t, readmeKey, "README.md shows a demo key")
	localize := strings.NewReplacer("http://127.0.0.1:8080/events", b.intake, "127.0.0.1:9092", b.kafka, readmeKey[1], b.key)
	for _, cmd := range []string{b.curl, b.send, b.kcat} {
		name := strings.Join(strings.Fields(cmd)[:2], " ")
		if name == "go run" {
			name = "go run ./cmd/fanbridge demo send"
		}
		found := false
		for _, l := range strings.Split(readme, "\n") {
			if strings.HasPrefix(l, name+" ") {
				found = true
				assert.Equal(t, cmd, localize.Replace(l), "README.md's %q command", name)
			}
		}
		assert.True(t, found, "README.md shows the %q command", name)
	}

	p.signal(t, syscall.SIGTERM)
	code, err = p.exit(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, code)
}

// TestDemoSendsEverySample starts a fresh demo with -send-samples: each embedded sample is
// delivered, none answered as a duplicate (two of the files repeat another's id, and the demo
// posts them under ids of their own), and the log shows what the two variants are there for.
func TestDemoSendsEverySample(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := start(t, nil, "-listen", "127.0.0.1:0", "-kafka-port", "0", "-dlq-dir", filepath.Join(t.TempDir(), "dlq"), "-send-samples")
	parseBanner(t, ctx, p)
	samples := demo.Samples()
	require.Len(t, samples, 8)
	for _, s := range samples {
		line, _, err := p.stdout.wait(ctx, 0, func(l string) bool { return strings.HasPrefix(l, s.Name+" ") })
		require.NoError(t, err, "no answer for %s:\n%s", s.Name, p.stdout.String())
		assert.Regexp(t, `^`+regexp.QuoteMeta(s.Name)+`\s+200 \{"status":"delivered","id":"[^"]+"\}$`, line)
	}
	assert.NotContains(t, p.stdout.String(), "duplicate")

	const (
		endID   = "58fb5dac-f077-4eec-a25f-c638dbdd4368"
		startID = "adbcfa5b-0116-4baa-b66b-a3f5902e95bf"
	)
	for _, want := range [][]string{
		// A conversation end with no external contact is a long conversation like any other.
		{`msg=event`, `id=` + endID + `-no-external-contact `, `type=v2.detail.events.conversation.{id}.customer.end `,
			`routes="[long-conversations everything]"`, `sinks="[analytics=delivered kafka-conversations=delivered kafka-all=delivered]"`},
		// detail-type and detail.topicName disagree: the event is taken, its type is the
		// detail-type (what an EventBridge rule matched), and only the route that takes every
		// event matches it.
		{`msg=event`, `id=` + startID + `-mismatched-detail-type `, `type=v2.something.but.conversation.{id}.customer.start `,
			`routes=[everything] `, `sinks="[kafka-all=delivered]"`},
		// The originals keep their ids.
		{`msg=event`, `id=` + endID + ` `, `routes="[long-conversations everything]"`},
		{`msg=event`, `id=` + startID + ` `, `type=v2.detail.events.conversation.{id}.customer.start `, `routes=[everything] `},
	} {
		_, _, err := p.stderr.wait(ctx, 0, func(s string) bool {
			for _, w := range want {
				if !strings.Contains(s, w) {
					return false
				}
			}
			return true
		})
		require.NoError(t, err, "no log line with %v", want)
	}

	p.signal(t, syscall.SIGTERM)
	code, err := p.exit(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, code)
}
