package sinktest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fanbridge/fanbridge"
)

// run returns a prefix that makes event IDs unique to one subtest, so a destination shared
// between subtests (one Kafka cluster, one server) cannot confuse their events.
func runPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "sinktest-" + hex.EncodeToString(b[:])
}

const customerEndBody = `{"eventTime":1649237504949,"conversationId":"2f7bf00a-0fc2-4d6a-9b56-92238191433e",` +
	`"participantId":"9fb2ca78-8389-4758-b76a-9b0300de1fce","sessionId":"c03d300e-fa79-4353-9695-b97a71322785",` +
	`"mediaType":"CHAT","provider":"PureCloud Webchat v2","direction":"INBOUND",` +
	`"externalContactId":"12456349-b5c7-4d8f-9eb4-f4df18bce9a9","interactingDurationMs":60000}`

// awkwardBody is valid JSON whose exact bytes a sink must keep: odd spacing, escapes, non-ASCII
// text and a number a re-encoder would rewrite.
const awkwardBody = "{ \"text\" :\"caf\\u00e9 \u2615 \\\"quoted\\\" \u00e9\",\n\t\"n\": 1.50e+2 ,  \"empty\":[ ], \"nil\":null }"

// fixtures returns the events the delivery checks send: a full Genesys event, a minimal one, one
// whose body must survive byte for byte, one with metadata and trace context, and a large one.
func fixtures(prefix string) []*fanbridge.Event {
	conversation := "2f7bf00a-0fc2-4d6a-9b56-92238191433e"
	user := "8f2c5e9a-1b3d-4c6e-9f7a-2b4d6e8f0a1c"
	source := "aws.partner/genesys.com/cloud/32aa07aa-db1b-4987-abd0-9483601ec29d/fanbridge-test"
	full := &fanbridge.Event{
		ID:     prefix + "-full",
		Type:   "v2.detail.events.conversation.{id}.customer.end",
		Topic:  "v2.detail.events.conversation." + conversation + ".customer.end",
		Source: source,
		Time:   time.Date(2022, 6, 14, 16, 12, 11, 435_123_456, time.UTC),
		Data:   json.RawMessage(customerEndBody),
		Metadata: map[string]string{
			fanbridge.MetaCorrelationID: "7272d362-23b2-4c14-9d40-dc7b7683153a",
			fanbridge.MetaAccount:       "123456789012",
			fanbridge.MetaRegion:        "us-east-1",
			fanbridge.MetaFormat:        "eventbridge",
		},
		Raw: []byte(`{"version":"0","id":"` + prefix + `-full","detail-type":"v2.detail.events.conversation.{id}.customer.end",` +
			`"detail":{"eventBody":` + customerEndBody + `}}`),
	}
	minimal := &fanbridge.Event{
		ID:   prefix + "-minimal",
		Type: "v2.users.{id}.presence",
	}
	awkward := &fanbridge.Event{
		ID:     prefix + "-awkward",
		Type:   "v2.users.{id}.activity",
		Topic:  "v2.users." + user + ".activity",
		Source: source,
		// A zone other than UTC: a sink must keep the instant, whatever zone it stores.
		Time: time.Date(2026, 3, 19, 23, 4, 48, 128_000_000, time.FixedZone("CET", 3600)),
		Data: json.RawMessage(awkwardBody),
		Raw:  []byte(awkwardBody),
	}
	traced := &fanbridge.Event{
		ID:     prefix + "-traced",
		Type:   "v2.users.{id}.presence",
		Topic:  "v2.users." + user + ".presence",
		Source: source,
		Time:   time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
		Data:   json.RawMessage(`{"presenceDefinition":{"systemPresence":"AVAILABLE"},"primary":true}`),
		Metadata: map[string]string{
			fanbridge.MetaTraceparent:   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			fanbridge.MetaTracestate:    "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
			fanbridge.MetaCorrelationID: "c0ffee00-0000-4000-8000-000000000001",
			"tenant":                    "acme contact centre \u00e9",
			"empty":                     "",
		},
	}
	large := &fanbridge.Event{
		ID:     prefix + "-large",
		Type:   "v2.conversations.{id}.transcription",
		Topic:  "v2.conversations." + conversation + ".transcription",
		Source: source,
		Time:   time.Date(2026, 3, 19, 22, 4, 48, 0, time.UTC),
		Data:   largeBody(64 << 10),
	}
	return []*fanbridge.Event{full, minimal, awkward, traced, large}
}

// largeBody returns a JSON object of about n bytes.
func largeBody(n int) json.RawMessage {
	var b strings.Builder
	b.WriteString(`{"transcripts":[`)
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"utteranceId":"` + strconv.Itoa(i) + `","transcript":"and the more's our neighbours see we had ten"}`)
	}
	b.WriteString(`]}`)
	return json.RawMessage(b.String())
}

// numbered returns n small events with IDs prefix-0 ... prefix-(n-1).
func numbered(prefix string, n int) []*fanbridge.Event {
	out := make([]*fanbridge.Event, n)
	for i := range out {
		out[i] = numberedEvent(prefix, i)
	}
	return out
}

func numberedEvent(prefix string, i int) *fanbridge.Event {
	return &fanbridge.Event{
		ID:     prefix + "-" + strconv.Itoa(i),
		Type:   "v2.users.{id}.presence",
		Topic:  "v2.users.8f2c5e9a-1b3d-4c6e-9f7a-2b4d6e8f0a1c.presence",
		Source: "aws.partner/genesys.com/cloud/org/fanbridge-test",
		Time:   time.Date(2026, 1, 1, 0, 0, 0, i, time.UTC),
		Data:   json.RawMessage(`{"seq":` + strconv.Itoa(i) + `}`),
		Metadata: map[string]string{
			fanbridge.MetaCorrelationID: "corr-" + strconv.Itoa(i),
		},
	}
}

// ofRun keeps the events whose ID carries prefix, so events left in a shared destination by other
// subtests do not count.
func ofRun(events []*fanbridge.Event, prefix string) []*fanbridge.Event {
	var out []*fanbridge.Event
	for _, e := range events {
		if e != nil && strings.HasPrefix(e.ID, prefix+"-") {
			out = append(out, e)
		}
	}
	return out
}

// checkArrived reports, as test errors, every difference between what was sent and what the
// destination holds: missing, duplicated or unexpected events, changed fields, and the order when
// the sink promises one.
func (s *suite) checkArrived(t *testing.T, want, got []*fanbridge.Event) {
	t.Helper()
	byID := make(map[string]*fanbridge.Event, len(got))
	for _, g := range got {
		if _, dup := byID[g.ID]; dup {
			t.Errorf("sinktest: event %q arrived more than once", g.ID)
			continue
		}
		byID[g.ID] = g
	}
	wanted := make(map[string]bool, len(want))
	for _, w := range want {
		wanted[w.ID] = true
		g, ok := byID[w.ID]
		if !ok {
			t.Errorf("sinktest: event %q was acknowledged but did not arrive", w.ID)
			continue
		}
		for _, d := range s.diff(w, g) {
			t.Errorf("sinktest: event %q arrived changed: %s", w.ID, d)
		}
	}
	for _, g := range got {
		if !wanted[g.ID] {
			t.Errorf("sinktest: event %q arrived but was never acknowledged", g.ID)
		}
	}
	if s.h.Features.Ordered && !t.Failed() {
		for i := range want {
			if i < len(got) && got[i].ID != want[i].ID {
				t.Errorf("sinktest: events arrived out of order: position %d holds %q, want %q", i, got[i].ID, want[i].ID)
				break
			}
		}
	}
}

// diff lists the fields of got that differ from want, among those the sink promises to keep.
func (s *suite) diff(want, got *fanbridge.Event) []string {
	var d []string
	field := func(name, w, g string) {
		if w != g {
			d = append(d, fmt.Sprintf("%s = %q, want %q", name, g, w))
		}
	}
	field("Type", want.Type, got.Type)
	field("Topic", want.Topic, got.Topic)
	field("Source", want.Source, got.Source)
	if !want.Time.Equal(got.Time) {
		d = append(d, fmt.Sprintf("Time = %s, want %s", got.Time.Format(time.RFC3339Nano), want.Time.Format(time.RFC3339Nano)))
	}
	if !bytes.Equal(want.Data, got.Data) {
		d = append(d, fmt.Sprintf("Data differs (%d bytes, want %d): %s", len(got.Data), len(want.Data), firstDifference(want.Data, got.Data)))
	}
	if s.h.Features.Metadata && !maps.Equal(want.Metadata, got.Metadata) {
		d = append(d, fmt.Sprintf("Metadata = %q, want %q", got.Metadata, want.Metadata))
	}
	if s.h.Features.Raw && !bytes.Equal(want.Raw, got.Raw) {
		d = append(d, fmt.Sprintf("Raw differs (%d bytes, want %d): %s", len(got.Raw), len(want.Raw), firstDifference(want.Raw, got.Raw)))
	}
	return d
}

func firstDifference(want, got []byte) string {
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	snip := func(b []byte) string {
		end := min(len(b), i+16)
		if i >= end {
			return ""
		}
		return string(b[i:end])
	}
	return fmt.Sprintf("first at byte %d: %q, want %q", i, snip(got), snip(want))
}
