package kafkasink

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge"
)

// BuildRecord returns the record s would produce for e, for tests that check the layout without
// a broker.
func BuildRecord(s *Sink, e *fanbridge.Event) (*kgo.Record, error) {
	p := s.newPending()
	if err := s.fill(context.Background(), p, e); err != nil {
		return nil, err
	}
	r := p.rec
	return &r, nil
}

// Closing reports whether a Close has begun, so that tests can start a second one after it.
func Closing(s *Sink) bool { return s.closed.Load() }
