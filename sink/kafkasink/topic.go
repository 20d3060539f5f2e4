package kafkasink

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
)

// ErrInvalidTopic is wrapped by the error for a topic name Kafka would refuse: empty, "." or "..",
// longer than 249 bytes, or holding a character outside [a-zA-Z0-9._-].
var ErrInvalidTopic = errors.New("kafkasink: invalid topic name")

// ErrUnmappedType is wrapped by the permanent error Send returns for an event whose Type has no
// topic under WithTopicByType and no fallback.
var ErrUnmappedType = errors.New("kafkasink: no topic for event type")

// maxTopicLen is Kafka's limit on a topic name's length.
const maxTopicLen = 249

// TopicFunc chooses the Kafka topic of an event. An error it returns is returned by Send as it is,
// so it should be marked retry.Permanent when no retry can cure it. A name it returns is checked
// against Kafka's rules; an invalid one fails the Send permanently with ErrInvalidTopic.
type TopicFunc func(e *fanbridge.Event) (string, error)

// ValidTopic reports whether Kafka accepts name as a topic name, with an error wrapping
// ErrInvalidTopic that says why not.
func ValidTopic(name string) error {
	if problem := topicProblem(name); problem != "" {
		return fmt.Errorf("%w: %s", ErrInvalidTopic, problem)
	}
	return nil
}

// topicProblem says why Kafka refuses name as a topic name, or returns "" when it accepts it.
func topicProblem(name string) string {
	switch {
	case name == "":
		return "empty"
	case name == "." || name == "..":
		return fmt.Sprintf("%q is reserved", name)
	case len(name) > maxTopicLen:
		return fmt.Sprintf("%d bytes, longer than %d", len(name), maxTopicLen)
	}
	for i := 0; i < len(name); i++ {
		if !topicByte(name[i]) {
			r, _ := utf8.DecodeRuneInString(name[i:])
			return fmt.Sprintf("%q holds %q; Kafka allows only [a-zA-Z0-9._-]", name, r)
		}
	}
	return ""
}

func topicByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// SanitizeTopic turns s into characters Kafka allows in a topic name: the braces of a Genesys
// topic template are dropped (so "v2.users.{id}.presence" becomes "v2.users.id.presence") and
// every other character outside [a-zA-Z0-9._-] becomes '_'. It does not shorten s; check the
// result with ValidTopic.
func SanitizeTopic(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if !topicByte(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == '{' || r == '}':
		case r < utf8.RuneSelf && topicByte(byte(r)):
			b.WriteByte(byte(r))
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// topicChooser is the topic choice New settles on: a function, and whether its results need
// checking (those of fixed names and maps were checked when the sink was built).
type topicChooser struct {
	f       TopicFunc
	checked bool
}

func fixedTopic(name string) (topicChooser, error) {
	if err := ValidTopic(name); err != nil {
		return topicChooser{}, err
	}
	return topicChooser{checked: true, f: func(*fanbridge.Event) (string, error) { return name, nil }}, nil
}

func topicsByType(topics map[string]string, fallback string) (topicChooser, error) {
	if len(topics) == 0 && fallback == "" {
		return topicChooser{}, errors.New("WithTopicByType: no type is mapped to a topic and there is no fallback, so every event would fail with ErrUnmappedType: map a type, or give a fallback")
	}
	m := make(map[string]string, len(topics))
	for typ, name := range topics {
		if err := ValidTopic(name); err != nil {
			return topicChooser{}, fmt.Errorf("topic for type %q: %w", typ, err)
		}
		m[typ] = name
	}
	if fallback != "" {
		if err := ValidTopic(fallback); err != nil {
			return topicChooser{}, fmt.Errorf("fallback topic: %w", err)
		}
	}
	return topicChooser{checked: true, f: func(e *fanbridge.Event) (string, error) {
		if name, ok := m[e.Type]; ok {
			return name, nil
		}
		if fallback != "" {
			return fallback, nil
		}
		return "", retry.Permanent(fmt.Errorf("%w %q", ErrUnmappedType, e.Type))
	}}, nil
}

// ValidTopicTemplate reports whether WithTopicTemplate accepts tmpl, with an error wrapping
// ErrInvalidTopic that says why not, so that a configuration can be checked before a Sink is built.
func ValidTopicTemplate(tmpl string) error {
	_, err := topicTemplate(tmpl)
	return err
}

// templatePart is a literal run of a topic template, or a placeholder when field is set.
type templatePart struct {
	literal string
	field   func(*fanbridge.Event) string
}

var templateFields = map[string]func(*fanbridge.Event) string{
	"type":   func(e *fanbridge.Event) string { return e.Type },
	"topic":  func(e *fanbridge.Event) string { return e.Topic },
	"source": func(e *fanbridge.Event) string { return e.Source },
	"account": func(e *fanbridge.Event) string {
		return e.Meta(fanbridge.MetaAccount)
	},
	"region": func(e *fanbridge.Event) string { return e.Meta(fanbridge.MetaRegion) },
}

// topicTemplate parses a template such as "genesys.{type}": literal text, which must already be
// valid in a topic name, and placeholders {type}, {topic}, {source}, {account} and {region},
// whose values are sanitised with SanitizeTopic when an event fills them in. A template that no
// event could turn into a valid name is refused here, rather than failing every event: one
// without placeholders is a single name, checked as WithTopic's is, and one with placeholders
// must leave them room, with less literal text than a name may have.
func topicTemplate(tmpl string) (topicChooser, error) {
	if tmpl == "" {
		return topicChooser{}, fmt.Errorf("%w: empty template", ErrInvalidTopic)
	}
	var parts []templatePart
	rest := tmpl
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			parts = append(parts, templatePart{literal: rest})
			break
		}
		if open > 0 {
			parts = append(parts, templatePart{literal: rest[:open]})
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return topicChooser{}, fmt.Errorf("%w: template %q has an unclosed {", ErrInvalidTopic, tmpl)
		}
		name := rest[open+1 : open+end]
		field, ok := templateFields[name]
		if !ok {
			return topicChooser{}, fmt.Errorf("%w: template %q uses unknown placeholder {%s}; known: {type} {topic} {source} {account} {region}", ErrInvalidTopic, tmpl, name)
		}
		parts = append(parts, templatePart{field: field})
		rest = rest[open+end+1:]
	}
	literal, placeholders := 0, 0
	for _, p := range parts {
		if p.field != nil {
			placeholders++
			continue
		}
		literal += len(p.literal)
		for i := 0; i < len(p.literal); i++ {
			if !topicByte(p.literal[i]) {
				return topicChooser{}, fmt.Errorf("%w: template %q holds %q outside a placeholder", ErrInvalidTopic, tmpl, p.literal[i])
			}
		}
	}
	if placeholders == 0 {
		if problem := topicProblem(tmpl); problem != "" {
			return topicChooser{}, fmt.Errorf("%w: template %q has no placeholder, so it is the topic name itself: %s", ErrInvalidTopic, tmpl, problem)
		}
		return fixedTopic(tmpl)
	}
	// Every name the template makes holds all its literal text; at the limit or over it, only
	// events whose placeholders are all empty would get a valid name, and a placeholder that
	// must be empty has no use.
	if literal >= maxTopicLen {
		return topicChooser{}, fmt.Errorf("%w: template %q has %d bytes of literal text, which leaves its placeholders no room within Kafka's %d",
			ErrInvalidTopic, tmpl, literal, maxTopicLen)
	}
	return topicChooser{f: func(e *fanbridge.Event) (string, error) {
		var b strings.Builder
		for _, p := range parts {
			if p.field != nil {
				b.WriteString(SanitizeTopic(p.field(e)))
			} else {
				b.WriteString(p.literal)
			}
		}
		return b.String(), nil
	}}, nil
}
