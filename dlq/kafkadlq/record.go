package kafkadlq

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/retry"
)

// Header names of an entry record. The value of the record is the event's Raw envelope.
const (
	HeaderVersion      = "dlq.v"
	HeaderOp           = "dlq.op"
	HeaderID           = "dlq.id"
	HeaderSink         = "dlq.sink"
	HeaderRoute        = "dlq.route"
	HeaderClass        = "dlq.class"
	HeaderError        = "dlq.error"
	HeaderAttempts     = "dlq.attempts"
	HeaderFirstAttempt = "dlq.first-attempt"
	HeaderLastAttempt  = "dlq.last-attempt"
	HeaderCondition    = "dlq.condition"
	HeaderTraceID      = "dlq.trace-id"
	HeaderEventID      = "event.id"
	HeaderEventType    = "event.type"
	HeaderEventTopic   = "event.topic"
	HeaderEventSource  = "event.source"
	HeaderEventTime    = "event.time"
	// HeaderEventData holds Event.Data when it is not a part of Raw.
	HeaderEventData = "event.data"
	// HeaderEventDataSpan says where Event.Data lies in Raw, as "<offset>:<length>", when it does:
	// decoders slice Data out of the envelope, and storing it twice would double the record.
	HeaderEventDataSpan = "event.data-span"
	// HeaderMetaPrefix prefixes each Event.Metadata key.
	HeaderMetaPrefix = "meta."
)

// Values of the version and operation headers.
const (
	recordVersion = "1"
	opRemove      = "remove"
)

// record encodes a prepared entry as a record for topic.
func record(topic string, key []byte, e *dlq.Entry) *kgo.Record {
	h := make([]kgo.RecordHeader, 0, 20+len(e.Event.Metadata))
	add := func(k, v string) {
		if v != "" {
			h = append(h, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
	}
	addTime := func(k string, t time.Time) {
		if !t.IsZero() {
			h = append(h, kgo.RecordHeader{Key: k, Value: t.UTC().AppendFormat(nil, time.RFC3339Nano)})
		}
	}
	add(HeaderVersion, recordVersion)
	add(HeaderID, e.ID)
	add(HeaderSink, e.Sink)
	add(HeaderRoute, e.Route)
	add(HeaderClass, string(e.Class))
	add(HeaderError, e.Error)
	if e.Attempts != 0 {
		add(HeaderAttempts, strconv.Itoa(e.Attempts))
	}
	addTime(HeaderFirstAttempt, e.FirstAttempt)
	addTime(HeaderLastAttempt, e.LastAttempt)
	add(HeaderCondition, string(e.Condition))
	add(HeaderTraceID, e.TraceID)
	ev := &e.Event
	add(HeaderEventID, ev.ID)
	add(HeaderEventType, ev.Type)
	add(HeaderEventTopic, ev.Topic)
	add(HeaderEventSource, ev.Source)
	addTime(HeaderEventTime, ev.Time)
	if ev.Data != nil {
		if at, ok := within(ev.Raw, ev.Data); ok {
			add(HeaderEventDataSpan, strconv.Itoa(at)+":"+strconv.Itoa(len(ev.Data)))
		} else {
			h = append(h, kgo.RecordHeader{Key: HeaderEventData, Value: ev.Data})
		}
	}
	for k, v := range ev.Metadata {
		h = append(h, kgo.RecordHeader{Key: HeaderMetaPrefix + k, Value: []byte(v)})
	}
	return &kgo.Record{Topic: topic, Key: key, Value: ev.Raw, Headers: h}
}

// within returns where data lies in raw: found by address when data is a window into raw, as the
// intake's decoders make it, and by content otherwise.
func within(raw, data []byte) (int, bool) {
	if len(data) == 0 || len(data) > len(raw) {
		return 0, false
	}
	r, d := uintptr(unsafe.Pointer(unsafe.SliceData(raw))), uintptr(unsafe.Pointer(unsafe.SliceData(data)))
	if d >= r && d+uintptr(len(data)) <= r+uintptr(len(raw)) {
		return int(d - r), true
	}
	if at := bytes.Index(raw, data); at >= 0 {
		return at, true
	}
	return 0, false
}

// removal returns the record that removes the entry with the given ID.
func removal(topic, id string) *kgo.Record {
	return &kgo.Record{Topic: topic, Key: []byte(id), Headers: []kgo.RecordHeader{
		{Key: HeaderVersion, Value: []byte(recordVersion)},
		{Key: HeaderOp, Value: []byte(opRemove)},
		{Key: HeaderID, Value: []byte(id)},
	}}
}

// decoded is what a record of the topic is: an entry, or the removal of one.
type decoded struct {
	entry     dlq.Entry
	removes   string // the ID a removal record removes; "" for an entry
	partition int32  // where the record was read
}

// decode reads a record of the topic. It returns an error wrapping ErrNotEntry for a record
// written by something else, dlq.ErrUnknownVersion for a newer format, and dlq.ErrMalformed for an
// entry record it cannot read.
func decode(r *kgo.Record) (decoded, error) {
	var (
		d       decoded
		version string
		op      string
		span    string
		hasSpan bool
		err     error
	)
	e := &d.entry
	ev := &e.Event
	setTime := func(dst *time.Time, name string, v []byte) {
		t, perr := time.Parse(time.RFC3339Nano, string(v))
		if perr != nil && err == nil {
			err = fmt.Errorf("%w: header %s: %v", dlq.ErrMalformed, name, perr)
		}
		// Another producer may give an offset; entries come back in UTC, as from every driver.
		*dst = t.UTC()
	}
	for _, h := range r.Headers {
		v := h.Value
		switch h.Key {
		case HeaderVersion:
			version = string(v)
		case HeaderOp:
			op = string(v)
		case HeaderID:
			e.ID = string(v)
		case HeaderSink:
			e.Sink = string(v)
		case HeaderRoute:
			e.Route = string(v)
		case HeaderClass:
			e.Class = retry.Class(v)
		case HeaderError:
			e.Error = string(v)
		case HeaderAttempts:
			n, perr := strconv.Atoi(string(v))
			if perr != nil && err == nil {
				err = fmt.Errorf("%w: header %s: %v", dlq.ErrMalformed, h.Key, perr)
			}
			e.Attempts = n
		case HeaderFirstAttempt:
			setTime(&e.FirstAttempt, h.Key, v)
		case HeaderLastAttempt:
			setTime(&e.LastAttempt, h.Key, v)
		case HeaderCondition:
			e.Condition = dlq.Condition(v)
		case HeaderTraceID:
			e.TraceID = string(v)
		case HeaderEventID:
			ev.ID = string(v)
		case HeaderEventType:
			ev.Type = string(v)
		case HeaderEventTopic:
			ev.Topic = string(v)
		case HeaderEventSource:
			ev.Source = string(v)
		case HeaderEventTime:
			setTime(&ev.Time, h.Key, v)
		case HeaderEventData:
			ev.Data = append([]byte{}, v...)
		case HeaderEventDataSpan:
			span, hasSpan = string(v), true
		default:
			if k, ok := strings.CutPrefix(h.Key, HeaderMetaPrefix); ok {
				if ev.Metadata == nil {
					ev.Metadata = map[string]string{}
				}
				ev.Metadata[k] = string(v)
			}
		}
	}
	switch {
	case version == "":
		return decoded{}, ErrNotEntry
	case version != recordVersion:
		return decoded{}, fmt.Errorf("%w: record version %q", dlq.ErrUnknownVersion, version)
	case op == opRemove:
		if e.ID == "" {
			return decoded{}, fmt.Errorf("%w: removal without an ID", dlq.ErrMalformed)
		}
		return decoded{removes: e.ID}, nil
	case op != "":
		return decoded{}, fmt.Errorf("%w: unknown operation %q", dlq.ErrUnknownVersion, op)
	case err != nil:
		return decoded{}, err
	case e.ID == "" || e.Sink == "":
		return decoded{}, fmt.Errorf("%w: no ID or sink header", dlq.ErrMalformed)
	case dlq.CheckID(e.ID) != nil:
		// Put never writes such an ID and Delete cannot remove one: listed, it would be redriven
		// again by every Redrive, each reporting it removed.
		return decoded{}, fmt.Errorf("%w: an ID header no Put writes", dlq.ErrMalformed)
	}
	ev.Raw = r.Value
	if hasSpan {
		at, n, ok := parseSpan(span)
		if !ok || at+n > len(ev.Raw) {
			return decoded{}, fmt.Errorf("%w: data span %q outside a %d-byte value", dlq.ErrMalformed, span, len(ev.Raw))
		}
		ev.Data = ev.Raw[at : at+n : at+n]
	}
	return d, nil
}

func parseSpan(s string) (at, n int, ok bool) {
	a, b, found := strings.Cut(s, ":")
	if !found {
		return 0, 0, false
	}
	at, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	return at, n, err1 == nil && err2 == nil && at >= 0 && n >= 0 && at <= int(^uint(0)>>2) && n <= int(^uint(0)>>2)
}
