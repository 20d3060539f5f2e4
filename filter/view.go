package filter

import "github.com/fanbridge/fanbridge"

// View returns the JSON that event patterns match for e, as Match reads it: e.Raw for an event
// decoded from an Amazon EventBridge envelope or built in code, otherwise the EventBridge-shaped
// view the package documentation describes, written from e's fields. It returns nil when e has
// no view (its Data is not one JSON value), which matches nothing. The offsets in an error of
// MatchRaw on the view count in it, so tools use it to explain why an event was refused.
func View(e *fanbridge.Event) []byte {
	if e == nil {
		return nil
	}
	raw, buf := envelopeOf(e)
	if raw == nil {
		return nil
	}
	out := append([]byte(nil), raw...)
	releaseEnvelope(buf)
	return out
}
