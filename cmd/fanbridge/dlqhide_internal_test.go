package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
)

const hiderRest = "intake:\n  - {path: /events, insecure_no_auth: true}\n" +
	"sinks:\n  - {name: a, grpc: {targets: [\"127.0.0.1:1\"], insecure: true}}\n" +
	"routes:\n  - {name: all, all: true, sinks: [a]}\n"

func hiderConfig(t *testing.T, section string, env map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(hiderRest+section), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	require.NoError(t, err)
	return cfg
}

// A queue directory or topic from the environment is replaced wherever an error or a log line
// of the queue spells it: as an attribute of its own, in a file path (cleaned, as a path in the
// directory is), in a group or an attribute given before. The rest of the text stays.
func TestQueueHider(t *testing.T) {
	const secret = "tenant-7f3a9c"
	for _, tc := range []struct {
		name, section, value string
		path                 string // a file in the directory, as filedlq names it
	}{
		{"an absolute directory", `dlq: {file: {dir: "${DIR}"}}`, "/srv/" + secret + "/dlq/", ""},
		{"a relative directory", `dlq: {file: {dir: "${DIR}"}}`, secret, ""},
		{"a part of the directory", `dlq: {file: {dir: "/srv/${DIR}/dlq"}}`, secret, "/srv/" + secret + "/dlq/dlq-00000000000000000001.jsonl"},
		{"a topic", `dlq: {kafka: {brokers: ["127.0.0.1:1"], topic: "${DIR}"}}`, "dlq-" + secret, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := hiderConfig(t, tc.section, map[string]string{"DIR": tc.value})
			h := newQueueHider(cfg, cfg.DLQ)
			require.NotNil(t, h)
			var spelt string // the directory or topic as the queue spells it
			if cfg.DLQ.File != nil {
				spelt = cfg.DLQ.File.Dir
			} else {
				spelt = cfg.DLQ.Kafka.Topic
			}
			file := tc.path
			if file == "" {
				file = filepath.Join(spelt, "dlq-00000000000000000001.jsonl")
			}
			perr := &fs.PathError{Op: "open", Path: file, Err: fs.ErrPermission}
			err := h.err(fmt.Errorf("filedlq: list: %w", perr))
			assert.NotContains(t, err.Error(), secret)
			assert.Contains(t, err.Error(), "filedlq: list: open ")
			assert.ErrorIs(t, err, fs.ErrPermission)
			var pe *fs.PathError
			assert.ErrorAs(t, err, &pe)

			var buf bytes.Buffer
			log := h.logger(slog.New(slog.NewTextHandler(&buf, nil)))
			log.With("queue", spelt).WithGroup("g").Warn("filedlq: damaged bytes in a segment",
				"dir", spelt, "topic", spelt, "reason", perr, slog.Group("in", "segment", file), "offset", 42, "repaired", false)
			line := buf.String()
			assert.NotContains(t, line, secret)
			assert.Contains(t, line, `msg="filedlq: damaged bytes in a segment"`)
			assert.Contains(t, line, `queue="(value from the environment)"`)
			assert.Contains(t, line, `g.dir="(value from the environment)"`)
			assert.Contains(t, line, "g.offset=42 g.repaired=false")
		})
	}

	// What does not come from the environment, or a queue the user named with -file, is shown.
	cfg := hiderConfig(t, `dlq: {file: {dir: /srv/dlq}}`, nil)
	h := newQueueHider(cfg, cfg.DLQ)
	perr := &fs.PathError{Op: "open", Path: "/srv/dlq/dlq-00000000000000000001.jsonl", Err: fs.ErrPermission}
	assert.Equal(t, perr.Error(), h.err(perr).Error())
	cfg = hiderConfig(t, `dlq: {file: {dir: "${DIR}"}}`, map[string]string{"DIR": "/srv/dlq"})
	assert.Nil(t, newQueueHider(cfg, &config.DLQ{File: &config.FileDLQ{Dir: "/srv/dlq"}}))
	assert.Nil(t, newQueueHider(nil, &config.DLQ{File: &config.FileDLQ{Dir: "/srv/dlq"}}))
	var none *queueHider
	assert.Equal(t, perr, none.err(perr))
	assert.NoError(t, none.err(nil))

	// A short directory is replaced only where it stands as a name of its own.
	cfg = hiderConfig(t, `dlq: {file: {dir: "${DIR}"}}`, map[string]string{"DIR": "dlq"})
	h = newQueueHider(cfg, cfg.DLQ)
	assert.Equal(t, `filedlq: get "x": open (value from the environment)/dlq-00000000000000000001.jsonl: dlq: entry not found`,
		h.err(errors.New(`filedlq: get "x": open dlq/dlq-00000000000000000001.jsonl: dlq: entry not found`)).Error())
}
