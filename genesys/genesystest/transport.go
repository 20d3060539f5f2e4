package genesystest

import (
	"io"
	"net/http"
)

// ResendOn503 is a transport of the kind a caller may give the genesys client: it sends a
// request again, once, after a 503 answer, as retrying transports do, so that tests can check
// what the client learns of copies it did not send itself. BeforeCopy, if set, runs just before
// the copy goes out. The copy carries the request's context, so an httptrace there sees both.
type ResendOn503 struct {
	Base       http.RoundTripper
	BeforeCopy func()
}

// RoundTrip implements http.RoundTripper.
func (t ResendOn503) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.Base.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	again := r.Clone(r.Context())
	if r.GetBody != nil {
		if again.Body, err = r.GetBody(); err != nil {
			return nil, err
		}
	}
	if t.BeforeCopy != nil {
		t.BeforeCopy()
	}
	return t.Base.RoundTrip(again)
}
