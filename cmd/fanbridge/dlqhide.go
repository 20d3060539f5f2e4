package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
)

// queueHider keeps what ${ENV} expansion put in the configuration's dlq section out of what the
// dlq commands print about the queue: its errors, and the lines the queue logs on stderr
// (filedlq's about damaged bytes name the directory, kafkadlq's the topic). validate and the
// configuration's errors never quote such a value, which may be a secret or a path meant to stay
// unknown, and these do not either. A nil queueHider hides nothing.
type queueHider struct {
	cfg  *config.Config
	path string // the section's key path: dlq.file or dlq.kafka
	// whole holds the directory or topic, when any of it came from the environment, in each
	// form a message may spell it (a file path in the directory is cleaned), longest first.
	whole []string
}

// newQueueHider returns the queueHider for the queue where, or nil when where is not the
// configuration's own (a -file directory, which the user typed).
func newQueueHider(cfg *config.Config, where *config.DLQ) *queueHider {
	if cfg == nil || where == nil || where != cfg.DLQ {
		return nil
	}
	h := &queueHider{cfg: cfg}
	switch {
	case where.File != nil:
		h.path = "dlq.file"
		if dir := where.File.Dir; settingText(cfg, "dlq.file.dir", dir) != dir {
			h.whole = append(h.whole, dir, filepath.Clean(dir))
		}
	case where.Kafka != nil:
		h.path = "dlq.kafka"
		if topic := where.Kafka.Topic; settingText(cfg, "dlq.kafka.topic", topic) != topic {
			h.whole = append(h.whole, topic)
		}
	default:
		return nil
	}
	slices.SortFunc(h.whole, func(a, b string) int { return len(b) - len(a) })
	h.whole = slices.Compact(h.whole)
	return h
}

// text returns s with the directory or topic replaced by fromEnvText where it stands on its
// own (not inside a longer name), and the values of the section's settings from the environment
// cut out as the configuration's errors cut them. A short one (as a word of the text could
// be) is replaced only where it is all of s or starts a path in it, as the path of a file in
// the directory does: "dlq" from the environment would garble "dlq: entry not found".
func (h *queueHider) text(s string) string {
	if h == nil {
		return s
	}
	for _, w := range h.whole {
		switch {
		case s == w:
			s = fromEnvText
		case len(w) >= minNameHidden:
			s = replaceName(s, w, "", fromEnvText)
		default:
			s = replaceName(s, w, string(filepath.Separator), fromEnvText)
		}
	}
	return h.cfg.Redact(h.path, s)
}

// minNameHidden is the length from which the directory or topic is replaced wherever it stands
// as a name of its own; config cuts values from the environment out of its errors from the same
// length on.
const minNameHidden = 8

// err returns err with its text hidden as text hides it; errors.Is and errors.As still see
// err.
func (h *queueHider) err(err error) error {
	if h == nil || err == nil {
		return err
	}
	msg := h.text(err.Error())
	if msg == err.Error() {
		return err
	}
	return &hiddenError{msg: msg, err: err}
}

type hiddenError struct {
	msg string
	err error
}

func (e *hiddenError) Error() string { return e.msg }
func (e *hiddenError) Unwrap() error { return e.err }

// logger returns log with its lines hidden as text hides them.
func (h *queueHider) logger(log *slog.Logger) *slog.Logger {
	if h == nil {
		return log
	}
	return slog.New(&hidingHandler{next: log.Handler(), h: h})
}

// hidingHandler hides, in each line, the message and the text of every attribute that is not a
// number, a time or a boolean (a string, an error, any other value as it prints).
type hidingHandler struct {
	next slog.Handler
	h    *queueHider
}

func (hh *hidingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return hh.next.Enabled(ctx, l)
}

func (hh *hidingHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, hh.h.text(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(hh.attr(a))
		return true
	})
	return hh.next.Handle(ctx, out)
}

func (hh *hidingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	hidden := make([]slog.Attr, len(as))
	for i, a := range as {
		hidden[i] = hh.attr(a)
	}
	return &hidingHandler{next: hh.next.WithAttrs(hidden), h: hh.h}
}

func (hh *hidingHandler) WithGroup(name string) slog.Handler {
	return &hidingHandler{next: hh.next.WithGroup(name), h: hh.h}
}

func (hh *hidingHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	var s string
	switch v.Kind() {
	case slog.KindGroup:
		g := v.Group()
		hidden := make([]any, len(g))
		for i, ga := range g {
			hidden[i] = hh.attr(ga)
		}
		return slog.Group(a.Key, hidden...)
	case slog.KindString:
		s = v.String()
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			s = err.Error()
		} else {
			s = fmt.Sprint(v.Any())
		}
	default:
		return slog.Attr{Key: a.Key, Value: v}
	}
	if hidden := hh.h.text(s); hidden != s {
		return slog.String(a.Key, hidden)
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// replaceName replaces with repl each occurrence of name that s has followed by sep and is not
// part of a longer name: where name starts with a letter, digit, _ or -, none stands right
// before it, and where it ends with one, none stands right after it. sep stays.
func replaceName(s, name, sep, repl string) string {
	if name == "" {
		return s
	}
	first, _ := utf8.DecodeRuneInString(name)
	last, _ := utf8.DecodeLastRuneInString(name)
	var b strings.Builder
	for i := 0; ; {
		j := strings.Index(s[i:], name+sep)
		if j < 0 {
			b.WriteString(s[i:])
			return b.String()
		}
		j += i
		end := j + len(name)
		before, _ := utf8.DecodeLastRuneInString(s[:j])
		after, _ := utf8.DecodeRuneInString(s[end:])
		if (j > 0 && nameRune(first) && nameRune(before)) || (end < len(s) && nameRune(last) && nameRune(after)) {
			b.WriteString(s[i : j+1])
			i = j + 1
			continue
		}
		b.WriteString(s[i:j])
		b.WriteString(repl)
		i = end
	}
}

func nameRune(r rune) bool {
	return r == '_' || r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r)
}
