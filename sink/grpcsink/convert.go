package grpcsink

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanbridge/fanbridge"
	fanbridgev1 "github.com/fanbridge/fanbridge/proto/fanbridge/v1"
)

// ToProto converts e to its wire form. The result shares e's Data, Raw and Metadata rather than
// copying them, so neither may be modified while the other is in use. A zero Time is left unset.
func ToProto(e *fanbridge.Event) *fanbridgev1.Event {
	pe, ts := new(fanbridgev1.Event), new(timestamppb.Timestamp)
	fillProto(pe, ts, e)
	return pe
}

// fillProto fills pe from e, using ts for the time when e has one.
func fillProto(pe *fanbridgev1.Event, ts *timestamppb.Timestamp, e *fanbridge.Event) {
	pe.Id = e.ID
	pe.Type = e.Type
	pe.Topic = e.Topic
	pe.Source = e.Source
	pe.Data = e.Data
	pe.Metadata = e.Metadata
	pe.Raw = e.Raw
	if !e.Time.IsZero() {
		ts.Seconds = e.Time.Unix()
		ts.Nanos = int32(e.Time.Nanosecond())
		pe.Time = ts
	}
}

// delivery holds one request, the messages it points to, the response, the call's header and
// trailer metadata and its options in a single allocation. It is not pooled: an interceptor or stats
// handler on the caller's connection may keep the request after the call returns.
type delivery struct {
	req     fanbridgev1.DeliverRequest
	event   fanbridgev1.Event
	time    timestamppb.Timestamp
	resp    fanbridgev1.DeliverResponse
	header  metadata.MD
	trailer metadata.MD
	seen    seenOptions
	// opts has room for the prepared options, the header's, the trailer's and seen, for up to two
	// of WithCallOptions without another allocation.
	opts [6]grpc.CallOption
}

// checkEncodable returns an error wrapping ErrInvalidEvent, naming the field, when a text field of
// e is not valid UTF-8, which proto3 string fields must be.
func checkEncodable(e *fanbridge.Event) error {
	for _, f := range [...]struct{ name, value string }{
		{"ID", e.ID}, {"Type", e.Type}, {"Topic", e.Topic}, {"Source", e.Source},
	} {
		if !utf8.ValidString(f.value) {
			return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidEvent, f.name)
		}
	}
	for k, v := range e.Metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("%w: Metadata key %q or its value is not valid UTF-8", ErrInvalidEvent, strings.ToValidUTF8(k, "\uFFFD"))
		}
	}
	return nil
}

// FromProto converts a wire event back to a fanbridge.Event. An unset time becomes the zero Time,
// a set one is in UTC; empty bytes and maps become nil. The result shares pe's byte slices and map.
// It returns an error when the time is out of the range a Timestamp allows.
func FromProto(pe *fanbridgev1.Event) (*fanbridge.Event, error) {
	e := &fanbridge.Event{
		ID:     pe.GetId(),
		Type:   pe.GetType(),
		Topic:  pe.GetTopic(),
		Source: pe.GetSource(),
	}
	if ts := pe.GetTime(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			return nil, err
		}
		e.Time = ts.AsTime()
	}
	if d := pe.GetData(); len(d) > 0 {
		e.Data = json.RawMessage(d)
	}
	if r := pe.GetRaw(); len(r) > 0 {
		e.Raw = r
	}
	if m := pe.GetMetadata(); len(m) > 0 {
		e.Metadata = m
	}
	return e, nil
}
